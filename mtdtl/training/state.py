"""Exact training state to and from plain data: optimizer, RNGs (no pickling anywhere).

Tensors (Adam's moments, torch's RNG states) go into a safetensors file; everything else
(step counters that are not tensors, hyper-parameters, numpy's and python's RNG states, the
sampler's PCG64 state) into JSON. See :func:`mtdtl.checkpoint.save_state`.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from mtdtl.errors import MtdtlError

__all__ = ["optimizer_to_state", "optimizer_from_state", "rng_to_state", "rng_from_state"]


def optimizer_to_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten ``opt.state_dict()`` into (tensors named ``optim.<param>.<key>``, JSON part)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = val
            else:
                plain.setdefault(str(pid), {})[key] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "plain_state": plain}


def optimizer_from_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict) -> None:
    """Load what :func:`optimizer_to_state` wrote back into ``opt``."""
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if not name.startswith("optim."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = val
    for pid, st in info.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(st)
    groups = []
    for g in info["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise MtdtlError(f"the saved optimizer state does not fit this model: {err}") from err


def rng_to_state(sampler: np.random.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    """Every RNG a run draws from: torch (CPU and CUDA), numpy's global, python's, the sampler."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    info = {
        "numpy": [np_state[0], np.asarray(np_state[1]).tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "sampler": sampler.bit_generator.state,
    }
    return tensors, info


def rng_from_state(sampler: np.random.Generator, tensors: dict[str, torch.Tensor], info: dict) -> None:
    """Restore what :func:`rng_to_state` saved (CUDA states only onto the same GPU count)."""
    torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([c.to(torch.uint8) for c in cuda])
    kind, keys, pos, has_gauss, cached = info["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = info["python"]
    random.setstate((version, tuple(internal), gauss))
    sampler.bit_generator.state = info["sampler"]
