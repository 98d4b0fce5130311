"""Training a representation network with Algorithm 1 (Kim et al., 2019, Section 3.3).

Usage (a notebook is these few calls)::

    from mtdtl.training import TrainConfig, train, plot_curves
    cfg = TrainConfig(arch="ms_cr@6", sources="self,tag,year", store=store_dir, out_dir=run_dir, epochs=20)
    run_dir = train(cfg)                 # resumes by itself when run_dir holds this run
    plot_curves(run_dir)                 # learning curves per source (a matplotlib Figure)

What one run does
-----------------
- **Model**: :func:`mtdtl.models.build_model` with ``arch``, ``sources``, ``width`` and the
  reduced labels' k as fc-output size, initialised from ``seed``.
- **Iterations** (:mod:`mtdtl.training.sampling`): pick a source uniformly, draw a batch of
  training tracks that have its labels, a random 2.5 s crop of each (new every draw); balanced
  same/different-track pairs for ``self``. An epoch is ``L = l * m`` iterations.
- **Loss**: KL(z_t ‖ softmax(f_t(X))), mean over the batch (:func:`kl_loss`); cross-entropy
  of the same-track decision for ``self`` (:func:`self_loss`). Computed in float32 even under
  bf16 autocast.
- **Optimiser**: Adam, learning rate 2.5e-4, L2 1e-6 on all parameters as Adam's (coupled)
  ``weight_decay``: the gradient of ``l2 / 2 * ||θ||²`` is added to every parameter's gradient
  before the Adam update, the same as adding that term to the loss, and what the authors' code
  did. Only the parameters on the current iteration's path (shared trunk, the source's branch
  and head) get a gradient and an update: an inactive branch is neither decayed nor pushed on
  by its stale Adam momentum while other sources train. (An L2 term added to the loss over
  *all* parameters would move every idle branch at every step through Adam's momentum.)
- **Validation** every epoch on the whole validation split, per source, with fixed crops:
  mean KL (and for ``self`` cross-entropy and accuracy).
- **Output** in ``out_dir``: ``model.safetensors`` + ``model.json`` (the checkpoint, see
  :mod:`mtdtl.checkpoint`), ``train_state.safetensors`` (everything needed to resume),
  ``log.jsonl`` (one JSON object per epoch), and at the end ``metrics.json`` and
  ``curves.png``.

Resuming
--------
A checkpoint is written every ``checkpoint_every`` epochs, at the end, when ``max_steps`` is
reached and on Ctrl-C (after the current step). It holds the model, Adam's state, every RNG
state (python, numpy, torch CPU/CUDA, the sampler's own generator) and the position inside the
epoch. Calling :func:`train` again with the same configuration continues from there; on the CPU,
with the same thread count, the result is bit-identical to an uninterrupted run (tested). A
finished run is never retrained or overwritten; asking for more epochs than a finished run had
continues it. A different configuration in the same ``out_dir`` is an error.

Crash safety
------------
Every checkpoint writes ``model.safetensors``, then ``model.json``, then
``train_state.safetensors`` last: the training state is the commit point. A run is *finished*
only when its state says so **and** ``metrics.json`` is there and the checkpoint is whole (its
sha256 and its step match the state). Whatever the moment a process dies (power cut, OOM
kill), running :func:`train` again with the same configuration recovers, and the result is
bit-identical to an uninterrupted run (tested by killing a trainer at every write of the final
save):

- killed before the state is written: the older state is resumed and the lost part retrained
  (an interrupted *first* checkpoint, with no state at all, starts the run over: the folder's
  ``run.json`` identifies it as this run's);
- killed after it: the checkpoint is checked (and rewritten from the state's weights when it
  is not whole), then ``curves.png`` and, last, ``metrics.json`` are written.

Temporary files a killed writer left behind are removed. While a trainer works in a folder
it holds an exclusive lock on ``<run>/.lock`` (:class:`mtdtl.training.lock.RunLock`): a second
trainer gets a clear error instead of interleaving ``log.jsonl``; the lock of a dead process
is taken over.

Divergence
----------
A loss that is not finite (NaN or inf: too high a learning rate, NaN input) stops the run with
an :class:`~mtdtl.errors.MtdtlError`; nothing is saved, so the last good checkpoint stays on
disk. The check costs no extra GPU synchronisation per step: the loss is read every 20
iterations (as the progress bar does), the per-source sums at the end of an epoch, and the
weights once before each checkpoint.

Speed
-----
CUDA when present, else CPU (:mod:`mtdtl.device`). fp32 by default (the paper's); bf16
autocast with ``precision="bf16"``, or ``precision="auto"`` where the hardware does bf16 natively; the precision used (``"fp32"`` or
``"bf16"``; ``"mixed"`` when sessions of one run differed) is recorded in ``model.json`` and
``metrics.json``. ``channels_last`` is on by default. On the CPU set
``THP_MEM_ALLOC_ENABLE=1`` before Python starts (``scripts/test.sh`` does) and choose
``num_threads``. Batches are read by background threads ahead of the step.

Channels-last is on by default for the full-width network only.

"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from mtdtl.io import atomic_path, atomic_write_text
from mtdtl.checkpoint import (
    checkpoint_files, jsonable, load_state, package_versions, read_meta, read_state_info, save_checkpoint,
    save_state, verify_checkpoint,
)
from mtdtl.constants import K
from mtdtl.device import (
    cpu_speed_hints, device_summary, resolve_bf16, resolve_device, retain_cpu_memory, seed_everything,
    set_num_threads,
)
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger
from mtdtl.models import build_model, count_parameters, parse_arch
from mtdtl.training.sampling import (
    Batch, data_fingerprint, epoch_length, make_rng, plan_epoch, source_data, validation_batches,
)
from mtdtl.training.state import optimizer_from_state, optimizer_to_state, rng_from_state, rng_to_state

from mtdtl.training.config import (
    CURVES_NAME, IDENTITY_FIELDS, LOCK_NAME, LOG_NAME, METRICS_NAME, STATE_NAME, TrainConfig, default_out_dir,
    portable_path,
)
from mtdtl.training.lock import RunLock
from mtdtl.training.losses import kl_loss, self_loss
from mtdtl.training.runlog import log_table, read_log  # noqa: F401  (re-exported)
from mtdtl.training.batches import _Loader

log = get_logger(__name__)

class _StopOnSigint:
    """First Ctrl-C: finish the current step, checkpoint, then raise KeyboardInterrupt.
    Second Ctrl-C: raise at once. (Only in the main thread; elsewhere a no-op.)"""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> "_StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                if self.requested:
                    raise KeyboardInterrupt
                self.requested = True
                log.warning("interrupt: stopping after this step with a checkpoint (Ctrl-C again to abort now)")
            try:
                self._old = signal.signal(signal.SIGINT, handler)
            except ValueError:  # pragma: no cover - not the main interpreter
                self._old = None
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# ---------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------

def _atomic_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


#: Files of a run folder that are written atomically (their temporaries are cleaned on start).
_RUN_FILES = ("model.safetensors", "model.json", STATE_NAME, METRICS_NAME, CURVES_NAME, LOG_NAME, "run.json")

#: Iterations between two reads of the loss (the finiteness check; the progress bar reads it too).
CHECK_EVERY = 20


def _make_run_dir(path: Path) -> None:
    """Create the run folder, or raise a clear error when the path (or a parent) is a file."""
    from mtdtl.store.build import make_out_dir

    make_out_dir(path, what="out_dir")


def _read_json(path: Path) -> dict | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _same_identity(saved: dict, cfg: TrainConfig) -> bool:
    """Whether a recorded config (``model.json``'s ``training``, a state's ``config``) is ``cfg``'s run."""
    try:
        other = TrainConfig.from_dict(saved)
    except (MtdtlError, TypeError):
        return False
    return other.identity() == cfg.identity()


class _Diverged(MtdtlError):
    pass


class _Run:
    def __init__(self, cfg: TrainConfig, *, progress: bool) -> None:
        self.cfg = cfg
        self.progress = progress
        self.spec = parse_arch(cfg.arch)
        if cfg.store is None:
            raise MtdtlError("TrainConfig.store is not set: pass the folder written by mtdtl.preprocess.preprocess_corpus")
        self.out = Path(cfg.out_dir) if cfg.out_dir is not None else default_out_dir(cfg)
        self._saved = None
        self.precisions: list[str] = []

    # -- data ------------------------------------------------------------------------
    def open_data(self) -> None:
        from mtdtl.sources import load_reduced
        from mtdtl.store import SpectrogramStore

        cfg = self.cfg
        self.store = SpectrogramStore.open(cfg.store)
        if len(self.store.indices("train")) == 0:
            raise MtdtlError(f"store {cfg.store} has no clips in the 'train' split; nothing to train on")
        self.labels = load_reduced(cfg.store, sources=list(cfg.sources))
        self.train_data = source_data(self.store, self.labels, "train", cfg.sources)
        self.valid_data = source_data(self.store, self.labels, "valid", cfg.sources)
        for name, d in self.train_data.items():
            if len(d) == 0:
                raise MtdtlError(f"source {name!r} has no labels for any track of the training split of {cfg.store}; "
                                 "leave it out of `sources` or add labels")
            if len(d) < 2:
                raise MtdtlError(f"source {name!r} has labels for only one training track; at least 2 are needed "
                                 "(batch normalisation, and different-track pairs for self)")
        ks = {name: self.labels[name].k for name in cfg.sources if name != "self"}
        if len(set(ks.values())) > 1:
            raise MtdtlError(f"the sources' reduced labels have different k {ks}; reduce them with one k")
        self.n_out = next(iter(ks.values())) if ks else K
        if self.n_out < 1:
            raise MtdtlError(f"reduced labels with k = 0 for {list(ks)}: rerun preprocessing")
        self.L = epoch_length(self.train_data, cfg.batch_size)
        vb = cfg.valid_batch_size or cfg.batch_size
        self.valid_batches = validation_batches(self.valid_data, vb, cfg.seed)
        for name, bs in self.valid_batches.items():
            if not bs:
                log.warning("source %r has no validation tracks: no validation score for it", name)
        self.fingerprint = data_fingerprint(self.train_data, self.valid_data, self.store.track_ids)

    # -- existing output --------------------------------------------------------------
    def completed(self) -> bool:
        """Whether ``out_dir`` holds this run finished with ``epochs`` epochs and every output whole:
        the state (when present) says finished, ``metrics.json`` is there, and the checkpoint
        verifies (sha256) at the state's step. Reads headers and hashes the weights; no store needed."""
        cfg = self.cfg
        metrics = _read_json(self.out / METRICS_NAME)
        if not (metrics and metrics.get("finished") and metrics.get("epochs") == cfg.epochs):
            return False
        state_path = self.out / STATE_NAME
        if state_path.is_file():
            try:
                info = read_state_info(state_path)
            except MtdtlError:
                return False
            if not (info.get("finished") and info.get("epoch") == cfg.epochs and _same_identity(info["config"], cfg)):
                return False
            step = info.get("step")
        else:  # a finished run whose (large) training state was deleted to save space
            if not _same_identity(metrics.get("config") or {}, cfg):
                return False
            step = metrics.get("steps")
        meta = _read_json(self.out / "model.json") or {}
        if meta.get("step") != step or not meta.get("finished"):
            return False
        problem = verify_checkpoint(self.out)
        if problem:
            log.warning("%s: the checkpoint is not whole (%s)", self.out, problem)
            return False
        return True

    def clean_temporaries(self) -> None:
        """Remove the temporary files of writers that died (call with the lock held)."""
        for name in _RUN_FILES:
            for tmp in self.out.glob(f".{name}.*.tmp*"):
                log.debug("removing %s (left by an interrupted writer)", tmp)
                tmp.unlink(missing_ok=True)

    def _interrupted_first_save(self, meta: dict) -> bool:
        """A checkpoint without training state that this run left when killed during its first save
        (before the state, the commit point, was written): ``run.json`` is this run's, the
        checkpoint's recorded config (if it got that far) too, and there is no ``metrics.json``."""
        from mtdtl.runs import RunSpec

        if (self.out / METRICS_NAME).exists():
            return False
        try:
            spec = RunSpec.from_folder(self.out) if (self.out / "run.json").is_file() else None
        except (MtdtlError, TypeError, ValueError):
            spec = None
        mine = self.cfg.spec
        if spec is None or spec.replace(epochs=mine.epochs, store=mine.store) != mine:
            return False
        training = meta.get("training")
        return training is None or _same_identity(training, self.cfg)

    def inspect_out_dir(self) -> dict | None:
        """The saved state's info when ``out_dir`` holds this run; raise when it holds another."""
        cfg = self.cfg
        state_path = self.out / STATE_NAME
        self._saved = None
        if state_path.is_file():
            tensors, info = load_state(state_path)
            self._saved = (tensors, info)
            saved = TrainConfig.from_dict(info["config"])
            if saved.arch != cfg.arch:
                raise MtdtlError(f"{self.out} holds a checkpoint of a {parse_arch(saved.arch).label} ({saved.arch}) "
                                 f"network, not {self.spec.label} ({cfg.arch}): choose another out_dir")
            diff = {k: (saved.identity()[k], cfg.identity()[k]) for k in IDENTITY_FIELDS
                    if saved.identity()[k] != cfg.identity()[k]}
            if diff:
                raise MtdtlError(f"{self.out} holds another run (saved vs asked: {diff}); choose another out_dir "
                                 "or delete that folder")
            if info["epoch"] > cfg.epochs:
                raise MtdtlError(f"{self.out} already holds {info['epoch']} epochs, more than epochs={cfg.epochs}")
            return info
        wpath, mpath = checkpoint_files(self.out)
        if mpath.is_file() or wpath.is_file():
            try:
                meta = read_meta(self.out)
            except MtdtlError:
                meta = {}
            if meta.get("arch") not in (None, cfg.arch):
                raise MtdtlError(f"{self.out} holds a checkpoint of a {meta['arch']} network, not {cfg.arch}: "
                                 "choose another out_dir")
            if self._interrupted_first_save(meta):
                log.warning("%s holds a checkpoint of this run but no training state: the first checkpoint was "
                            "interrupted; starting the run over", self.out)
                return None
            metrics = _read_json(self.out / METRICS_NAME) or {}
            if metrics.get("finished"):
                raise MtdtlError(f"{self.out} holds a finished run of {metrics.get('epochs')} epochs whose training "
                                 f"state ({STATE_NAME}) was deleted: it cannot be continued to epochs={cfg.epochs}; "
                                 "choose another out_dir")
            raise MtdtlError(f"{self.out} holds a checkpoint without training state ({STATE_NAME}); "
                             "refusing to overwrite it: choose another out_dir")
        return None

    # -- setup -------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        self.bf16 = self._resolve_precision()
        self.channels_last = cfg.width == "full" if cfg.channels_last is None else bool(cfg.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.deterministic
            torch.backends.cudnn.deterministic = bool(cfg.deterministic)
        else:
            for hint in cpu_speed_hints():
                log.info("speed hint: %s", hint)
        threads = cfg.loader_threads if cfg.loader_threads is not None else (4 if self.device.type == "cuda" else 1)
        self.loader = _Loader(self.store, self.device, channels_last=self.channels_last, threads=threads,
                              prefetch=cfg.prefetch)
        self.model = build_model(cfg.arch, cfg.sources, width=cfg.width, n_out=self.n_out, seed=cfg.seed)
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        kw = {"fused": True} if self.device.type == "cuda" else {}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.l2, **kw)
        red = cfg.kl_reduction
        self.kl_reduction = red
        self.self_reduction = "mean" if red == "batchmean" else red
        # logged losses are in true KL / cross-entropy units whatever the reduction
        self.log_scale = {s: 1.0 if red == "batchmean" else float(2 if s == "self" else self.n_out)
                          for s in cfg.sources}
        self.sampler = make_rng(cfg.seed, 1)
        self.epoch = 0          # completed epochs
        self.pos = 0            # iterations done in the current epoch
        self.step = 0           # iterations done in total
        self.elapsed = 0.0      # training seconds over all sessions
        self.epoch_start_state = None
        self.acc: dict[str, list] = {}
        self.finished = False
        self.last_good: dict | None = None  # epoch/step of the checkpoint on disk
        if self._saved is None:
            seed_everything(cfg.seed)
            self.reset_acc()
            _make_run_dir(self.out)
            cfg.spec.replace(store=portable_path(cfg.store)).write(self.out)  # run.json: folder -> spec
            (self.out / LOG_NAME).unlink(missing_ok=True)
            (self.out / METRICS_NAME).unlink(missing_ok=True)
        else:
            self.restore(*self._saved)
            self._saved = None  # the tensors are in the model now
            if not self.finished:  # continuing: a finished run's metrics no longer describe it
                (self.out / METRICS_NAME).unlink(missing_ok=True)
        if self.epoch < cfg.epochs and self.precision not in self.precisions:
            self.precisions.append(self.precision)

    def _resolve_precision(self) -> bool:
        """bf16 autocast on or off; an ``"auto"`` run resumed keeps the precision it started with
        where this hardware does it natively."""
        p = self.cfg.precision
        info = self._saved[1] if self._saved is not None else {}
        self.precisions = list(info.get("precisions", []))
        bf16 = resolve_bf16({"auto": "auto", "fp32": False, "bf16": True}[p], self.device)
        if p == "auto" and len(self.precisions) == 1:
            native = resolve_bf16("auto", self.device)
            if self.precisions[0] == "bf16" and native:
                bf16 = True
            elif self.precisions[0] == "fp32":
                bf16 = False
        self.precision = "bf16" if bf16 else "fp32"
        if self.precisions and self.precision not in self.precisions and info.get("epoch", 0) < self.cfg.epochs:
            log.warning("%s was trained in %s so far and continues in %s: recorded as precision 'mixed'",
                        self.out, "+".join(self.precisions), self.precision)
        return bf16

    @property
    def precision_record(self) -> str:
        """``"fp32"`` or ``"bf16"``, or ``"mixed"`` when the sessions of this run differed."""
        p = self.precisions or [self.precision]
        return p[0] if len(p) == 1 else "mixed"

    def reset_acc(self) -> None:
        self.acc = {s: [torch.zeros((), dtype=torch.float64, device=self.device), 0, 0] for s in self.cfg.sources}
        self.epoch_time = 0.0

    def restore(self, tensors: dict, info: dict) -> None:
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_state, strict=True)
        except RuntimeError as err:
            raise MtdtlError(f"{self.out / STATE_NAME} does not fit this model: {str(err).splitlines()[0]}") from None
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        optimizer_from_state(self.opt, tensors, info["optimizer"])
        rng_from_state(self.sampler, tensors, info["rng"])
        self.epoch, self.pos, self.step = int(info["epoch"]), int(info["pos"]), int(info["step"])
        self.last_good = {"epoch": self.epoch, "step": self.step}
        self.elapsed = float(info["elapsed_s"])
        self.finished = bool(info.get("finished")) and self.epoch >= self.cfg.epochs
        self.reset_acc()
        for s, (total, n_iter, n_samples) in info["acc"].items():
            self.acc[s] = [torch.tensor(float(total), dtype=torch.float64, device=self.device), int(n_iter), int(n_samples)]
        self.epoch_time = float(info.get("epoch_time_s", 0.0))
        if self.pos > 0:  # replay this epoch's plan from its start, then skip what is done
            self.epoch_start_state = info["epoch_start_sampler"]
            self.sampler.bit_generator.state = copy.deepcopy(self.epoch_start_state)
        # the log keeps only the epochs this state has seen
        records = [r for r in read_log(self.out) if r.get("epoch", 0) <= self.epoch]
        _atomic_text(self.out / LOG_NAME, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        if self.finished:
            log.info("%s: finished run, completing its outputs", self.out)
        else:
            log.info("resuming %s at epoch %d, iteration %d of %d (step %d)", self.out, self.epoch + 1, self.pos,
                     self.L, self.step)

    # -- saving ------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict:
        spec = self.cfg.spec
        return {
            "front_end": self.store.front_end.to_dict(),
            "scaler": self.store.scaler,
            "store": portable_path(self.cfg.store),
            "training": self.cfg.to_record(),
            "run": {"id": spec.id, **spec.to_dict(), "store": portable_path(self.cfg.store)},
            "epoch": self.epoch,
            "step": self.step,
            "finished": self.finished,
            "precision": self.precision_record,
            "kl_reduction": self.cfg.kl_reduction,
            "params": count_parameters(self.model),
            "data_fingerprint": self.fingerprint,
        }

    def _diverged(self, what: str) -> _Diverged:
        where = f"epoch {self.epoch + 1}, by step {self.step}"
        if self.last_good:
            kept = (f"the last good checkpoint (epoch {self.last_good['epoch']}, step {self.last_good['step']}) is "
                    f"kept in {self.out}")
        else:
            kept = "no checkpoint had been written yet"
        return _Diverged(f"training diverged ({where}): {what} is not finite (NaN or inf). Nothing was saved; {kept}. "
                         f"Lower the learning rate (lr={self.cfg.lr:g}) and train into a new out_dir, or check the "
                         "store for NaN/inf values")

    def check_finite(self) -> None:
        """Raise when the weights, batch-norm statistics or loss sums are not finite (one sync)."""
        flags = [torch.isfinite(v).all() for v in self.model.state_dict().values() if v.is_floating_point()]
        flags += [torch.isfinite(a[0]) for a in self.acc.values()]
        if flags and not bool(torch.stack(flags).all()):
            raise self._diverged("the network's weights or the training loss")

    def save(self, *, snapshot: bool = False) -> None:
        """Write the checkpoint (weights, then ``model.json``), then the training state: the state
        is written last, so that a state on disk always has a whole checkpoint beside it."""
        self.check_finite()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_t, opt_info = optimizer_to_state(self.opt)
        rng_t, rng_info = rng_to_state(self.sampler)
        info = {
            "config": self.cfg.to_record(),
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "pos": self.pos,
            "step": self.step,
            "elapsed_s": self.elapsed,
            "epoch_time_s": self.epoch_time,
            "finished": self.finished,
            "acc": {s: [a[0].item(), a[1], a[2]] for s, a in self.acc.items()},
            "epoch_start_sampler": self.epoch_start_state,
            "optimizer": opt_info,
            "rng": rng_info,
            "precisions": list(self.precisions),
            "versions": package_versions(),
        }
        meta = self.checkpoint_meta()
        if snapshot:
            save_checkpoint(self.out / "checkpoints" / f"epoch-{self.epoch:04d}", self.model, meta)
        save_checkpoint(self.out, self.model, meta)
        save_state(self.out / STATE_NAME, {**tensors, **opt_t, **rng_t}, info)
        self.last_good = {"epoch": self.epoch, "step": self.step}

    def repair_checkpoint(self) -> None:
        """A finished state whose checkpoint is not whole (deleted, damaged, another step): rewrite
        it from the state's weights."""
        meta = _read_json(self.out / "model.json") or {}
        problem = verify_checkpoint(self.out)
        if problem is None and meta.get("step") == self.step and meta.get("finished"):
            return
        log.warning("%s: rewriting the checkpoint from the training state (%s)", self.out,
                    problem or "it does not match the state")
        save_checkpoint(self.out, self.model, self.checkpoint_meta())

    # -- one step ------------------------------------------------------------------------
    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def logits(self, source: str, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model.self_logits(x) if source == "self" else self.model(x, source)

    def train_step(self, batch: Batch, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        logits = self.logits(batch.source, x)
        if batch.source == "self":
            loss = self_loss(logits, target, reduction=self.self_reduction)
        else:
            loss = kl_loss(logits, target, reduction=self.kl_reduction)
        loss.backward()
        self.opt.step()
        return loss.detach()

    @torch.inference_mode()
    def validate(self) -> tuple[dict, dict]:
        self.model.eval()
        losses, accs = {}, {}
        try:
            for source, batches in self.valid_batches.items():
                if not batches:
                    continue
                total = torch.zeros((), dtype=torch.float64, device=self.device)
                correct = torch.zeros((), dtype=torch.int64, device=self.device)
                n = 0
                for b, x, t in self.loader.iterate(batches):
                    logits = self.logits(source, x)
                    if source == "self":
                        total += self_loss(logits, t, reduction="sum").double()
                        correct += (logits.argmax(dim=1) == t).sum()
                    else:
                        total += kl_loss(logits, t, reduction="sum").double()
                    n += len(t)
                losses[source] = total.item() / n
                if source == "self":
                    accs[source] = correct.item() / n
        finally:
            self.model.train()
        return losses, accs

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> Path:
        from tqdm.auto import tqdm

        cfg = self.cfg
        if self.finished:  # killed after the final state was written: complete the outputs
            self.repair_checkpoint()
            self.finish()
            return self.out
        total = cfg.epochs * self.L
        bar = tqdm(total=total, initial=min(self.step, total), disable=not self.progress, unit="it",
                   desc=f"{self.spec.label} [{','.join(cfg.sources)}]", dynamic_ncols=True)
        self.model.train()
        try:
            with _StopOnSigint() as stop:
                while self.epoch < cfg.epochs:
                    if self.pos == 0:
                        self.epoch_start_state = copy.deepcopy(self.sampler.bit_generator.state)
                    plan = plan_epoch(self.sampler, self.train_data, cfg.batch_size, self.L)
                    bar.set_description(f"{self.spec.label} epoch {self.epoch + 1}/{cfg.epochs}")
                    t0 = time.perf_counter()
                    for batch, x, target in self.loader.iterate(plan[self.pos:]):
                        if stop.requested or (cfg.max_steps is not None and self.step >= cfg.max_steps):
                            break
                        loss = self.train_step(batch, x, target)
                        a = self.acc[batch.source]
                        scale = self.log_scale[batch.source]
                        a[0] += loss.double() if scale == 1.0 else loss.double() * scale
                        a[1] += 1
                        a[2] += len(batch.rows)
                        self.pos += 1
                        self.step += 1
                        bar.update(1)
                        if self.step % CHECK_EVERY == 0:  # one sync per CHECK_EVERY iterations
                            value = loss.item()
                            if not math.isfinite(value):
                                raise self._diverged(f"the loss of source {batch.source!r} ({value})")
                            if self.progress:
                                bar.set_postfix(source=batch.source, loss=f"{value:.4f}", refresh=False)
                    dt = time.perf_counter() - t0
                    self.elapsed += dt
                    self.epoch_time += dt
                    if self.pos < self.L:  # stopped inside the epoch
                        self.save()
                        if stop.requested:
                            raise KeyboardInterrupt
                        log.info("stopped at step %d (max_steps); run train() again to resume", self.step)
                        return self.out
                    self.end_epoch()
                    if cfg.max_steps is not None and self.step >= cfg.max_steps and self.epoch < cfg.epochs:
                        if self.epoch % cfg.checkpoint_every:
                            self.save()
                        log.info("stopped at step %d (max_steps); run train() again to resume", self.step)
                        return self.out
                    if stop.requested:
                        if self.epoch % cfg.checkpoint_every:
                            self.save()
                        raise KeyboardInterrupt
        finally:
            bar.close()
        self.finish()
        return self.out

    def end_epoch(self) -> None:
        cfg = self.cfg
        v0 = time.perf_counter()
        valid_loss, valid_acc = self.validate()
        valid_time = time.perf_counter() - v0
        self.elapsed += valid_time
        n_samples = sum(a[2] for a in self.acc.values())
        # self batches are pairs: count their crops (2 per pair) as the samples the network saw
        n_crops = n_samples + self.acc.get("self", [0, 0, 0])[2]
        train_loss = {s: (a[0].item() / a[1] if a[1] else None) for s, a in self.acc.items()}
        bad = {s: v for s, v in {**train_loss, **valid_loss}.items() if v is not None and not math.isfinite(v)}
        if bad:
            raise self._diverged(f"the mean loss of {sorted(bad)}")
        self.epoch += 1
        record = {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": train_loss,
            "train_iters": {s: a[1] for s, a in self.acc.items()},
            "valid_loss": valid_loss,
            "valid_acc": valid_acc,
            "epoch_time_s": round(self.epoch_time, 3),
            "valid_time_s": round(valid_time, 3),
            "samples_per_s": round(n_crops / self.epoch_time, 2) if self.epoch_time > 0 else None,
            "elapsed_s": round(self.elapsed, 3),
        }
        with open(self.out / LOG_NAME, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.pos = 0
        self.reset_acc()
        self.last_record = record
        if self.epoch == cfg.epochs:
            self.finished = True
        if self.epoch % cfg.checkpoint_every == 0 or self.finished:
            self.save(snapshot=cfg.keep_checkpoints)
        log.debug("epoch %d: %s", self.epoch, record)

    def _write_curves(self) -> None:
        try:
            from mtdtl.plots.training import plot_curves

            fig = plot_curves(self.out)
            with atomic_path(self.out / CURVES_NAME) as tmp:
                fig.savefig(tmp, dpi=100, format="png")
        except Exception as err:  # a plot must never break a run
            log.warning("could not draw the learning curves: %s", err)

    def finish(self) -> None:
        records = read_log(self.out)
        last = records[-1] if records else {}
        best = {}
        for s in self.cfg.sources:
            vals = [(r["valid_loss"][s], r["epoch"]) for r in records if s in r.get("valid_loss", {})]
            if vals:
                v, e = min(vals)
                best[s] = {"valid_loss": v, "epoch": e}
        metrics = {
            "arch": self.cfg.arch,
            "label": self.spec.label,
            "sources": list(self.cfg.sources),
            "finished": True,
            "epochs": self.epoch,
            "steps": self.step,
            "iterations_per_epoch": self.L,
            "train_tracks": {s: len(d) for s, d in self.train_data.items()},
            "valid_tracks": {s: len(d) for s, d in self.valid_data.items()},
            "params": count_parameters(self.model),
            "feature_dim": self.model.feature_dim,
            "feature_order": list(self.model.feature_order),
            "final": {k: last.get(k) for k in ("train_loss", "valid_loss", "valid_acc")},
            "best_valid": best,
            "train_time_s": round(self.elapsed, 3),
            "samples_per_s": _mean([r.get("samples_per_s") for r in records]),
            "precision": self.precision_record,
            "kl_reduction": self.cfg.kl_reduction,
            "compute": device_summary(self.device, bf16=self.bf16, channels_last=self.channels_last),
            "config": self.cfg.to_record(),
            "versions": package_versions(),
        }
        self._write_curves()
        # metrics.json last: its presence marks a run whose outputs are all written
        _atomic_text(self.out / METRICS_NAME, json.dumps(jsonable(metrics), indent=1, sort_keys=True) + "\n")
        log.info("finished %s: %d epochs, %d steps, %.1f s", self.out, self.epoch, self.step, self.elapsed)


def _mean(values) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.mean(v)), 2) if v else None


def train(config: TrainConfig, *, progress: bool = True) -> Path:
    """Train (or resume, or return a finished) run; see the module docstring.

    Parameters
    ----------
    config : TrainConfig
    progress : bool
        A tqdm bar over the iterations.

    Returns
    -------
    Path
        The run folder (``config.out_dir``).

    Raises
    ------
    MtdtlError
        Before any training: unknown architecture or source, ``ss_r`` with several sources, a
        source without training labels, an empty or missing store, an ``out_dir`` that is a
        file or holds a checkpoint of another architecture or another run, a run folder
        another trainer is using. During training: a loss or weights that are not finite
        (nothing is saved then; the last good checkpoint stays).
    """
    if not isinstance(config, TrainConfig):
        raise MtdtlError(f"train() takes a TrainConfig, not {type(config).__name__}")
    run = _Run(config, progress=progress)
    if run.out.is_dir() and run.completed():  # no store needed to return a finished run
        log.info("%s is a finished run (%d epochs); nothing to do", run.out, config.epochs)
        return run.out
    run.open_data()  # validates the store and the sources before anything is written
    _make_run_dir(run.out)
    with RunLock(run.out, name=LOCK_NAME):
        run.clean_temporaries()
        if run.completed():  # finished by another trainer while we were opening the data
            return run.out
        info = run.inspect_out_dir()
        if info is not None and info["fingerprint"] != run.fingerprint:
            raise MtdtlError(f"{run.out} was trained on other data (the store's tracks, labels or splits differ); "
                             "choose another out_dir")
        old_threads = torch.get_num_threads()
        set_num_threads(config.num_threads)
        retain_cpu_memory()  # every step frees and re-allocates the same activations
        try:
            run.setup()
            return run.run()
        finally:
            if torch.get_num_threads() != old_threads:
                torch.set_num_threads(old_threads)


# ---------------------------------------------------------------------------------------
# learning curves
# ---------------------------------------------------------------------------------------
