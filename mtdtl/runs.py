"""One identity for a training run: :class:`RunSpec`.

A run is an architecture trained on a set of learning sources with a seed, for a number of
epochs, at a width, with an optimiser setting, on a spectrogram store. :class:`RunSpec` owns

- the canonical source list (:func:`parse_sources`: one parser for the whole package, names in
  :data:`~mtdtl.constants.SOURCE_NAMES` order, duplicates and unknown names rejected);
- the run id (:attr:`RunSpec.id`): stable, readable, filesystem-safe, and parsed back by
  :meth:`RunSpec.from_id`::

      ms_cr6-self+bpm-seed0-e30          arch, sources, seed, epochs
      ss_r-tag-seed2-e200-tiny-b64       + width, batch size, lr, l2, KL reduction where not the default

- the run folder (:meth:`RunSpec.folder`, default ``<data dir>/runs/<store name>/<run id>``),
  where ``run.json`` records the spec so that folder → spec round-trips
  (:meth:`RunSpec.from_folder`);
- the identity columns of result rows (:meth:`RunSpec.identity_columns`).

Training (:class:`mtdtl.training.TrainConfig`), transfer evaluation, the baselines, the design
and the sweep, the CLI and the notebooks take their names from here.

Baselines are named by what they are (:func:`baseline_id`): ``mfcc``, ``choi``, and for a random
network its architecture, sources and seed (``rand-ss_r-seed0``), so two different Rand
representations never collide in a shared results table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from mtdtl.constants import SOURCE_NAMES, WIDTH_NAMES
from mtdtl.errors import MtdtlError

__all__ = ["RunSpec", "parse_sources", "sources_key", "arch_token", "arch_from_token", "baseline_id",
           "RUN_FILE", "IDENTITY_COLUMNS", "DEFAULTS"]

#: The file in a run folder that records its :class:`RunSpec`.
RUN_FILE = "run.json"

#: Result columns that identify what was evaluated (see :meth:`RunSpec.identity_columns`).
IDENTITY_COLUMNS = ("run", "representation", "kind", "arch", "sources", "n_sources", "seed", "epochs")

#: Defaults of the optional id fields (the paper's protocol, Section 3.4).
DEFAULTS = {"width": "full", "batch_size": 128, "lr": 2.5e-4, "l2": 1e-6, "kl_reduction": "batchmean"}
#: KL reductions (:mod:`mtdtl.training.losses`) and their id tokens.
_KL_TOKENS = {"batchmean": "", "elementwise_mean": "klelem"}

_ARCH_TOKENS = {"ss_r": "ss_r", "mss_cr": "mss_cr", "ms_cr@2": "ms_cr2", "ms_cr@4": "ms_cr4",
                "ms_cr@6": "ms_cr6", "ms_sr@fc": "ms_srfc"}
_TOKEN_ARCHS = {v: k for k, v in _ARCH_TOKENS.items()}
_ID = re.compile(r"^(?P<arch>[a-z_0-9]+)-(?P<sources>[a-z_+]+)-seed(?P<seed>\d+)-e(?P<epochs>\d+)(?P<rest>(-[^-]+)*)$")


def parse_sources(sources: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate learning source names and put them in :data:`~mtdtl.constants.SOURCE_NAMES` order.

    The one parser of source lists in mtdtl.

    Parameters
    ----------
    sources : str or iterable of str
        Names, or one string separated by ``,`` or ``+`` (``"self,tag"``, ``"self+tag"``).

    Raises
    ------
    MtdtlError
        Empty, unknown or repeated names.

    >>> parse_sources("tag+bpm")
    ('bpm', 'tag')
    """
    if sources is None:
        names: list[str] = []
    elif isinstance(sources, str):
        names = [s.strip() for s in sources.replace("+", ",").split(",") if s.strip()]
    else:
        names = [str(s).strip() for s in sources]
    if not names:
        raise MtdtlError(f"no learning sources given; choose from {', '.join(SOURCE_NAMES)}")
    unknown = [s for s in names if s not in SOURCE_NAMES]
    if unknown:
        raise MtdtlError(f"unknown learning source(s) {unknown}; valid: {', '.join(SOURCE_NAMES)}")
    if len(set(names)) != len(names):
        dup = sorted({s for s in names if names.count(s) > 1})
        raise MtdtlError(f"learning source(s) {dup} given more than once in {sources!r}")
    return tuple(s for s in SOURCE_NAMES if s in names)


def sources_key(sources: str | Iterable[str] | None) -> str:
    """Canonical text of a set of learning sources: ``"+"``-joined (``""`` for none).

    >>> sources_key(["tag", "bpm"])
    'bpm+tag'
    """
    if sources is None or (isinstance(sources, str) and not sources.strip()):
        return ""
    if not isinstance(sources, str):
        sources = list(sources)
        if not sources:
            return ""
    return "+".join(parse_sources(sources))


def _arch_id(arch: str) -> str:
    from mtdtl.models.registry import parse_arch

    return parse_arch(arch).id


def arch_token(arch: str) -> str:
    """Filesystem-safe token of an architecture id (``ms_cr@6`` → ``ms_cr6``)."""
    return _ARCH_TOKENS[_arch_id(arch)]


def arch_from_token(token: str) -> str:
    """Inverse of :func:`arch_token` (architecture ids are accepted too)."""
    if token in _TOKEN_ARCHS:
        return _TOKEN_ARCHS[token]
    return _arch_id(token)


def _fmt_float(x: float) -> str:
    """Shortest positional form (no exponent, so no ``-`` inside an id part): 2.5e-05 → 0.000025."""
    import numpy as np

    return np.format_float_positional(float(x), trim="-")


@dataclass(frozen=True)
class RunSpec:
    """What makes a training run distinct, and the names derived from it.

    Parameters
    ----------
    arch : str
        Architecture id (``ss_r``, ``mss_cr``, ``ms_cr@2``, ``ms_cr@4``, ``ms_cr@6``, ``ms_sr@fc``;
        the paper's spellings are accepted).
    sources : str or sequence of str
        Learning sources (see :func:`parse_sources`); stored as a canonical tuple.
    seed : int
        Seeds the initial weights and the sampler; a design's repetition is its seed.
    epochs : int
        N (200 in the paper).
    width : {"full", "tiny"}
        Table 3's network or the tiny test network.
    batch_size, lr, l2 :
        Optimiser settings (the paper's 128, 2.5e-4, 1e-6 by default).
    kl_reduction : {"batchmean", "elementwise_mean"}
        The true KL (default) or the released code's element-wise mean (id token ``klelem``).
    store : path, optional
        The spectrogram store it trains on. Not part of the id: runs are filed under the
        store's name (:meth:`folder`).
    """

    arch: str = "ms_cr@6"
    sources: Any = SOURCE_NAMES
    seed: int = 0
    epochs: int = 200
    width: str = "full"
    batch_size: int = 128
    lr: float = 2.5e-4
    l2: float = 1e-6
    kl_reduction: str = "batchmean"
    store: str | None = None

    def __post_init__(self) -> None:
        from mtdtl.models.registry import parse_arch

        spec = parse_arch(self.arch)
        set_ = object.__setattr__
        set_(self, "arch", spec.id)
        set_(self, "sources", parse_sources(self.sources))
        if not spec.multi_source and len(self.sources) != 1:
            raise MtdtlError(f"{spec.label} learns from exactly one source; got {list(self.sources)}. "
                             "Use mss_cr, ms_cr@2/4/6 or ms_sr@fc for several sources")
        for name in ("seed", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise MtdtlError(f"{name}={v!r}: must be an integer")
            try:
                iv = int(str(v).strip()) if isinstance(v, str) else int(v)
            except ValueError:
                raise MtdtlError(f"{name}={v!r}: must be an integer") from None
            if isinstance(v, float) and v != iv:
                raise MtdtlError(f"{name}={v!r}: must be a whole number")
            set_(self, name, iv)
        if self.seed < 0:
            raise MtdtlError(f"seed={self.seed}: must be >= 0")
        if self.epochs < 1:
            raise MtdtlError(f"epochs={self.epochs}: must be at least 1")
        if self.batch_size < 2:
            raise MtdtlError(f"batch_size={self.batch_size}: must be at least 2 (batch normalisation)")
        if self.width not in WIDTH_NAMES:
            raise MtdtlError(f"unknown width {self.width!r}; valid: {', '.join(WIDTH_NAMES)}")
        for name in ("lr", "l2"):
            try:
                set_(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                raise MtdtlError(f"{name}={getattr(self, name)!r}: must be a number") from None
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise MtdtlError(f"lr={self.lr}: must be a finite number > 0")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise MtdtlError(f"l2={self.l2}: must be a finite number >= 0")
        if self.kl_reduction not in _KL_TOKENS:
            raise MtdtlError(f"kl_reduction={self.kl_reduction!r}: use one of {', '.join(_KL_TOKENS)}")
        if self.store is not None:
            set_(self, "store", str(self.store))

    # -- names ---------------------------------------------------------------------------
    @property
    def n_sources(self) -> int:
        return len(self.sources)

    @property
    def sources_key(self) -> str:
        """``"+"``-joined sources (canonical order)."""
        return "+".join(self.sources)

    @property
    def id(self) -> str:
        """The run id: ``<arch>-<sources>-seed<seed>-e<epochs>[-tiny][-b<batch>][-lr<lr>][-l2_<l2>]``."""
        parts = [arch_token(self.arch), self.sources_key, f"seed{self.seed}", f"e{self.epochs}"]
        if self.width != DEFAULTS["width"]:
            parts.append(self.width)
        if self.batch_size != DEFAULTS["batch_size"]:
            parts.append(f"b{self.batch_size}")
        if self.lr != DEFAULTS["lr"]:
            parts.append(f"lr{_fmt_float(self.lr)}")
        if self.l2 != DEFAULTS["l2"]:
            parts.append(f"l2_{_fmt_float(self.l2)}")
        if _KL_TOKENS[self.kl_reduction]:
            parts.append(_KL_TOKENS[self.kl_reduction])
        return "-".join(parts)

    def __str__(self) -> str:
        return self.id

    @classmethod
    def from_id(cls, run_id: str, *, store: str | os.PathLike | None = None) -> "RunSpec":
        """Parse a run id made by :attr:`id` (the inverse; ``store`` is not in the id)."""
        m = _ID.match(str(run_id).strip())
        if not m:
            raise MtdtlError(f"{run_id!r} is not a run id (expected <arch>-<sources>-seed<N>-e<N>[-options], "
                             "e.g. 'ms_cr6-self+bpm-seed0-e30')")
        kw: dict[str, Any] = {"arch": arch_from_token(m["arch"]), "sources": m["sources"], "seed": int(m["seed"]),
                              "epochs": int(m["epochs"])}
        for tok in [t for t in m["rest"].split("-") if t]:
            if tok.startswith("l2_"):
                kw["l2"] = float(tok[3:])
            elif tok.startswith("lr"):
                kw["lr"] = float(tok[2:])
            elif re.fullmatch(r"b\d+", tok):
                kw["batch_size"] = int(tok[1:])
            elif tok in ("full", "tiny"):
                kw["width"] = tok
            elif tok in _KL_TOKENS.values():
                kw["kl_reduction"] = next(k for k, v in _KL_TOKENS.items() if v == tok)
            else:
                raise MtdtlError(f"run id {run_id!r}: unknown part {tok!r}")
        spec = cls(store=None if store is None else str(store), **kw)
        if spec.id != str(run_id).strip():
            raise MtdtlError(f"{run_id!r} is not in canonical form (did you mean {spec.id!r}?)")
        return spec

    def replace(self, **changes) -> "RunSpec":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # -- folders -------------------------------------------------------------------------
    def folder(self, root: str | os.PathLike | None = None) -> Path:
        """The run folder: ``<root>/<id>``; default root ``mtdtl.paths.runs_dir(store)``."""
        from mtdtl.paths import runs_dir

        base = Path(root).expanduser() if root is not None else runs_dir(self.store)
        return base / self.id

    def to_dict(self) -> dict:
        """JSON-ready dict (sources as a list)."""
        d = dataclasses.asdict(self)
        d["sources"] = list(self.sources)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise MtdtlError(f"unknown RunSpec fields {extra}")
        return cls(**d)

    def write(self, folder: str | os.PathLike) -> Path:
        """Record the spec as ``<folder>/run.json`` (atomic). Returns its path."""
        from mtdtl.io import atomic_write_text

        path = Path(folder) / RUN_FILE
        atomic_write_text(path, json.dumps({"id": self.id, **self.to_dict()}, indent=2) + "\n")
        return path

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "RunSpec":
        """The spec of a run folder: its ``run.json``, else its ``model.json``, else its name."""
        folder = Path(folder)
        f = folder / RUN_FILE
        if f.is_file():
            try:
                d = json.loads(f.read_text())
            except (OSError, ValueError) as e:
                raise MtdtlError(f"{f} is not readable JSON ({e}); delete it to re-derive it from model.json") from None
            d.pop("id", None)
            return cls.from_dict(d)
        meta = folder / "model.json"
        if meta.is_file():
            return cls.from_meta(json.loads(meta.read_text()))
        return cls.from_id(folder.name)

    @classmethod
    def from_meta(cls, meta: dict) -> "RunSpec":
        """The spec recorded in a checkpoint's ``model.json`` (its ``run`` or ``config`` entry)."""
        if isinstance(meta.get("run"), dict):
            d = dict(meta["run"])
            d.pop("id", None)
            return cls.from_dict(d)
        cfg = meta.get("config") or meta.get("training") or {}
        keys = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in cfg.items() if k in keys}
        d.setdefault("arch", meta.get("arch"))
        d.setdefault("sources", meta.get("sources"))
        if "width" not in d and meta.get("width"):
            d["width"] = meta["width"]
        return cls(**d)

    # -- results -------------------------------------------------------------------------
    def identity_columns(self) -> dict:
        """Identity columns of this run's result rows (see :data:`IDENTITY_COLUMNS`)."""
        return {"run": self.id, "representation": self.id, "kind": "learned", "arch": self.arch,
                "sources": self.sources_key, "n_sources": self.n_sources, "seed": self.seed, "epochs": self.epochs}


def baseline_id(kind: str, *, arch: str | None = None, sources: Any = None, seed: int = 0,
                width: str = "full") -> str:
    """Name of a baseline representation, by what it is.

    >>> baseline_id("rand", arch="ss_r", seed=0)
    'rand-ss_r-seed0'
    >>> baseline_id("rand", arch="ms_cr@6", sources="self+bpm", seed=0)
    'rand-ms_cr6-self+bpm-seed0'
    """
    if kind in ("mfcc", "choi", "chance"):
        return kind
    if kind != "rand":
        raise MtdtlError(f"unknown baseline kind {kind!r}; valid: mfcc, rand, choi, chance")
    if arch is None:
        raise MtdtlError("a rand baseline needs its architecture")
    parts = ["rand", arch_token(arch)]
    key = sources_key(sources)
    if key and _arch_id(arch) != "ss_r":
        parts.append(key)
    parts.append(f"seed{int(seed)}")
    if width != "full":
        parts.append(width)
    return "-".join(parts)
