"""Checkpoints: weights in safetensors, metadata in JSON; loading runs no code from the file.

A checkpoint is two files side by side (in a run folder they are ``model.safetensors`` and
``model.json``):

- ``model.safetensors``: the model's ``state_dict`` (parameters and batch-norm statistics); its
  header carries the architecture id, sources and a ``checkpoint_id``.
- ``model.json``: everything needed to use the weights: ``arch``, ``sources``, ``width``,
  ``n_out``, ``feature_order`` and ``feature_dim`` (the layout of ``model.features``),
  ``front_end`` (:meth:`mtdtl.audio.FrontEnd.to_dict`) and ``scaler`` (per-mel-band ``mean`` and
  ``std`` of the training split) so new audio is turned into inputs exactly as in training,
  ``training`` (the :class:`mtdtl.training.TrainConfig`), ``epoch``/``step``, package ``versions``
  (mtdtl's version, and its git commit when it runs from a checkout), the same
  ``checkpoint_id`` and ``weights_sha256``, the sha256 of the weights file.

Both files are written atomically (temporary name, then ``os.replace``), weights first. A pair
whose ``checkpoint_id`` differs (a crash between the two writes) is refused on loading, and so
is a weights file whose sha256 is not the recorded one (a damaged copy: a flipped bit would
otherwise load and give wrong features). Loading hashes the weights file once; the hash is
returned in the metadata (``weights_sha256``) for callers that key caches on it. Checkpoints
written before the checksum existed load without the check (a debug message says so).

Nothing is unpickled: safetensors holds raw tensors and JSON holds data. The resume state of a
training run (:func:`save_state` / :func:`load_state`, used by :mod:`mtdtl.training`) follows the
same rule: tensors in safetensors, everything else as JSON in its header.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _st_save

from mtdtl.audio import as_front_end
from mtdtl.errors import MtdtlError
from mtdtl.io import atomic_write_bytes, file_sha256
from mtdtl.log import get_logger
from mtdtl.models import RepresentationModel, build_model, parse_arch

__all__ = [
    "save_checkpoint", "load_checkpoint", "read_meta", "checkpoint_files", "save_state",
    "load_state", "read_state_info", "jsonable", "package_versions", "verify_checkpoint", "checkpoint_store", "FORMAT",
    "FORMAT_VERSION",
]

log = get_logger(__name__)

FORMAT = "mtdtl-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def jsonable(obj: Any) -> Any:
    """``obj`` turned into plain JSON data (FrontEnd/BandScaler/dataclasses, numpy, paths)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    raise MtdtlError(f"cannot store a {type(obj).__name__} in checkpoint metadata (JSON only)")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a checkpoint (and mtdtl's commit in a git checkout)."""
    from mtdtl.io import package_versions as _versions

    return _versions("torch", "numpy", "safetensors")


def checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, metadata) paths of a checkpoint given as a folder, ``.safetensors`` or ``.json``."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return p, p.with_suffix(".json")
    if p.suffix == ".json":
        return p.with_suffix(".safetensors"), p
    return p / WEIGHTS_NAME, p / META_NAME


def _scaler_dict(scaler: Any) -> dict:
    """Per-band mean/std of a BandScaler, a mapping or an object with ``mean``/``std``."""
    if isinstance(scaler, Mapping):
        d = dict(scaler)
    else:
        d = {name: getattr(scaler, name) for name in ("mean", "std", "split", "n_frames", "n_clips")
             if hasattr(scaler, name)}
    if "std" not in d and "scale" in d:
        d["std"] = d.pop("scale")
    if "mean" not in d or "std" not in d:
        raise MtdtlError("the scaler in checkpoint metadata needs per-mel-band 'mean' and 'std'")
    out = jsonable(d)
    out["mean"] = [float(v) for v in np.asarray(d["mean"], dtype=np.float64).reshape(-1)]
    out["std"] = [float(v) for v in np.asarray(d["std"], dtype=np.float64).reshape(-1)]
    return out


# ---------------------------------------------------------------------------------------
# model checkpoints
# ---------------------------------------------------------------------------------------

def save_checkpoint(path_or_dir: str | os.PathLike, model: RepresentationModel,
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` and its metadata as a checkpoint.

    Parameters
    ----------
    path_or_dir : path
        A folder (gets ``model.safetensors`` and ``model.json``), or the path of the
        ``.safetensors`` file (the JSON goes beside it with the same stem).
    model : RepresentationModel
    meta : mapping, optional
        Extra metadata; should hold ``front_end`` (a :class:`mtdtl.audio.FrontEnd` or its dict)
        and ``scaler`` (a :class:`mtdtl.store.BandScaler` or ``{"mean": ..., "std": ...}``),
        which feature extraction needs. Anything JSON-able may be added (``training``,
        ``epoch``, ``metrics``, ...). The model's own description (``arch``, ``sources``,
        ``width``, ``n_out``, ``feature_order``, ``feature_dim``) always wins over ``meta``.

    Returns
    -------
    Path
        The weights file.
    """
    if not isinstance(model, RepresentationModel):
        raise MtdtlError(f"save_checkpoint saves a mtdtl RepresentationModel, not {type(model).__name__}")
    wpath, mpath = checkpoint_files(path_or_dir)
    info = dict(jsonable(dict(meta or {})))
    if meta and "scaler" in meta and meta["scaler"] is not None:
        info["scaler"] = _scaler_dict(meta["scaler"])
    for key in ("front_end", "scaler"):
        if info.get(key) is None:
            log.warning("checkpoint %s has no %r in its metadata: feature extraction will not be able to use it",
                        wpath, key)
    ckpt_id = uuid.uuid4().hex
    info.update(model.config())
    info.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "label": model.arch.label,
        "checkpoint_id": ckpt_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    })
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "arch": model.arch.id, "sources": ",".join(model.sources),
              "width": model.width_name, "checkpoint_id": ckpt_id}
    data = _st_save(state, metadata=header)
    info["weights_sha256"] = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(wpath, data)
    atomic_write_bytes(mpath, (json.dumps(info, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return wpath


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata (``model.json``) of a checkpoint, without loading weights."""
    _, mpath = checkpoint_files(path)
    if not mpath.is_file():
        raise MtdtlError(f"no checkpoint at {path}: {mpath.name} not found (expected a run folder with "
                         f"{WEIGHTS_NAME} and {META_NAME}, or the path of one of them)")
    try:
        meta = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MtdtlError(f"cannot read checkpoint metadata {mpath}: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MtdtlError(f"{mpath} is not a mtdtl checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise MtdtlError(f"{mpath} has checkpoint format version {meta['format_version']}; this mtdtl reads "
                         f"<= {FORMAT_VERSION}: upgrade mtdtl")
    return meta


def _read_tensors(path: Path, *, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise MtdtlError(f"cannot read {path}: {err} (not a safetensors file, or truncated)") from err
    return tensors, header


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                    arch: str | None = None, sources=None) -> tuple[RepresentationModel, dict]:
    """Load a checkpoint written by :func:`save_checkpoint` (or by training).

    Parameters
    ----------
    path : path
        Run folder, ``model.safetensors`` or ``model.json``.
    map_location : str or torch.device
        Device of the returned model.
    arch : str, optional
        The architecture the caller expects; a checkpoint of another one is an error.
    sources : str or iterable of str, optional
        The sources the caller expects (any order); others are an error.

    Returns
    -------
    model : RepresentationModel
        In eval mode on ``map_location``.
    meta : dict
        The contents of ``model.json`` (``front_end``, ``scaler`` with ``mean``/``std``, ...).
    """
    wpath, _ = checkpoint_files(path)
    meta = read_meta(path)
    try:
        spec = parse_arch(meta["arch"])
        ck_sources = tuple(meta["sources"])
    except KeyError as err:
        raise MtdtlError(f"checkpoint {path}: metadata lacks {err.args[0]!r}") from None
    if arch is not None and parse_arch(arch).id != spec.id:
        raise MtdtlError(f"checkpoint {path} holds a {spec.label} ({spec.id}) network, not {parse_arch(arch).label} "
                         f"({parse_arch(arch).id}): pass the matching architecture or another checkpoint")
    if sources is not None:
        from mtdtl.models import canonical_sources

        want = canonical_sources(sources)
        if set(want) != set(ck_sources):
            raise MtdtlError(f"checkpoint {path} was trained on sources {list(ck_sources)}, not {list(want)}")
    if not wpath.is_file():
        raise MtdtlError(f"checkpoint {path}: weights file {wpath} not found")
    meta = dict(meta)
    meta["weights_sha256"] = _verified_sha256(wpath, meta)
    state, header = _read_tensors(wpath)
    if header.get("checkpoint_id") != meta.get("checkpoint_id"):
        raise MtdtlError(f"{wpath} and its metadata come from different saves (interrupted while writing?); "
                         "if it is a training run folder, run train() again with the same settings: it rewrites "
                         "the checkpoint from the training state")
    if header.get("arch") not in (None, spec.id):
        raise MtdtlError(f"{wpath} holds {header.get('arch')} weights but its metadata says {spec.id}")
    model = build_model(spec, ck_sources, width=meta.get("width", "full"), n_out=int(meta.get("n_out", 50)))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0:3]
        raise MtdtlError(f"the weights in {wpath} do not fit a {spec.label} network with sources "
                         f"{list(ck_sources)} (width {meta.get('width')}): {' '.join(first)}") from None
    return model.to(map_location).eval(), meta


def _verified_sha256(wpath: Path, meta: dict) -> str:
    """sha256 of the weights file (hashed once), checked against ``meta["weights_sha256"]``."""
    try:
        sha = file_sha256(wpath)
    except OSError as err:
        raise MtdtlError(f"cannot read {wpath}: {err}") from err
    want = meta.get("weights_sha256")
    if want is None:
        log.debug("%s has no weights checksum in its metadata (written by an older mtdtl): not verified", wpath)
    elif want != sha:
        raise MtdtlError(f"{wpath} is damaged: its sha256 is {sha[:16]}..., the checkpoint recorded {want[:16]}... "
                         "(a changed or corrupted copy). Copy it again from its source; for a training run "
                         "folder, run train() again with the same settings to rewrite it from the training state")
    return sha


def verify_checkpoint(path: str | os.PathLike) -> str | None:
    """Why the checkpoint at ``path`` is unusable (missing file, a pair from two saves, a damaged
    weights file), or ``None`` when it is whole. Reads the weights header and hashes the file;
    does not build the model."""
    wpath, _ = checkpoint_files(path)
    try:
        meta = read_meta(path)
        if not wpath.is_file():
            return f"{wpath.name} is missing"
        _verified_sha256(wpath, meta)
        with safe_open(str(wpath), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
    except (MtdtlError, SafetensorError, OSError, ValueError) as err:
        return str(err)
    if header.get("checkpoint_id") != meta.get("checkpoint_id"):
        return f"{wpath.name} and {checkpoint_files(path)[1].name} come from different saves"
    return None


def checkpoint_store(meta: dict) -> Path | None:
    """The spectrogram store a checkpoint was trained on, resolved on this machine.

    ``model.json`` records it relative to the data directory (``"<data dir>/stores/..."``)
    when it lay inside :func:`mtdtl.paths.data_dir`, so a run folder moves with its data dir.
    """
    from mtdtl.training.config import resolve_path

    store = meta.get("store")
    return None if store is None else resolve_path(store)


# ---------------------------------------------------------------------------------------
# generic state files (training resume)
# ---------------------------------------------------------------------------------------

def save_state(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], info: Mapping[str, Any]) -> Path:
    """Atomically write tensors (safetensors) with ``info`` as JSON in the file's header."""
    path = Path(path)
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"format": FORMAT + "-state", "info": json.dumps(jsonable(dict(info)), sort_keys=True)}
    atomic_write_bytes(path, _st_save(data, metadata=header))
    return path


def read_state_info(path: str | os.PathLike) -> dict:
    """The ``info`` of a file written by :func:`save_state`, without reading its tensors."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise MtdtlError(f"cannot read {path}: {err} (not a safetensors file, or truncated)") from err
    if header.get("format") != FORMAT + "-state":
        raise MtdtlError(f"{path} is not a mtdtl training-state file")
    try:
        return json.loads(header["info"])
    except (KeyError, ValueError) as err:
        raise MtdtlError(f"{path}: unreadable state header ({err})") from err


def load_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_state`: (tensors on the CPU, info)."""
    path = Path(path)
    tensors, header = _read_tensors(path)
    if header.get("format") != FORMAT + "-state":
        raise MtdtlError(f"{path} is not a mtdtl training-state file")
    try:
        info = json.loads(header["info"])
    except (KeyError, ValueError) as err:
        raise MtdtlError(f"{path}: unreadable state header ({err})") from err
    return tensors, info


# ---------------------------------------------------------------------------------------
# reading a checkpoint's metadata for feature extraction
# ---------------------------------------------------------------------------------------

def weights_file(checkpoint: str | os.PathLike) -> Path:
    """The weights file of a checkpoint given as a run folder, ``model.safetensors`` or ``model.json``."""
    p = checkpoint_files(checkpoint)[0]
    if not p.is_file():
        raise MtdtlError(f"checkpoint not found: {checkpoint} (expected a run folder with model.safetensors, "
                         "or the path of model.safetensors / model.json)")
    return p


def front_end_and_scaler(meta: dict, where: Any):
    """Front end and scaler (mean, std per mel band) from a checkpoint's metadata."""
    fe = meta.get("front_end")
    if fe is None:
        raise MtdtlError(f"checkpoint {where} has no front-end parameters in its metadata; re-save it with mtdtl")
    sc = meta.get("scaler")
    if isinstance(sc, dict):
        mean, std = sc.get("mean"), sc.get("std", sc.get("scale"))
    else:
        mean, std = meta.get("scaler_mean"), meta.get("scaler_std")
    if mean is None or std is None:
        raise MtdtlError(f"checkpoint {where} has no input scaler (mean/std per mel band) in its metadata")
    return as_front_end(fe), np.asarray(mean, np.float32), np.asarray(std, np.float32)


def check_front_end(actual, requested: Any, *, what: str) -> None:
    """Error unless the ``requested`` front end (if any) is compatible with a checkpoint's ``actual`` one."""
    requested = as_front_end(requested)
    if requested is not None:
        requested.check_compatible(actual, what=f"{what}: front end requested vs the checkpoint's")


def checkpoint_name(meta: dict, path: Path) -> str:
    """A display name of a checkpoint: its run id when recorded, else ``arch[sources]``, else the file name."""
    run = meta.get("run")
    if isinstance(run, dict) and run.get("id"):
        return str(run["id"])
    arch = meta.get("arch")
    srcs = meta.get("sources")
    if arch and srcs:
        return f"{arch}[{'+'.join(srcs)}]"
    return path.stem if path.is_file() else path.name


# ---------------------------------------------------------------------------------------
# The registry of representations
# ---------------------------------------------------------------------------------------
