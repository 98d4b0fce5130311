"""Configuration of a training run: :class:`TrainConfig` (its identity is a :class:`mtdtl.runs.RunSpec`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.models import WIDTHS, canonical_sources, parse_arch


if TYPE_CHECKING:
    from mtdtl.runs import RunSpec

log = get_logger(__name__)

STATE_NAME = "train_state.safetensors"
LOG_NAME = "log.jsonl"
METRICS_NAME = "metrics.json"
CURVES_NAME = "curves.png"

LOCK_NAME = ".lock"

#: Config fields that define a run: resuming with any of them changed is an error.
IDENTITY_FIELDS = ("arch", "sources", "batch_size", "lr", "l2", "seed", "width", "kl_reduction")

#: ``precision`` values: fp32, bf16 autocast, or bf16 where the hardware does it natively.
PRECISIONS = ("fp32", "bf16", "auto")

#: ``kl_reduction`` values (see :func:`mtdtl.training.losses.kl_loss`).
KL_REDUCTIONS = ("batchmean", "elementwise_mean")

#: Prefix of a path recorded relative to the data directory (:func:`mtdtl.paths.data_dir`).
DATA_DIR_TOKEN = "<data dir>"


def portable_path(path: str | os.PathLike | None) -> str | None:
    """``path`` as recorded in a run folder: ``"<data dir>/stores/x"`` when it lies inside
    :func:`mtdtl.paths.data_dir`, else absolute. Run folders stay movable with their data dir."""
    from mtdtl.paths import data_dir

    if path is None:
        return None
    s = str(path)
    if s.startswith(DATA_DIR_TOKEN):
        return s
    p = Path(s).expanduser().resolve()
    try:
        rel = p.relative_to(data_dir().expanduser().resolve())
    except ValueError:
        return str(p)
    return f"{DATA_DIR_TOKEN}/{rel.as_posix()}" if str(rel) != "." else DATA_DIR_TOKEN


def resolve_path(recorded: str | os.PathLike | None) -> Path | None:
    """Inverse of :func:`portable_path`: ``"<data dir>/..."`` under today's data dir, else the path."""
    from mtdtl.paths import data_dir

    if recorded is None:
        return None
    s = str(recorded)
    if s == DATA_DIR_TOKEN:
        return data_dir()
    if s.startswith(DATA_DIR_TOKEN + "/"):
        return data_dir() / s[len(DATA_DIR_TOKEN) + 1:]
    return Path(s).expanduser()


def _int(name: str, value: Any, *, minimum: int | None = None, allow_none: bool = False,
         none_hint: str = "") -> int | None:
    """``value`` as an int (whole numbers and their strings only), or an MtdtlError naming ``name``."""
    if value is None and allow_none:
        return None
    bad = MtdtlError(f"{name}={value!r}: must be a whole number{none_hint}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) and not hasattr(value, "__index__"):
        raise bad
    if isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            raise bad from None
        value = f
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise bad
    iv = int(value)
    if minimum is not None and iv < minimum:
        raise MtdtlError(f"{name}={iv}: must be at least {minimum}{none_hint}")
    return iv


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise MtdtlError(f"{name}={value!r}: must be a number")
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise MtdtlError(f"{name}={value!r}: must be a number") from None


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ("true", "1", "yes", "on"):
            return True
        if key in ("false", "0", "no", "off"):
            return False
        raise MtdtlError(f"{name}={value!r}: use True or False")
    if value in (True, False, 0, 1):
        return bool(value)
    raise MtdtlError(f"{name}={value!r}: use True or False")


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Everything that defines one training run.

    Parameters
    ----------
    arch : str
        Architecture id (``ss_r``, ``mss_cr``, ``ms_cr@2``, ``ms_cr@4``, ``ms_cr@6``, ``ms_sr@fc``).
    sources : str or sequence of str
        Learning sources (list, or a ``,``/``+``-separated string); stored in canonical order
        (:func:`mtdtl.runs.parse_sources`).
    store : path
        Spectrogram store folder with reduced labels (``mtdtl.preprocess.preprocess_corpus``).
    out_dir : path, optional
        Run folder; default :meth:`mtdtl.runs.RunSpec.folder`: ``<data dir>/runs/<store name>/<run id>``
        (e.g. ``.../runs/demo-small-seed0/ms_cr6-self+bpm-seed0-e30``).
    epochs : int
        N (200 in the paper).
    batch_size : int
        b (128); ``self`` batches are b pairs.
    lr : float
        Adam's learning rate (2.5e-4).
    l2 : float
        L2 weight on all parameters (1e-6), applied as Adam's weight decay (module docstring).
    seed : int
        Seeds the initial weights, dropout, and the sampler of sources, tracks and crops.
    width : {"full", "tiny"}
        Table 3's network or the tiny test network.
    device : str, optional
        ``None``/``"auto"``: CUDA when present, else CPU.
    precision : {"fp32", "bf16", "auto"}
        Arithmetic of the forward pass: ``"fp32"`` (default: the paper's), ``"bf16"`` (bf16
        autocast; losses in float32) or ``"auto"`` (bf16 where the hardware does bf16 natively —
        recent GPUs, CPUs with AMX/avx512_bf16 —, else fp32: faster, an option until its effect
        on the learned representation is measured on the demo tasks). The precision actually
        used is recorded in ``model.json`` and ``metrics.json`` (``"precision"``). A resumed
        ``"auto"`` run keeps the precision it started with. Not part of the run's identity.
    bf16 : bool or "auto", optional
        Older spelling of ``precision`` (``True`` = ``"bf16"``, ``False`` = ``"fp32"``); ``None``
        (default): use ``precision``.
    kl_reduction : {"batchmean", "elementwise_mean"}
        How the KL loss of a batch is reduced (paper-silent). ``"batchmean"`` (default): the
        true KL divergence, summed over the k outputs and averaged over the batch.
        ``"elementwise_mean"``: the authors' released code, averaged over batch *and* outputs
        (KL / k; the ``self`` cross-entropy / 2): it weights ``self`` 25x more relative to
        the other sources (k = 50) and the L2 term 50x more. Part of the run's identity.
        Logged losses are in the true KL / cross-entropy units either way.
    channels_last : bool, optional
        NHWC memory layout for the model and inputs (faster on CPU and recent GPUs at full
        width). ``None``: on for ``width="full"``, off for ``"tiny"`` (NHWC kernels are slower
        than NCHW for its 4-16 channels).
    num_threads : int, optional
        CPU threads (default ``$MTDTL_NUM_THREADS`` or torch's default).
    checkpoint_every : int
        Write the checkpoint every k epochs (and always at the end).
    keep_checkpoints : bool
        Also keep each of those checkpoints under ``checkpoints/epoch-NNNN/``.
    valid_batch_size : int, optional
        Batch size of validation (default: ``batch_size``).
    loader_threads : int, optional
        Background threads reading batches (default 1 on CPU, 4 on CUDA; 0: read in the loop).
    prefetch : int
        Batches read ahead.
    max_steps : int, optional
        Stop (with a resumable checkpoint) once this many iterations are done in total (tests,
        time-boxed jobs). Not part of the run's identity.
    deterministic : bool
        On CUDA, deterministic cuDNN kernels (slower). CPU runs are deterministic anyway.
    """

    arch: str = "ms_cr@6"
    sources: Any = SOURCE_NAMES
    store: Any = None
    out_dir: Any = None
    epochs: int = 200
    batch_size: int = 128
    lr: float = 2.5e-4
    l2: float = 1e-6
    seed: int = 0
    width: str = "full"
    device: str | None = None
    precision: str | None = None  # None: "fp32", or what the older ``bf16`` field says
    bf16: Any = None
    kl_reduction: str = "batchmean"
    channels_last: bool | None = None
    num_threads: int | None = None
    checkpoint_every: int = 1
    keep_checkpoints: bool = False
    valid_batch_size: int | None = None
    loader_threads: int | None = None
    prefetch: int = 4
    max_steps: int | None = None
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.arch = parse_arch(self.arch).id
        self.sources = canonical_sources(self.sources)
        if not parse_arch(self.arch).multi_source and len(self.sources) != 1:
            raise MtdtlError(f"{parse_arch(self.arch).label} learns from exactly one source; got {list(self.sources)}. "
                             "Use mss_cr, ms_cr@2/4/6 or ms_sr@fc for several sources")
        if self.width not in WIDTHS:
            raise MtdtlError(f"unknown width {self.width!r}; valid: {', '.join(WIDTHS)}")
        self.epochs = _int("epochs", self.epochs, minimum=1)
        self.batch_size = _int("batch_size", self.batch_size)
        if self.batch_size < 2:
            raise MtdtlError(f"batch_size={self.batch_size}: must be at least 2 (batch normalisation)")
        self.checkpoint_every = _int("checkpoint_every", self.checkpoint_every, minimum=1)
        self.seed = _int("seed", self.seed, minimum=0)
        self.prefetch = _int("prefetch", self.prefetch, minimum=1)
        self.max_steps = _int("max_steps", self.max_steps, minimum=1, allow_none=True,
                              none_hint=" (or None for no limit)")
        self.valid_batch_size = _int("valid_batch_size", self.valid_batch_size, minimum=1, allow_none=True,
                                     none_hint=" (or None for batch_size)")
        self.loader_threads = _int("loader_threads", self.loader_threads, minimum=0, allow_none=True)
        self.num_threads = _int("num_threads", self.num_threads, minimum=1, allow_none=True)
        self.lr, self.l2 = _float("lr", self.lr), _float("l2", self.l2)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise MtdtlError(f"lr={self.lr}: must be a finite number > 0 (the paper's is 2.5e-4)")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise MtdtlError(f"l2={self.l2}: must be a finite number >= 0 (the paper's is 1e-6)")
        self.keep_checkpoints = _bool("keep_checkpoints", self.keep_checkpoints)
        self.deterministic = _bool("deterministic", self.deterministic)
        if self.channels_last is not None:
            self.channels_last = _bool("channels_last", self.channels_last)
        if self.store is not None:
            self.store = str(resolve_path(self.store))
        if self.out_dir is not None:
            self.out_dir = str(Path(str(self.out_dir)).expanduser())
        self.precision = self._precision()
        self.bf16 = None
        red = str(self.kl_reduction).strip().lower()
        if red not in KL_REDUCTIONS:
            raise MtdtlError(f"kl_reduction={self.kl_reduction!r}: use one of {', '.join(KL_REDUCTIONS)}")
        self.kl_reduction = red
        _ = self.spec  # the run's identity validates too (one set of rules with mtdtl.runs.RunSpec)

    def _precision(self) -> str:
        p = str(self.precision).strip().lower() if self.precision is not None else None
        aliases = {"float32": "fp32", "32": "fp32", "bfloat16": "bf16"}
        p = aliases.get(p, p)
        if p is not None and p not in PRECISIONS:
            raise MtdtlError(f"precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.bf16 is None:
            return p or "fp32"  # the paper's arithmetic by default
        b = self.bf16
        if isinstance(b, str) and b.strip().lower() in ("auto", ""):
            from_bf16 = "auto"
        else:
            try:
                from_bf16 = "bf16" if _bool("bf16", b) else "fp32"
            except MtdtlError:
                raise MtdtlError(f"bf16={b!r}: use True, False or 'auto' (or precision='fp32'|'bf16'|'auto')") from None
        if p not in (None, "auto") and from_bf16 != p:
            raise MtdtlError(f"precision={p!r} and bf16={b!r} disagree: set precision only")
        return from_bf16

    def to_dict(self) -> dict:
        """JSON-ready dict (``sources`` as a list)."""
        d = dataclasses.asdict(self)
        d["sources"] = list(self.sources)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise MtdtlError(f"unknown TrainConfig fields {extra}")
        return cls(**d)

    def to_record(self) -> dict:
        """:meth:`to_dict` as written into a run folder: the store as :func:`portable_path`."""
        d = self.to_dict()
        d["store"] = portable_path(self.store)
        return d

    @property
    def spec(self) -> "RunSpec":
        """The run's identity (:class:`mtdtl.runs.RunSpec`): its id, folder and result columns."""
        from mtdtl.runs import RunSpec

        return RunSpec(arch=self.arch, sources=self.sources, seed=self.seed, epochs=self.epochs, width=self.width,
                       batch_size=self.batch_size, lr=self.lr, l2=self.l2, kl_reduction=self.kl_reduction,
                       store=self.store)

    @classmethod
    def from_spec(cls, spec: "RunSpec", **settings) -> "TrainConfig":
        """The configuration of a :class:`~mtdtl.runs.RunSpec` plus run settings (device, out_dir, ...)."""
        d = spec.to_dict()
        return cls(**{**d, **settings})

    def identity(self) -> dict:
        """The fields that define the run (see :data:`IDENTITY_FIELDS`)."""
        d = self.to_dict()
        return {k: d[k] for k in IDENTITY_FIELDS}


def default_out_dir(config: TrainConfig) -> Path:
    """The run's default folder: :meth:`mtdtl.runs.RunSpec.folder` (``<data dir>/runs/<store>/<run id>``)."""
    return config.spec.folder()
