"""Reading and preparing the results table for the analysis of Section 5.

One tidy results table goes in (a DataFrame, a CSV file, or a folder searched recursively for
``results.csv`` files); one row per evaluation, with the columns

``run, representation, kind, arch, sources, n_sources, seed, epochs, target, task, repetition,
split, metric, value, protocol``

(``seed``, ``epochs`` and ``split`` are optional here). The analysis works on the mean over
repetitions of each (representation, target), as the paper does (Section 4.4: "we will then
take average performance scores over the 5 different train-test splits").

Preparation (Section 5.2):

- scores are standardised within target over the learned representations,
  ``y* = (y - mean_d) / sd_d`` (sample standard deviation); baselines are put on the same scale
  with their target's mean and sd, for plotting only;
- ``n* = 0`` for SS-R and ``n - 2`` for the multi-source strategies;
- ``r*`` codes the network size: SS-R 0, MS-SR@FC 0.2, MS-CR@6 0.4, MS-CR@4 0.6, MS-CR@2 0.8,
  MSS-CR 1; ``rn = r* x n*``;
- one 0/1 column per learning source (``s_self`` ... ``s_artist``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtdtl.constants import ARCH_IDS, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = [
    "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "KINDS", "BASELINE_KINDS", "STRATEGIES", "RSTAR",
    "STRATEGY_LABELS", "PAPER_TARGETS", "TARGET_LABELS", "AnalysisData", "load_results",
    "prepare", "as_analysis_data", "target_label", "strategy_label",
]

log = get_logger(__name__)

#: Columns the analysis reads.
REQUIRED_COLUMNS = ("run", "representation", "kind", "arch", "sources", "n_sources", "target",
                    "task", "repetition", "metric", "value", "protocol")
#: Columns of the results table the analysis does not need (kept when present).
OPTIONAL_COLUMNS = ("seed", "epochs", "split")
#: Values of ``kind``.
KINDS = ("learned", "mfcc", "rand", "choi")
#: Baselines, drawn as horizontal lines in the figures.
BASELINE_KINDS = ("mfcc", "rand", "choi")
#: The six strategies in the order of network size (r* order, Section 5.2).
STRATEGIES = ("ss_r", "ms_sr@fc", "ms_cr@6", "ms_cr@4", "ms_cr@2", "mss_cr")
#: r*: the size coding of Section 5.2.
RSTAR = {"ss_r": 0.0, "ms_sr@fc": 0.2, "ms_cr@6": 0.4, "ms_cr@4": 0.6, "ms_cr@2": 0.8,
         "mss_cr": 1.0}
#: The paper's spelling of each strategy.
STRATEGY_LABELS = {"ss_r": "SS-R", "ms_sr@fc": "MS-SR@FC", "ms_cr@6": "MS-CR@6",
                   "ms_cr@4": "MS-CR@4", "ms_cr@2": "MS-CR@2", "mss_cr": "MSS-CR"}
#: The paper's target datasets, in the column order of Table 6.
PAPER_TARGETS = ("eballroom", "fma", "gtzan", "irmas", "lastfm1k", "emo_arousal", "emo_valence")
#: Short names used in the paper's figures and Table 6.
TARGET_LABELS = {"eballroom": "Ballroom", "fma": "FMA", "gtzan": "GTZAN", "irmas": "IRMAS",
                 "lastfm1k": "Lastfm", "emo_arousal": "Arousal", "emo_valence": "Valence"}

assert set(STRATEGIES) == set(ARCH_IDS)


def strategy_label(arch: str) -> str:
    """The paper's spelling of an architecture id (``"ms_cr@6"`` -> ``"MS-CR@6"``)."""
    return STRATEGY_LABELS.get(arch, arch)


def target_label(target: str) -> str:
    """Short display name of a target (``"eballroom"`` -> ``"Ballroom"``; others unchanged)."""
    return TARGET_LABELS.get(target, target)


@dataclass
class AnalysisData:
    """The results table prepared for the analysis.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (learned representation, target): ``representation, run, arch, strategy,
        sources, n_sources, target, task, metric, value`` (mean over repetitions),
        ``n_repetitions``, ``y`` (standardised within target), ``nstar``, ``rstar``, ``rn``,
        ``s_<source>`` (0/1 for each of the 8 sources).
    baselines : pandas.DataFrame
        One row per (baseline representation, target): ``representation, kind, target,
        metric, value, n_repetitions, y`` (on the target's standardised scale).
    targets : tuple of str
        Targets in display order (Table 6's order for the paper's datasets).
    scale : pandas.DataFrame
        Per target: ``mean``, ``sd`` and ``n`` of the learned representations' scores.
    protocols : tuple of str
        The ``protocol`` values of the input.
    raw : pandas.DataFrame
        The validated input rows (all repetitions).
    dropped_targets : tuple of str
        Targets left out because their learned scores cannot be standardised (fewer than 2
        learned representations, or all scores equal).
    """

    table: pd.DataFrame
    baselines: pd.DataFrame
    targets: tuple
    scale: pd.DataFrame
    protocols: tuple
    raw: pd.DataFrame = field(repr=False)
    dropped_targets: tuple = ()

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def n_representations(self) -> int:
        return int(self.table["representation"].nunique())

    def counts(self) -> pd.DataFrame:
        """Representations per strategy and number of sources (pivot: strategy x n)."""
        reps = self.table.drop_duplicates("representation")
        out = pd.crosstab(reps["arch"], reps["n_sources"])
        return out.reindex([s for s in STRATEGIES if s in out.index])


# --------------------------------------------------------------------------- reading

def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"run": str, "representation": str, "kind": str, "arch": str,
                                        "sources": str, "target": str, "task": str, "metric": str,
                                        "protocol": str, "split": str},
                           keep_default_na=False, na_values={"value": ["", "nan", "NaN"]})
    except Exception as exc:  # noqa: BLE001 - say which file could not be read
        raise MtdtlError(f"cannot read the results table {path}: {exc}") from None


def _read_any(results) -> tuple[pd.DataFrame, str]:
    if isinstance(results, pd.DataFrame):
        return results.copy(), "the results DataFrame"
    if isinstance(results, AnalysisData):
        return results.raw.copy(), "the prepared results"
    if not isinstance(results, (str, os.PathLike)):
        raise MtdtlError(f"results must be a DataFrame, a CSV path or a folder; got {type(results).__name__}")
    path = Path(results).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("results.csv") if p.is_file())
        if not files:
            raise MtdtlError(f"no results.csv file under {path}; give the results table itself, or the folder "
                             "that holds the runs' evaluate/results.csv files")
        frames = []
        for f in files:
            df = _read_csv(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
            if missing:
                raise MtdtlError(f"{f} lacks the columns {missing}: is it a results table of this study?")
            frames.append(df)
        log.info("read %d results files under %s", len(files), path)
        return pd.concat(frames, ignore_index=True), f"the {len(files)} results.csv files under {path}"
    if not path.exists():
        raise MtdtlError(f"results table {path} does not exist")
    return _read_csv(path), str(path)


def load_results(results, *, allow_mixed_protocols: bool = False, split: str | None = None) -> pd.DataFrame:
    """Read and validate one tidy results table.

    Parameters
    ----------
    results : pandas.DataFrame, str or PathLike
        The table, a CSV file, or a folder searched recursively for ``results.csv`` files
        (concatenated).
    allow_mixed_protocols : bool
        Several ``protocol`` values are an error (scores from different protocols are not
        comparable) unless this is True; then a warning is issued.
    split : str, optional
        Keep only the rows of this ``split`` value. Default: keep every row, after checking that
        every representation of a target was scored on the same split in each repetition (the
        ``split`` column names how a target was split, e.g. ``list:gtzan`` or ``fold 2/5 ...``,
        so it differs between targets; within a target and repetition it must not).

    Returns
    -------
    pandas.DataFrame
        The validated rows: string columns as str, ``n_sources`` and ``repetition`` as int,
        ``value`` as float, ``sources`` "+"-joined in canonical order.

    Raises
    ------
    MtdtlError
        Missing columns, unknown kinds, architectures or sources, inconsistent
        ``n_sources``, several metrics for one target, duplicated rows, mixed protocols.
    """
    df, where = _read_any(results)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MtdtlError(f"{where} lacks the columns {missing}; a results table needs "
                         f"{', '.join(REQUIRED_COLUMNS)} (build it with the transfer evaluation)")
    if df.empty:
        raise MtdtlError(f"{where} has no rows")
    for c in ("run", "representation", "kind", "arch", "sources", "target", "task", "metric", "protocol"):
        df[c] = df[c].fillna("").astype(str).str.strip()
    if "split" in df.columns:
        df["split"] = df["split"].fillna("").astype(str)
        if split is not None:
            splits = sorted(set(df["split"]))
            if split not in splits:
                raise MtdtlError(f"{where} has no {split!r} rows (its splits: {splits[:8]}"
                                 f"{' ...' if len(splits) > 8 else ''})")
            df = df[df["split"] == split].reset_index(drop=True)
            log.info("kept the %d rows of split %r", len(df), split)
        else:
            rep = df["repetition"] if "repetition" in df.columns else pd.Series(0, index=df.index)
            n = df.assign(_rep=rep).groupby(["target", "_rep"])["split"].nunique()
            if (n > 1).any():
                (target, r) = n[n > 1].index[0]
                seen = sorted(set(df.loc[(df["target"] == target) & (rep == r), "split"]))
                raise MtdtlError(f"{where}: the representations of {target} were scored on different splits in "
                                 f"repetition {r} ({seen}); their scores are not comparable. Pass split= to keep "
                                 "one, or evaluate them again on one split")

    protocols = sorted(set(df["protocol"]))
    if len(protocols) > 1:
        if not allow_mixed_protocols:
            raise MtdtlError(f"{where} mixes the protocols {protocols}: scores from different evaluation "
                             "protocols are not comparable. Analyse one protocol at a time (filter the "
                             "table), or pass allow_mixed_protocols=True if you know they are")
        msg = f"analysing results from several protocols {protocols} together (allow_mixed_protocols=True)"
        warnings.warn(msg, UserWarning, stacklevel=2)
        log.warning(msg)

    bad_kind = sorted(set(df["kind"]) - set(KINDS))
    if bad_kind:
        raise MtdtlError(f"{where}: unknown kind values {bad_kind}; valid: {', '.join(KINDS)}")
    value = pd.to_numeric(df["value"], errors="coerce")
    not_num = df.loc[value.isna() & df["value"].notna(), "value"]
    if len(not_num) and not all(str(v).strip().lower() in ("", "nan") for v in not_num):
        raise MtdtlError(f"{where}: non-numeric values in column 'value', e.g. {not_num.iloc[0]!r}")
    df["value"] = value.astype(float)
    n_nan = int(df["value"].isna().sum() + np.isinf(df["value"]).sum())
    if n_nan:
        log.warning("dropping %d rows whose value is not finite", n_nan)
        df = df[np.isfinite(df["value"])].reset_index(drop=True)
    for c in ("repetition", "n_sources"):
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any():
            raise MtdtlError(f"{where}: column {c!r} must hold integers; found {df.loc[v.isna(), c].iloc[0]!r}")
        df[c] = v.astype(np.int64)

    learned = df["kind"] == "learned"
    if not learned.any():
        raise MtdtlError(f"{where} has no learned representations (kind == 'learned'); nothing to analyse")
    bad_arch = sorted(set(df.loc[learned, "arch"]) - set(ARCH_IDS))
    if bad_arch:
        raise MtdtlError(f"{where}: unknown architectures {bad_arch} in learned rows; valid: {', '.join(ARCH_IDS)}")
    order = {s: i for i, s in enumerate(SOURCE_NAMES)}

    def canon(text: str) -> str:
        parts = [p for p in text.replace(",", "+").split("+") if p]
        unknown = [p for p in parts if p not in order]
        if unknown:
            raise MtdtlError(f"{where}: unknown learning sources {unknown}; known: {', '.join(SOURCE_NAMES)}")
        return "+".join(sorted(set(parts), key=order.__getitem__))

    df["sources"] = [canon(s) for s in df["sources"]]
    counted = df["sources"].map(lambda s: len(s.split("+")) if s else 0)
    wrong = learned & (counted != df["n_sources"])
    if wrong.any():
        r = df[wrong].iloc[0]
        raise MtdtlError(f"{where}: representation {r['representation']!r} has n_sources={r['n_sources']} "
                         f"but sources {r['sources']!r}; fix the table")
    ssr_bad = learned & (df["arch"] == "ss_r") & (df["n_sources"] != 1)
    if ssr_bad.any():
        raise MtdtlError(f"{where}: SS-R representation {df[ssr_bad].iloc[0]['representation']!r} "
                         "must have exactly one source")
    ms_bad = learned & (df["arch"] != "ss_r") & (df["n_sources"] < 2)
    if ms_bad.any():
        raise MtdtlError(f"{where}: multi-source representation {df[ms_bad].iloc[0]['representation']!r} "
                         "has fewer than 2 sources (n* = n - 2 would be negative); label it ss_r or drop it")

    metrics = df.groupby("target")["metric"].unique()
    multi = {t: sorted(m) for t, m in metrics.items() if len(m) > 1}
    if multi:
        raise MtdtlError(f"{where}: targets with several metrics {multi}; keep one metric per target")

    key = ["representation", "target", "repetition", "metric"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        raise MtdtlError(f"{where}: {int(dup.sum())} rows repeat a (representation, target, repetition, "
                         f"metric), e.g. ({r['representation']}, {r['target']}, {r['repetition']}); a run "
                         "was evaluated twice or a folder holds copies: remove the duplicates")
    meta = ["kind", "arch", "sources", "run"]
    incons = df.groupby("representation")[meta].nunique().gt(1).any(axis=1)
    if incons.any():
        raise MtdtlError(f"{where}: representation {incons[incons].index[0]!r} has rows with different "
                         f"{'/'.join(meta)}; representation ids must be unique")
    return df.reset_index(drop=True)


def _target_order(targets) -> tuple:
    targets = list(dict.fromkeys(targets))
    paper = [t for t in PAPER_TARGETS if t in targets]
    return tuple(paper + sorted(t for t in targets if t not in PAPER_TARGETS))


def prepare(results, *, allow_mixed_protocols: bool = False, split: str | None = None,
            standardise: bool = True) -> AnalysisData:
    """Validate the results table, average repetitions, standardise and code (Section 5.2).

    Parameters
    ----------
    results : pandas.DataFrame, str or PathLike
        See :func:`load_results`.
    allow_mixed_protocols : bool
    split : str
    standardise : bool
        Standardise within target (the paper). False takes the scores as they are (for tables
        already on a common scale, e.g. simulations).

    Returns
    -------
    AnalysisData
    """
    df = load_results(results, allow_mixed_protocols=allow_mixed_protocols, split=split)
    group = ["representation", "target"]
    first = ["run", "kind", "arch", "sources", "n_sources", "task", "metric"]
    agg = (df.groupby(group, sort=False)
           .agg(**{c: (c, "first") for c in first}, value=("value", "mean"),
                n_repetitions=("value", "size"))
           .reset_index())
    targets = _target_order(agg["target"])
    learned = agg[agg["kind"] == "learned"].copy()
    base = agg[agg["kind"] != "learned"].copy()

    scale = learned.groupby("target")["value"].agg(mean="mean", sd="std", n="size").reindex(list(targets))
    no_learned = scale.index[scale["n"].isna()].tolist()
    if no_learned:
        raise MtdtlError(f"targets {no_learned} have baseline results only; the analysis needs learned "
                         "representations on every target (drop those targets)")
    if not standardise:
        scale["mean"], scale["sd"] = 0.0, 1.0
    flat = scale.index[~(scale["sd"] > 0)].tolist()
    if flat and len(flat) == len(scale):
        raise MtdtlError(f"cannot standardise targets {flat}: fewer than 2 learned representations or all "
                         "scores equal")
    if flat:  # nothing to compare on them (e.g. every tiny network at chance): left out, said so
        log.warning("left out of the analysis: targets %s (fewer than 2 learned representations, or all their "
                    "scores equal: nothing to standardise)", flat)
        scale = scale.drop(index=flat)
        targets = tuple(t for t in targets if t not in flat)
        learned = learned[~learned["target"].isin(flat)].copy()
        base = base[~base["target"].isin(flat)].copy()
    for part in (learned, base):
        m = part["target"].map(scale["mean"])
        s = part["target"].map(scale["sd"])
        part["y"] = (part["value"] - m) / s

    learned["strategy"] = learned["arch"].map(strategy_label)
    learned["nstar"] = np.where(learned["arch"] == "ss_r", 0, learned["n_sources"] - 2).astype(float)
    learned["rstar"] = learned["arch"].map(RSTAR).astype(float)
    learned["rn"] = learned["rstar"] * learned["nstar"]
    src_sets = learned["sources"].str.split("+")
    for s in SOURCE_NAMES:
        learned[f"s_{s}"] = src_sets.map(lambda ss, s=s: int(s in ss))
    learned["target"] = pd.Categorical(learned["target"], categories=list(targets), ordered=True)
    learned = learned.sort_values(["target", "arch", "representation"]).reset_index(drop=True)
    learned["target"] = learned["target"].astype(str)
    base = base.reset_index(drop=True)

    missing_cells = learned.groupby("representation")["target"].nunique()
    if (missing_cells < len(targets)).any():
        log.warning("%d representations lack results on some targets; the models use what is there",
                    int((missing_cells < len(targets)).sum()))
    data = AnalysisData(table=learned, baselines=base, targets=targets,
                        scale=scale.reset_index().rename(columns={"index": "target"}),
                        protocols=tuple(sorted(set(df["protocol"]))), raw=df, dropped_targets=tuple(flat))
    log.info("prepared %d learned representations on %d targets (%d rows), %d baseline rows",
             data.n_representations, len(targets), len(learned), len(base))
    return data


def as_analysis_data(data, **kwargs) -> AnalysisData:
    """``data`` itself when it is already prepared, else :func:`prepare` (``data``, ``**kwargs``)."""
    return data if isinstance(data, AnalysisData) else prepare(data, **kwargs)
