"""What the walkthrough notebooks show a reader: setup, readable tables and computed summaries.

- :func:`setup_notebook`: the first call of every notebook (log narrative to the notebook's
  output, figures displayed where they are made);
- :func:`display_names`: short names of representations ("learned (MS-CR@6, 8 src)",
  "Rand (SS-R)", "MFCC") and :func:`results_pivot`: tasks x representations, mean ± sd, the
  best of each row marked;
- :func:`network_summary`: the trained network as a Table-3-style layer table;
- :class:`Summary` and :func:`preprocess_summary`, :func:`training_summary`,
  :func:`transfer_summary`: the closing cell of 01, 02 and 03, a few facts and plain-language
  findings computed from what the notebook made (never hand-written numbers).

Every object here displays as HTML in JupyterLab and as plain text elsewhere (``print``, the
CLI, papermill's text outputs).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.constants import K
from mtdtl.errors import MtdtlError

__all__ = ["setup_notebook", "Summary", "display_names", "names_legend", "ResultsPivot", "results_pivot",
           "reduced_k", "network_summary", "topics_overview", "preprocess_summary", "training_summary",
           "transfer_summary"]


# ---------------------------------------------------------------------------------------
# notebook setup
# ---------------------------------------------------------------------------------------

def setup_notebook(log_level: str = "INFO") -> None:
    """First call of a walkthrough notebook.

    - mtdtl's log narrative goes to the cell's normal output (stdout), a few lines per stage at
      ``"INFO"``; ``"DETAIL"`` or ``"DEBUG"`` show more, ``"WARNING"`` only problems. Warnings
      go to stderr and so stay visible as warnings.
    - Figures returned by :mod:`mtdtl.plots` display as images where they are made.
    """
    from mtdtl.log import setup_logging
    from mtdtl.plots.base import enable_inline_display

    setup_logging(log_level)
    enable_inline_display()


# ---------------------------------------------------------------------------------------
# a summary: facts, a table, findings
# ---------------------------------------------------------------------------------------

@dataclass
class Summary:
    """A titled block of facts, an optional table and plain-language findings.

    Displays as HTML in a notebook; ``str()`` gives the same as plain text.
    """

    title: str
    facts: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    findings: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = [self.title, "=" * len(self.title)]
        out += self.facts
        if self.table is not None and len(self.table):
            out += ["", self.table.to_string(index=False)]
        if self.findings:
            out += ["", "Findings:"] + [f"- {f}" for f in self.findings]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        parts = [f"<h4>{html.escape(self.title)}</h4>"]
        if self.facts:
            parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in self.facts) + "</ul>")
        if self.table is not None and len(self.table):
            parts.append(self.table.to_html(index=False, border=0, na_rep=""))
        if self.findings:
            parts.append("<p><b>Findings</b></p><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in self.findings)
                         + "</ul>")
        return "\n".join(parts)


def _seconds(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "?"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


# ---------------------------------------------------------------------------------------
# names of representations
# ---------------------------------------------------------------------------------------

def _arch_label(arch: str) -> str:
    from mtdtl.models import parse_arch

    try:
        return parse_arch(arch).label
    except MtdtlError:
        return str(arch)


def _sources_label(sources: str, n: int | None) -> str:
    src = [s for s in str(sources or "").split("+") if s]
    n = len(src) if src else int(n or 0)
    if not src and not n:
        return ""
    if src and len(src) <= 2:
        return "+".join(src)
    return f"{n} src"


def _identity(results: pd.DataFrame) -> pd.DataFrame:
    cols = ["representation", "kind", "arch", "sources", "n_sources", "seed", "epochs", "run"]
    have = [c for c in cols if c in results.columns]
    ident = results[have].drop_duplicates("representation").reset_index(drop=True)
    for c in cols:
        if c not in ident.columns:
            ident[c] = ""
    return ident


def display_names(results: pd.DataFrame) -> dict[str, str]:
    """Short display names of the representations of a results table.

    ``learned (MS-CR@6, 8 src)`` (``learned (SS-R, tag)`` for one or two sources),
    ``Rand (SS-R)`` (the paper's Rand; ``Rand (MS-CR@6, 8 src)`` for an untrained copy of a run's
    architecture), ``MFCC``, ``Choi``. Names that would collide get the seed, then the epochs,
    then the representation id added.

    Parameters
    ----------
    results : DataFrame
        A results table (:data:`mtdtl.evaluation.results.COLUMNS`); the columns
        ``representation`` and ``kind`` are needed, ``arch``, ``sources``, ``n_sources``,
        ``seed``, ``epochs`` are used when present.

    Returns
    -------
    dict
        representation id -> display name, in order of first appearance.
    """
    if "representation" not in results.columns:
        raise MtdtlError("display_names needs a results table with a 'representation' column")
    ident = _identity(results)
    names = {}
    for r in ident.itertuples(index=False):
        kind = str(r.kind or "")
        label = _arch_label(r.arch) if str(r.arch or "") else ""
        src = _sources_label(r.sources, r.n_sources if str(r.n_sources) not in ("", "<NA>", "nan") else None)
        if kind == "learned":
            name = f"learned ({label}, {src})" if src else f"learned ({label})"
        elif kind == "rand":
            name = f"Rand ({label}, {src})" if src else f"Rand ({label})" if label else "Rand"
        elif kind == "mfcc":
            name = "MFCC"
        elif kind == "choi":
            name = "Choi"
        elif kind == "chance":
            name = "Chance"
        else:
            name = str(r.representation)
        names[str(r.representation)] = name
    for extra in ("seed", "epochs", "representation"):
        counts = pd.Series(list(names.values())).value_counts()
        dup = set(counts[counts > 1].index)
        if not dup:
            break
        for r in ident.itertuples(index=False):
            rep = str(r.representation)
            if names[rep] in dup:
                v = getattr(r, extra)
                if extra == "representation":
                    names[rep] = f"{names[rep]} [{rep}]"
                elif str(v) not in ("", "<NA>", "nan", "None"):
                    tag = f"seed {v}" if extra == "seed" else f"{v} ep"
                    names[rep] = names[rep][:-1] + f", {tag})" if names[rep].endswith(")") else f"{names[rep]} ({tag})"
    return names


def names_legend(results: pd.DataFrame, names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Which display name is which representation id (and run): ``name, kind, representation, run``."""
    names = dict(names or display_names(results))
    ident = _identity(results)
    return pd.DataFrame({"name": [names[str(r)] for r in ident["representation"]],
                         "kind": ident["kind"].astype(str).to_list(),
                         "representation": ident["representation"].astype(str).to_list(),
                         "run": ident["run"].astype(str).to_list()})


# ---------------------------------------------------------------------------------------
# the results pivot of 03
# ---------------------------------------------------------------------------------------

def _task_label(target: str, metric: str) -> str:
    t = str(target)
    t = t.removeprefix("demo:")
    return f"{t} ({metric})"


@dataclass
class ResultsPivot:
    """Tasks x representations: mean and sd of the score over repetitions, best per row.

    Attributes
    ----------
    mean, std : DataFrame
        Rows: ``"<task> (<metric>)"``; columns: display names.
    n : DataFrame
        Repetitions behind each cell.
    legend : DataFrame
        :func:`names_legend`.
    """

    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    legend: pd.DataFrame

    @property
    def best(self) -> pd.DataFrame:
        """True where a cell holds the highest mean of its row (ties all marked)."""
        m = self.mean
        return m.eq(m.max(axis=1), axis=0) & m.notna()

    def table(self, *, marker: str = " *") -> pd.DataFrame:
        """Cells as text, ``"0.667 ± 0.047"``, the best of each row followed by ``marker``."""
        best = self.best
        out = pd.DataFrame(index=self.mean.index, columns=self.mean.columns, dtype=object)
        for r in self.mean.index:
            for c in self.mean.columns:
                v, s = self.mean.at[r, c], self.std.at[r, c]
                if pd.isna(v):
                    out.at[r, c] = ""
                    continue
                txt = f"{v:.3f}" if pd.isna(s) else f"{v:.3f} ± {s:.3f}"
                out.at[r, c] = txt + (marker if best.at[r, c] else "")
        out.index.name = "task (metric)"
        return out

    def _reps(self) -> str:
        ns = sorted({int(v) for v in self.n.to_numpy().ravel() if pd.notna(v)})
        if not ns:
            return ""
        return f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"

    def caption(self) -> str:
        reps = self._reps()
        sd = "mean ± sd over" if reps not in ("", "1") else "one value from"
        return (f"{sd} {reps} repetition{'s' if reps != '1' else ''}; higher is better on every metric; "
                "best of each row marked")

    def __repr__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            body = self.table().to_string()
        legend = self.legend.to_string(index=False)
        return f"{body}\n({self.caption()}: *)\n\n{legend}"

    def _repr_html_(self) -> str:
        # bold as <b> in the cells (not CSS classes): survives the sanitiser of untrusted notebooks
        table = self.table(marker="")
        best = self.best
        cells = table.copy()
        for r in table.index:
            for c in table.columns:
                v = html.escape(str(table.at[r, c]))
                cells.at[r, c] = f"<b>{v}</b>" if best.at[r, c] else v
        cells.index = pd.Index([html.escape(str(i)) for i in cells.index])
        cells.columns = pd.Index([html.escape(str(c)) for c in cells.columns], name="task (metric)")
        body = cells.to_html(escape=False, border=0)
        legend = self.legend.to_html(index=False, border=0)
        return (f"{body}\n<p><i>{html.escape(self.caption())} (bold)</i></p>\n"
                f"<p><b>Representations</b></p>\n{legend}")


def results_pivot(results: pd.DataFrame, *, names: Mapping[str, str] | None = None) -> ResultsPivot:
    """Tasks as rows, representations (short names) as columns, mean ± sd, best per row.

    Parameters
    ----------
    results : DataFrame
        A tidy results table (``representation, kind, target, metric, value, ...``).
    names : mapping, optional
        representation id -> display name (default :func:`display_names`).
    """
    if results is None or len(results) == 0:
        raise MtdtlError("no results to show: the results table is empty")
    names = dict(names or display_names(results))
    df = results.assign(name=results["representation"].astype(str).map(names),
                        task=[_task_label(t, m) for t, m in zip(results["target"], results["metric"])])
    g = df.groupby(["task", "name"], sort=False)["value"]
    cols = list(dict.fromkeys(names[str(r)] for r in df["representation"]))
    rows = list(dict.fromkeys(df["task"]))
    mean = g.mean().unstack("name").reindex(index=rows, columns=cols)
    std = g.std().unstack("name").reindex(index=rows, columns=cols)
    n = g.count().unstack("name").reindex(index=rows, columns=cols)
    for f in (mean, std, n):
        f.index.name = "task (metric)"
        f.columns.name = None
    return ResultsPivot(mean=mean, std=std, n=n, legend=names_legend(results, names))


# ---------------------------------------------------------------------------------------
# 01: preprocessing
# ---------------------------------------------------------------------------------------

def reduced_k(store_dir: str | os.PathLike, sources: Iterable[str] | None = None) -> int:
    """k of the reduced labels of ``sources`` in a store (the units of each fc-output head).

    ``self`` has no k; a run on ``self`` alone gets the default :data:`~mtdtl.constants.K`.
    """
    from mtdtl.sources import load_reduced

    names = None if sources is None else [s for s in sources if s != "self"]
    if names == []:
        return K
    reduced = load_reduced(store_dir, sources=names)
    ks = {n: r.k for n, r in reduced.items() if n != "self"}
    if not ks:
        return K
    if len(set(ks.values())) > 1:
        raise MtdtlError(f"the reduced labels in {store_dir} have different k {ks}; reduce them with one k")
    return int(next(iter(ks.values())))


def topics_overview(store_dir: str | os.PathLike, *, n_topics: int = 3, n_terms: int = 8) -> pd.DataFrame:
    """The strongest topics of every pLSA source (the paper's Table 2), compact.

    Columns ``source, topic, weight`` (percent of the training tracks' topic mass) and
    ``top terms`` (the first ``n_terms``).
    """
    from mtdtl.sources.reduce import topic_table

    t = topic_table(store_dir, n_topics=n_topics)
    if t.empty:
        return pd.DataFrame(columns=["source", "topic", "weight", "top terms"])

    def terms(v) -> str:
        items = list(v) if isinstance(v, (list, tuple, np.ndarray)) else [x.strip() for x in str(v).split(",")]
        return ", ".join(items[:n_terms])

    return pd.DataFrame({"source": t["source"], "topic": t["topic"],
                         "weight": [f"{100 * w:.0f}%" for w in t["weight"]],
                         "top terms": [terms(v) for v in t["terms"]]})


def preprocess_summary(store_dir: str | os.PathLike) -> Summary:
    """Closing summary of 01_preprocess: the store, the reductions, what coverage says."""
    from mtdtl.sources.reduce import coverage_table, topic_table
    from mtdtl.store import SpectrogramStore

    st = SpectrogramStore.open(store_dir)
    man = st.manifest
    splits = man["split"].value_counts()
    n_frames = int(sum(st.n_frames(i) for i in range(len(st.track_ids))))
    fps = st.front_end.frames_per_second
    cov = coverage_table(store_dir)
    ks = sorted({int(k) for k, s in zip(cov["k"], cov["source"]) if s != "self"})
    facts = [
        f"Spectrogram store {store_dir}: {len(st.track_ids)} learning clips ("
        + ", ".join(f"{n} {s}" for s, n in splits.items()) + f"), {n_frames / fps / 3600:.2f} h of audio, "
        f"{n_frames:,} frames of 2 x 128 mel bands.",
        f"Per-band scaler fit on the {st.scaler.n_clips} {st.scaler.split} clips.",
        f"{len(cov)} learning sources reduced, k = {_and([str(k) for k in ks]) or '-'}: "
        + "; ".join(f"{s} ({m})" for s, m in zip(cov["source"], cov["method"])) + ".",
    ]
    findings = []
    c = cov.set_index("source")["coverage"]
    lo, hi = c.min(), c.max()
    findings.append(f"Label coverage ranges from {_pct(lo)} ({_and(list(c[c == lo].index))}) to {_pct(hi)} "
                    f"({_and(list(c[c == hi].index))}) of the learning clips.")
    sparse = c[c < 0.5]
    if len(sparse):
        n_train = cov.set_index("source")["n_train"]
        findings.append(f"{_and(list(sparse.index))} cover{'s' if len(sparse) == 1 else ''} less than half of the "
                        "clips (" + ", ".join(f"{s}: {int(n_train[s])} training tracks" for s in sparse.index)
                        + "): fewer examples for that source than for the others.")
    for src in ("tag", "cdr_tag"):
        if src in set(cov["source"]):
            try:
                t = topic_table(store_dir, src, n_topics=1)
            except MtdtlError:
                continue
            if len(t):
                v = t["terms"].iloc[0]
                terms = list(v) if isinstance(v, (list, tuple, np.ndarray)) else [x.strip() for x in str(v).split(",")]
                findings.append(f"The strongest {src} topic ({t['weight'].iloc[0]:.0%} of the mass) gathers "
                                f"{', '.join(terms[:5])}.")
                break
    return Summary("What 01_preprocess made", facts, None, findings)


# ---------------------------------------------------------------------------------------
# 02: the network and its training
# ---------------------------------------------------------------------------------------

def network_summary(model) -> Summary:
    """The network that is trained: Table-3-style layers, input, representation size."""
    from mtdtl.models.nets import INPUT_SHAPE
    from mtdtl.models.summary import count_parameters, network_table

    t = network_table(model)
    t["params"] = [f"{int(p):,}" for p in t["params"]]
    order = ", ".join(model.feature_order)
    facts = [
        (f"{model.arch.label} ({model.arch.id}) on {len(model.sources)} source{'s' if len(model.sources) != 1 else ''} "
        f"({', '.join(model.sources)}), {model.width_name} width, k = {model.n_out} outputs per head."),
        f"Input: one 2.5 s crop, {' x '.join(map(str, INPUT_SHAPE))} (channels x frames x mel bands).",
        (f"Representation: {model.feature_dim} dimensions (fc-feature of: {order}); "
        f"{count_parameters(model):,} trainable parameters."),
    ]
    return Summary(f"The network: {model.arch.label}", facts, t, [])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


#: Relative change of a validation loss read as "no change" in the findings of 02.
FLAT = 0.005


def training_summary(run_dir: str | os.PathLike) -> Summary:
    """Closing summary of 02_train: progress, speed, precision, losses per source, findings.

    Works for finished runs (``metrics.json``) and for runs stopped early (``max_steps``), from
    ``model.json`` and ``log.jsonl``.
    """
    from mtdtl.training.loop import read_log

    run_dir = Path(run_dir)
    meta = _read_json(run_dir / "model.json")
    if not meta:
        raise MtdtlError(f"no checkpoint in {run_dir} (model.json missing); train first (02_train)")
    metrics = _read_json(run_dir / "metrics.json")
    records = read_log(run_dir) if (run_dir / "log.jsonl").is_file() else []
    cfg = meta.get("training") or {}
    sources = list(meta.get("sources", []))
    epochs_total = cfg.get("epochs")
    epoch, step = int(meta.get("epoch", 0)), int(meta.get("step", 0))
    finished = bool(meta.get("finished")) and bool(metrics)
    run_id = (meta.get("run") or {}).get("id", run_dir.name)
    facts = [(f"Run {run_id} ({run_dir}): {meta.get('label', meta.get('arch'))} on {', '.join(sources)}, "
             f"k = {meta.get('n_out')}, {meta.get('params', 0):,} parameters.")]
    elapsed = metrics.get("train_time_s") if metrics else (records[-1].get("elapsed_s") if records else None)
    sps = metrics.get("samples_per_s") if metrics else None
    if sps is None and records:
        v = [r.get("samples_per_s") for r in records if r.get("samples_per_s")]
        sps = float(np.mean(v)) if v else None
    speed = f", {sps:,.0f} samples/s" if sps else ""
    if finished:
        facts.append(f"Finished: {epoch} epoch{'s' if epoch != 1 else ''}, {step:,} steps in {_seconds(elapsed)}{speed}.")
    else:
        why = f" (max_steps = {cfg.get('max_steps')})" if cfg.get("max_steps") else ""
        facts.append(f"Not finished: stopped at step {step:,}{why}, {epoch} of {epochs_total} epochs done"
                     f"{', ' + _seconds(elapsed) if elapsed else ''}{speed}; run again to continue.")
    comp = metrics.get("compute") or {}
    if comp:
        prec = "bf16 autocast" if comp.get("bf16") else "float32"
        dev = comp.get("device", "?")
        extra = f", {comp.get('num_threads')} threads" if dev == "cpu" and comp.get("num_threads") else ""
        facts.append(f"Device {dev}{extra}; precision {prec}; batch size {cfg.get('batch_size')}, lr {cfg.get('lr')}.")
    else:
        facts.append(f"Device {cfg.get('device', 'auto')}; batch size {cfg.get('batch_size')}, lr {cfg.get('lr')}.")

    rows = []
    for s in sources:
        tr = [r["train_loss"].get(s) for r in records if r.get("train_loss", {}).get(s) is not None]
        va = [(r["valid_loss"][s], r["epoch"]) for r in records if r.get("valid_loss", {}).get(s) is not None]
        acc = [r["valid_acc"][s] for r in records if r.get("valid_acc", {}).get(s) is not None]
        best = min(va) if va else None
        rows.append({"source": s, "loss": "cross-entropy" if s == "self" else "KL",
                     "train (last)": f"{tr[-1]:.4f}" if tr else "",
                     "valid (last)": f"{va[-1][0]:.4f}" if va else "",
                     "valid (best)": f"{best[0]:.4f}" if best else "",
                     "best epoch": str(int(best[1])) if best else "",
                     "valid accuracy": f"{acc[-1]:.0%}" if acc else ""})
    table = pd.DataFrame(rows) if rows else None

    findings = []
    if not records:
        findings.append("No epoch finished, so there are no losses yet: the curves and losses appear after the "
                        "first full epoch.")
    elif len(records) == 1:
        findings.append("One epoch only: no trend yet; these losses are the starting point of a longer run.")
    else:
        fell, rose, flat = [], [], []
        for s in sources:
            first = next((r["valid_loss"][s] for r in records if r.get("valid_loss", {}).get(s) is not None), None)
            last = next((r["valid_loss"][s] for r in reversed(records) if r.get("valid_loss", {}).get(s) is not None), None)
            if first is None or last is None:
                continue
            change = (last - first) / abs(first) if first else last - first
            (fell if change < -FLAT else rose if change > FLAT else flat).append(s)
        n = len(fell) + len(rose) + len(flat)
        if n:
            msg = f"Validation loss fell from epoch 1 to epoch {records[-1]['epoch']} for {len(fell)} of {n} sources"
            msg += f" ({_and(fell)})" if fell and len(fell) < n else ""
            if flat:
                msg += f"; it stayed within {FLAT:.1%} for {_and(flat)}"
            if rose:
                msg += f"; it rose for {_and(rose)} (overfitting, or noise of a small validation split)"
            findings.append(msg + ".")
    novalid = [s for s in sources if records and not any(r.get("valid_loss", {}).get(s) is not None for r in records)]
    if novalid:
        findings.append(f"{_and(novalid)} {'has' if len(novalid) == 1 else 'have'} no validation tracks: only the "
                        "training loss is known.")
    accs = [r["valid_acc"]["self"] for r in records if r.get("valid_acc", {}).get("self") is not None]
    if accs:
        a = accs[-1]
        verdict = "above" if a > 0.55 else "at about"
        findings.append(f"self: same-track and different-track pairs are told apart with {a:.0%} accuracy on the "
                        f"validation split, {verdict} chance (50%).")
    return Summary("What 02_train did", facts, table, findings)


# ---------------------------------------------------------------------------------------
# 03: transfer
# ---------------------------------------------------------------------------------------

def transfer_summary(results: pd.DataFrame, *, names: Mapping[str, str] | None = None) -> Summary:
    """Closing summary of 03_evaluate: who wins which task, learned against each baseline.

    With a *Chance* column (kind ``"chance"``), it also names the tasks on which no other
    representation scores above it.
    """
    pv = results_pivot(results, names=names)
    names = dict(names or display_names(results))
    kinds = {names[str(r)]: str(k) for r, k in _identity(results)[["representation", "kind"]].itertuples(index=False)}
    mean = pv.mean
    tasks = list(mean.index)
    short = {t: t.rsplit(" (", 1)[0].replace("_", " ") for t in tasks}
    reps_n = pv._reps()
    protocol = ", ".join(sorted(set(results["protocol"].astype(str)))) if "protocol" in results else ""
    facts = [(f"{mean.shape[1]} representations on {len(tasks)} tasks, {reps_n} repetition{'s' if reps_n != '1' else ''} "
             f"each{f' (protocol {protocol})' if protocol else ''}.")]
    findings = []
    learned = [c for c in mean.columns if kinds.get(c) == "learned"]
    others = [c for c in mean.columns if c not in learned]
    chance = [c for c in mean.columns if kinds.get(c) == "chance"]
    for ours in learned:
        parts = []
        for b in others:
            both = mean[[ours, b]].dropna()
            if len(both):
                wins = int((both[ours] > both[b]).sum())
                parts.append(f"{b} on {wins} of {len(both)} tasks")
        if parts:
            findings.append(f"The {ours} representation beats " + _and(parts) + ".")
    winners: dict[str, list[str]] = {}
    best = pv.best
    for t in tasks:
        w = [c for c in mean.columns if best.at[t, c]]
        key = " and ".join(w) if w else "nobody"
        winners.setdefault(key, []).append(short[t])
    findings.append("Best per task: " + "; ".join(f"{w} on {_and(ts)}" for w, ts in winners.items()) + ".")
    if chance:
        level = mean[chance[0]]
        rest = mean.drop(columns=chance)
        unlearned = [t for t in tasks if pd.notna(level[t]) and rest.loc[t].notna().any()
                     and not (rest.loc[t] > level[t]).any()]
        if unlearned:
            findings.append(f"On {_and([f'{short[t]} ({level[t]:.3f})' for t in unlearned])} no representation "
                            "scores above Chance, what the labels' distribution alone gives (the majority class, the "
                            "training mean): none of them taught the probe that task.")
    neg = []
    for t in tasks:
        if not t.endswith("(r2)"):
            continue
        row = mean.loc[t].drop(labels=chance).dropna()  # Chance's R² is about 0 by construction
        below = [c for c in row.index if row[c] < 0]
        if below:
            who = "every representation" if len(below) == len(row) else _and(below)
            neg.append(f"on {short[t]} for {who}")
    if neg:
        findings.append("R² below 0 (worse than predicting the training mean) " + "; ".join(neg) + ".")
    if reps_n in ("1", ""):
        findings.append("With one repetition per task no difference is tested; small gaps may be noise "
                        "(use more repetitions before reading much into them).")
    else:
        close = []
        for t in tasks:
            row = mean.loc[t].dropna().sort_values(ascending=False)
            if len(row) >= 2:
                sd = pv.std.loc[t, row.index[0]]
                if pd.notna(sd) and row.iloc[0] - row.iloc[1] < sd:
                    close.append(short[t])
        if close:
            findings.append(f"On {_and(close)} the best and the runner-up are less than one standard deviation "
                            "apart: read those as ties.")
    return Summary("What 03_evaluate found", facts, None, findings)
