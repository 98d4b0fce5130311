"""Compactness of the representation networks (Section 5.4, Figure 15).

A network is a shared trunk, one branch per source (empty for SS-R and MS-SR@FC) and one head
per source (fc-output, or the Siamese head of ``self``), so for any set of sources S::

    params(arch, S) = trunk + sum_{s in S} (branch + head_s)
    flops(arch, S)  = trunk + |S| x branch       (the representation: no heads)

Each architecture is built once (on PyTorch's ``meta`` device: shapes only, no memory) with
:func:`mtdtl.models.build_model`, its parts counted, and every (architecture, sources) derived
from the parts; the tests check the sums against whole models. FLOPs count the multiply-adds of
convolutions and linear layers as two operations (biases, batch norm, ReLU and pooling not
counted: under 1 %), the convention of :func:`mtdtl.models.forward_flops` and
``torch.utils.flop_counter.FlopCounterMode``, for one 2 x 216 x 128 input (2.5 s).
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from mtdtl.analysis.data import STRATEGIES, as_analysis_data, strategy_label
from mtdtl.constants import SOURCE_NAMES, K
from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["network_parts", "network_size", "compactness_table", "representation_sizes"]

log = get_logger(__name__)


@cache
def network_parts(arch: str, *, width: str = "full", n_out: int = K) -> dict:
    """Parameters and forward FLOPs of the parts of an architecture.

    Returns
    -------
    dict
        ``trunk_params, branch_params, head_params, self_head_params, trunk_flops,
        branch_flops, feature_dim_per_branch, concat`` (ints / bool).
    """
    import torch
    from torch import nn

    from mtdtl.models import INPUT_SHAPE, build_model, count_parameters, parse_arch

    spec = parse_arch(arch)
    srcs = ["self", "tag"] if spec.multi_source else ["tag"]
    with torch.device("meta"):
        model = build_model(spec.id, srcs, width=width, n_out=n_out).eval()
        self_head = (model.heads["self"] if "self" in model.heads
                     else build_model(spec.id, ["self"], width=width, n_out=n_out).heads["self"])
    branch = model.branches["tag"] if len(model.branches) else None
    counters = {"trunk": 0, "branch": 0}

    def hook(part):
        def f(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
                counters[part] += 2 * output.numel() * k
            elif isinstance(module, nn.Linear):
                counters[part] += 2 * output.numel() * module.in_features
        return f

    handles = []
    for part, mod in (("trunk", model.trunk), ("branch", branch)):
        if mod is None:
            continue
        for m in mod.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                handles.append(m.register_forward_hook(hook(part)))
    try:
        with torch.no_grad():
            h = model.trunk(torch.zeros((1, *INPUT_SHAPE), device="meta"))
            if branch is not None:
                branch(h)
    finally:
        for hd in handles:
            hd.remove()
    return {
        "trunk_params": count_parameters(model.trunk),
        "branch_params": count_parameters(branch) if branch is not None else 0,
        "head_params": count_parameters(model.heads["tag"]),
        "self_head_params": count_parameters(self_head),
        "trunk_flops": counters["trunk"],
        "branch_flops": counters["branch"],
        "feature_dim_per_branch": model.width.feature,
        "concat": bool(spec.concat),
    }


def network_size(arch: str, sources, *, width: str = "full", n_out: int = K) -> dict:
    """Parameters, representation FLOPs and feature dimension of one network.

    Parameters
    ----------
    arch : str
    sources : str or iterable of str
        "+"-joined or a list.
    width : {"full", "tiny"}
    n_out : int

    Returns
    -------
    dict
        ``params, mflops`` (forward MFLOP of the representation per 2.5 s crop),
        ``feature_dim``.
    """
    srcs = [s for s in (sources.split("+") if isinstance(sources, str) else sources) if s]
    unknown = [s for s in srcs if s not in SOURCE_NAMES]
    if unknown or not srcs:
        raise MtdtlError(f"sources {srcs!r}: need one or more of {', '.join(SOURCE_NAMES)}")
    from mtdtl.models import parse_arch

    arch = parse_arch(arch).id
    p = network_parts(arch, width=width, n_out=n_out)
    if arch == "ss_r" and len(srcs) != 1:
        raise MtdtlError(f"SS-R learns from one source; got {srcs}")
    n = len(srcs)
    heads = sum(p["self_head_params"] if s == "self" else p["head_params"] for s in srcs)
    params = p["trunk_params"] + n * p["branch_params"] + heads
    flops = p["trunk_flops"] + (n * p["branch_flops"] if p["branch_params"] else 0)
    dim = p["feature_dim_per_branch"] * (n if p["concat"] else 1)
    return {"params": int(params), "mflops": flops / 1e6, "feature_dim": int(dim)}


def compactness_table(*, n_sources=range(1, 9), archs=STRATEGIES, width: str = "full", n_out: int = K,
                      sources_order=("bpm", "year", "taste", "tag", "lyrics", "cdr_tag", "artist", "self"),
                      ) -> pd.DataFrame:
    """Parameters, FLOPs and feature dimension by architecture and number of sources (Figure 15).

    Parameters
    ----------
    n_sources : iterable of int
        Numbers of sources m (SS-R only at m = 1, multi-source architectures from m = 2).
    archs : iterable of str
    width : {"full", "tiny"}
    n_out : int
        Units of each fc-output head (k = 50 in the paper).
    sources_order : sequence of str
        The first m of these are the sources of the m-source network (``self`` last by default:
        its Siamese head is larger than an fc-output head).

    Returns
    -------
    pandas.DataFrame
        ``arch, strategy, n_sources, params, params_vs_ss_r, mflops, feature_dim``.
    """
    rows = []
    for a in archs:
        for n in n_sources:
            if (a == "ss_r") != (n == 1):
                continue
            srcs = list(sources_order[:n]) if a != "ss_r" else [sources_order[0]]
            rows.append({"arch": a, "strategy": strategy_label(a), "n_sources": int(n),
                         **network_size(a, srcs, width=width, n_out=n_out)})
    out = pd.DataFrame(rows)
    ref = network_size("ss_r", [sources_order[0]], width=width, n_out=n_out)["params"]
    out["params_vs_ss_r"] = out["params"] / ref
    return out[["arch", "strategy", "n_sources", "params", "params_vs_ss_r", "mflops", "feature_dim"]]


def representation_sizes(data, *, width: str = "full", n_out: int = K) -> pd.DataFrame:
    """Parameters, FLOPs and fc-feature dimension of every learned representation of a table.

    Returns
    -------
    pandas.DataFrame
        ``representation, arch, sources, n_sources, params, mflops, feature_dim``.
    """
    data = as_analysis_data(data)
    reps = data.table.drop_duplicates("representation")[["representation", "arch", "sources", "n_sources"]]
    sizes = [network_size(a, s, width=width, n_out=n_out) for a, s in zip(reps["arch"], reps["sources"])]
    return pd.concat([reps.reset_index(drop=True), pd.DataFrame(sizes)], axis=1)
