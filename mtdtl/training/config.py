"""Configuration of a training run: :class:`TrainConfig` (its identity is a :class:`mtdtl.runs.RunSpec`).
"""

from __future__ import annotations

import dataclasses
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

#: Config fields that define a run: resuming with any of them changed is an error.
IDENTITY_FIELDS = ("arch", "sources", "batch_size", "lr", "l2", "seed", "width")


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
    bf16 : bool or "auto"
        bf16 autocast; ``"auto"``: where the hardware does bf16 natively.
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
    bf16: Any = "auto"
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
        for name in ("epochs", "batch_size", "checkpoint_every", "seed", "prefetch"):
            setattr(self, name, int(getattr(self, name)))
        self.lr, self.l2 = float(self.lr), float(self.l2)
        if self.epochs < 1:
            raise MtdtlError(f"epochs={self.epochs}: must be at least 1")
        if self.batch_size < 2:
            raise MtdtlError(f"batch_size={self.batch_size}: must be at least 2 (batch normalisation)")
        if not self.lr > 0 or not self.l2 >= 0:
            raise MtdtlError(f"lr={self.lr} must be > 0 and l2={self.l2} >= 0")
        if self.checkpoint_every < 1:
            raise MtdtlError(f"checkpoint_every={self.checkpoint_every}: must be at least 1")
        if self.max_steps is not None:
            self.max_steps = int(self.max_steps)
        if self.valid_batch_size is not None:
            self.valid_batch_size = int(self.valid_batch_size)
        if self.store is not None:
            self.store = str(self.store)
        if self.out_dir is not None:
            self.out_dir = str(self.out_dir)
        if isinstance(self.bf16, str) and self.bf16.strip().lower() in ("true", "false"):
            self.bf16 = self.bf16.strip().lower() == "true"

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

    @property
    def spec(self) -> "RunSpec":
        """The run's identity (:class:`mtdtl.runs.RunSpec`): its id, folder and result columns."""
        from mtdtl.runs import RunSpec

        return RunSpec(arch=self.arch, sources=self.sources, seed=self.seed, epochs=self.epochs, width=self.width,
                       batch_size=self.batch_size, lr=self.lr, l2=self.l2, store=self.store)

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
