"""Describing networks: the layer table (Table 3), parameter counts and FLOPs (Section 5.4, Fig. 15).

FLOPs count the multiply-adds of convolutions and fully connected layers as two operations each
(batch norm, ReLU and pooling add well under 1 %). The full-width base network costs
117.0 MFLOP per forward pass of one 2 x 216 x 128 crop.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import pandas as pd
import torch
from torch import nn

from mtdtl.constants import ARCH_IDS, K, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.models.blocks import ConvBlock, FeatureLayer, SelfHead
from mtdtl.models.nets import INPUT_SHAPE, RepresentationModel, build_model
from mtdtl.models.registry import parse_arch

__all__ = ["layer_table", "network_table", "count_parameters", "forward_flops", "param_table"]

#: Source of the SS-R reference network in :func:`param_table`.
SS_R_SOURCE = "tag"


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _shape(t: torch.Tensor) -> str:
    return " x ".join(str(s) for s in t.shape[1:])


@torch.no_grad()
def layer_table(model: RepresentationModel, source: str | None = None) -> pd.DataFrame:
    """Table 3 for one path through ``model``: every layer with its input and output shapes.

    Parameters
    ----------
    model : RepresentationModel
    source : str, optional
        Whose branch and head to follow (default: the first non-``self`` source, else ``self``).

    Returns
    -------
    pandas.DataFrame
        Columns ``layer`` (Table 3's names: conv1, max-pool1, ..., fc-feature, fc-output),
        ``part`` (``trunk``, ``branch:<source>``, ``head:<source>``), ``input_shape``,
        ``output_shape`` (without the batch dimension) and ``params``.
    """
    if source is None:
        source = next((s for s in model.sources if s != "self"), model.sources[0])
    model._check_source(source)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = []
    x = torch.zeros((1, *INPUT_SHAPE), device=device)
    parts = [("trunk", model.trunk)]
    if len(model.branches):
        parts.append((f"branch:{source}", model.branches[source]))
    try:
        for part, seq in parts:
            for name, layer in seq.named_children():
                label = name.replace("_", "-")
                if isinstance(layer, ConvBlock):
                    y = layer.relu(layer.bn(layer.conv(x)))
                    rows.append((label, part, _shape(x), _shape(y), count_parameters(layer)))
                    if isinstance(layer.pool, nn.MaxPool2d):
                        z = layer.pool(y)
                        rows.append((f"max-pool{name[4:]}", part, _shape(y), _shape(z), 0))
                        y = z
                elif isinstance(layer, FeatureLayer):
                    y = layer(x)
                    rows.append((label, part, _shape(x), _shape(y), count_parameters(layer)))
                else:
                    y = layer(x)
                    rows.append((label, part, _shape(x), _shape(y), count_parameters(layer)))
                x = y
        head = model.heads[source]
        if isinstance(head, SelfHead):
            out = head(x, x)
            rows.append(("self-head", f"head:{source}", f"2 x {_shape(x)}", _shape(out), count_parameters(head)))
        else:
            out = head(x)
            rows.append(("fc-output", f"head:{source}", _shape(x), _shape(out), count_parameters(head)))
    finally:
        model.train(was_training)
    return pd.DataFrame(rows, columns=["layer", "part", "input_shape", "output_shape", "params"])


def _pair(v) -> str:
    v = v if isinstance(v, tuple) else (v, v)
    return f"{v[0]}x{v[1]}"


def network_table(model: RepresentationModel) -> pd.DataFrame:
    """The network as it is built, in the style of the paper's Table 3: one row per layer.

    Layers that every source has its own copy of (the branches of ``ms_cr@*`` and ``mss_cr``,
    the heads) are one row, marked ``per source (xm)``, with the parameters of all copies.

    Parameters
    ----------
    model : RepresentationModel
        Built with the ``n_out`` (k) and the sources of the run it describes.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer``, ``part`` (``shared``, ``per source (x m)``, ``head ...``),
        ``kernel``, ``stride``, ``channels`` (output channels or units), ``output`` (shape
        without the batch dimension: channels x frames x mel bands, then units) and ``params``
        (trainable parameters); a last row ``total`` equals :func:`count_parameters`.
    """
    branch_source = next((s for s in model.sources if s != "self"), model.sources[0])
    shapes = layer_table(model, branch_source)
    m = len(model.branches)
    parts = [("shared", model.trunk, 1)]
    if m:
        parts.append((f"per source (x{m})", model.branches[branch_source], m))
    rows = []
    for part, seq, copies in parts:
        for name, layer in seq.named_children():
            if isinstance(layer, ConvBlock):
                rows.append([name, part, _pair(layer.conv.kernel_size), _pair(layer.conv.stride),
                             layer.conv.out_channels, copies * count_parameters(layer)])
                if isinstance(layer.pool, nn.MaxPool2d):
                    rows.append([f"max-pool{name[4:]}", part, _pair(layer.pool.kernel_size),
                                 _pair(layer.pool.stride), layer.conv.out_channels, 0])
            elif isinstance(layer, FeatureLayer):
                rows.append(["fc-feature", part, "", "", layer.fc.out_features, copies * count_parameters(layer)])
            else:  # global average pooling
                rows.append([name.replace("_", "-"), part, "global", "", rows[-1][4] if rows else "", 0])
    out_shapes = list(shapes["output_shape"][: len(rows)])
    for r, shape in zip(rows, out_shapes):
        r.insert(5, shape)
    heads = [s for s in model.sources if s != "self"]
    if heads:
        n = sum(count_parameters(model.heads[s]) for s in heads)
        names = ", ".join(heads) if len(heads) <= 3 else f"{len(heads)} sources"
        rows.append(["fc-output", f"head (x{len(heads)}: {names})", "", "", model.n_out,
                     f"{model.n_out} (softmax)", n])
    if "self" in model.sources:
        h = model.heads["self"]
        rows.append(["self head", "head (self: pair of crops)", "", "", h.out.out_features, "2 (same track?)",
                     count_parameters(h)])
    rows.append(["total", "", "", "", "", "", count_parameters(model)])
    return pd.DataFrame(rows, columns=["layer", "part", "kernel", "stride", "channels", "output", "params"])


def _flop_hook(counter: list):
    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            counter[0] += 2 * output.numel() * k
        elif isinstance(module, nn.Linear):
            counter[0] += 2 * output.numel() * module.in_features
    return hook


@torch.no_grad()
def forward_flops(model: RepresentationModel, *, source: str | None = None) -> int:
    """Forward FLOPs for one input crop.

    Parameters
    ----------
    model : RepresentationModel
    source : str, optional
        ``None``: the representation (:meth:`~RepresentationModel.features`: trunk and every
        branch, no heads). A source: one training forward pass for it (trunk, its branch, its
        head; for ``self`` a pair of crops, so about twice the cost).

    Notes
    -----
    Counted with forward hooks on the convolutions and linear layers of a twin of the model
    built on the ``meta`` device: shapes only, no arithmetic and no copy of the weights. Same
    convention as :class:`torch.utils.flop_counter.FlopCounterMode` (biases not counted).
    """
    if source is not None:
        model._check_source(source)
    with torch.device("meta"):
        meta = RepresentationModel(model.arch, model.sources, width=model.width_name,
                                   n_out=model.n_out).eval()
    counter = [0]
    for m in meta.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(_flop_hook(counter))
    x = torch.zeros((1, *INPUT_SHAPE), device="meta")
    if source is None:
        meta.features(x)
    elif source == "self":
        meta((x, x), source)
    else:
        meta(x, source)
    return int(counter[0])


def param_table(n_sources: int | Iterable[int] = 8, *, width: str = "full", n_out: int = K,
                archs: Iterable[str] = ARCH_IDS) -> pd.DataFrame:
    """Parameters and FLOPs of every architecture (Section 5.4 and Figure 15).

    Parameters
    ----------
    n_sources : int or iterable of int
        Number(s) of learning sources m (each distinct m once, in increasing order). Multi-source architectures use the first m sources of
        :data:`SOURCE_NAMES` (``self`` first, with its Siamese head). SS-R, the reference of the
        ratios, has the one source ``tag`` and is listed once, first.
    width : {"full", "tiny"}
    n_out : int
        Units per fc-output head.
    archs : iterable of str
        Architecture ids (default: all six).

    Returns
    -------
    pandas.DataFrame
        One row per (architecture, m): ``arch``, ``label``, ``n_sources``, ``params``,
        ``params_vs_ss_r`` (ratio to SS-R), ``feature_dim``, ``mflops_step`` (forward MFLOP per
        sample of one training iteration on a non-``self`` source; a training step costs about
        3x), ``mflops_features`` (forward MFLOP per sample of the whole representation).
    """
    ns = (int(n_sources),) if isinstance(n_sources, int) else tuple(sorted({int(n) for n in n_sources}))
    return _param_table(ns, width, int(n_out), tuple(archs)).copy()


@lru_cache(maxsize=64)
def _param_table(ns: tuple[int, ...], width: str, n_out: int, archs: tuple[str, ...]) -> pd.DataFrame:
    """:func:`param_table`, computed once per set of arguments in a process (a sweep's warm
    kernel shows the same table in every run's 02_train)."""
    specs = [parse_arch(a) for a in archs]
    for n in ns:
        if not 1 <= n <= len(SOURCE_NAMES):
            raise MtdtlError(f"n_sources={n}: must be 1..{len(SOURCE_NAMES)}")
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        ss_r = build_model("ss_r", [SS_R_SOURCE], width=width, n_out=n_out)
        models = [ss_r] if any(not s.multi_source for s in specs) else []
        models += [build_model(spec, SOURCE_NAMES[:n], width=width, n_out=n_out)
                   for n in ns for spec in specs if spec.multi_source]
    ref_params = count_parameters(ss_r)
    rows = []
    for model in models:
        step_source = next((s for s in model.sources if s != "self"), "self")
        params = count_parameters(model)
        rows.append({
            "arch": model.arch.id,
            "label": model.arch.label,
            "n_sources": len(model.sources),
            "params": params,
            "params_vs_ss_r": params / ref_params,
            "feature_dim": model.feature_dim,
            "mflops_step": forward_flops(model, source=step_source) / 1e6,
            "mflops_features": forward_flops(model) / 1e6,
        })
    return pd.DataFrame(rows)
