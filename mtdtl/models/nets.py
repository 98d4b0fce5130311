"""The representation networks of Kim et al. (2019), Sections 3.1-3.2.

Kim, J., Urbano, J., Liem, C. C. S. and Hanjalic, A. (2019). One deep music representation to
rule them all? A comparative analysis of different representation learning strategies.
Neural Computing and Applications.

:func:`build_model` assembles a :class:`RepresentationModel` for any architecture of the
registry (:mod:`mtdtl.models.registry`) and any set of learning sources: a shared *trunk*, one
*branch* per source (the layers from the branch point up to fc-feature) and one output *head*
per source (fc-output with ``n_out`` units, or the Siamese head for ``self``).

Representation order
--------------------
Sources are kept in the canonical order of :data:`mtdtl.constants.SOURCE_NAMES` (``self, bpm,
year, taste, tag, lyrics, cdr_tag, artist``) whatever order they are given in, so one set of
sources always gives one model and one feature layout. :meth:`RepresentationModel.features` of a
concatenating architecture (``mss_cr``, ``ms_cr@*``) returns the branches' fc-features side by
side in that order: columns ``[i * d, (i + 1) * d)`` belong to ``model.feature_order[i]``.
``ss_r`` and ``ms_sr@fc`` return the single shared fc-feature (``feature_order == ("shared",)``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from mtdtl.constants import CROP_FRAMES, K, N_CHANNELS, N_MELS
from mtdtl.errors import MtdtlError
from mtdtl.models.blocks import ConvBlock, FeatureLayer, GlobalAvgPool, SelfHead
from mtdtl.models.registry import LAYERS, ArchSpec, parse_arch

__all__ = ["Width", "WIDTHS", "RepresentationModel", "build_model", "canonical_sources",
           "INPUT_SHAPE", "INITS", "init_weights"]

#: Weight initialisations of :func:`build_model`: ``"glorot"`` (the authors' code: Lasagne's
#: default ``GlorotUniform`` weights and zero biases for every convolution and dense layer) and
#: ``"torch"`` (PyTorch's default initialisers: ``kaiming_uniform_(a=sqrt(5))`` weights, uniform
#: biases; what mtdtl used before). Batch norms start at scale 1, shift 0 in both.
INITS = ("glorot", "torch")

#: One input crop: (channels, time frames, mel bands) = (2, 216, 128).
INPUT_SHAPE = (N_CHANNELS, CROP_FRAMES, N_MELS)


@dataclass(frozen=True)
class Width:
    """Layer widths of the base network.

    Attributes
    ----------
    conv : tuple of 7 ints
        Output channels of conv1, conv2, conv3, conv4, conv5, conv61, conv62.
    feature : int
        Units of fc-feature (d, the representation size per branch).
    self_hidden : int
        Hidden units of the ``self`` head.
    """

    conv: tuple[int, ...]
    feature: int
    self_hidden: int


#: ``"full"``: Table 3. ``"tiny"``: a few channels per layer, for tests (a training step on a
#: batch of 8 takes a few milliseconds); same layers, strides and shapes.
WIDTHS = {
    "full": Width(conv=(16, 32, 64, 64, 128, 256, 256), feature=256, self_hidden=128),
    "tiny": Width(conv=(4, 4, 8, 8, 8, 16, 16), feature=16, self_hidden=8),
}


def canonical_sources(sources: str | Iterable[str]) -> tuple[str, ...]:
    """Validate learning source names and put them in :data:`SOURCE_NAMES` order.

    The package's one parser is :func:`mtdtl.runs.parse_sources` (``,`` or ``+`` separated;
    empty, unknown or repeated names are an :class:`MtdtlError`); this is that function.
    """
    from mtdtl.runs import parse_sources

    return parse_sources(sources)


def _layers(width: Width, names: Sequence[str]) -> "OrderedDict[str, nn.Module]":
    """Fresh modules for the layers ``names`` (a contiguous slice of :data:`LAYERS`)."""
    c = width.conv
    make = {
        "conv1": lambda: ConvBlock(N_CHANNELS, c[0], 5, stride=(2, 1)),
        "conv2": lambda: ConvBlock(c[0], c[1], 3),
        "conv3": lambda: ConvBlock(c[1], c[2], 3),
        "conv4": lambda: ConvBlock(c[2], c[3], 3),
        "conv5": lambda: ConvBlock(c[3], c[4], 3),
        "conv61": lambda: ConvBlock(c[4], c[5], 3, pool=False),
        "conv62": lambda: ConvBlock(c[5], c[6], 1, pool=False),
        "gap": GlobalAvgPool,
        "fc_feature": lambda: FeatureLayer(c[6], width.feature),
    }
    return OrderedDict((name, make[name]()) for name in names)


class RepresentationModel(nn.Module):
    """A (multi-source) representation network: trunk, per-source branches and heads.

    Build it with :func:`build_model`. Submodules (and so the names in a state dict):
    ``trunk`` (shared layers), ``branches[source]`` (per-source layers, empty when nothing
    branches) and ``heads[source]`` (fc-output, or the Siamese head for ``self``).

    Attributes
    ----------
    arch : ArchSpec
    sources : tuple of str
        In :data:`SOURCE_NAMES` order.
    width_name : str
        ``"full"`` or ``"tiny"``.
    n_out : int
        Units of each fc-output head (k of the reduced labels).
    feature_order : tuple of str
        Which source each d-wide block of :meth:`features` belongs to (``("shared",)`` for the
        architectures without concatenation).
    feature_dim : int
        Width of :meth:`features`: d x m or d.
    """

    def __init__(self, arch: ArchSpec, sources: tuple[str, ...], *, width: str = "full",
                 n_out: int = K) -> None:
        super().__init__()
        if width not in WIDTHS:
            raise MtdtlError(f"unknown width {width!r}; valid: {', '.join(WIDTHS)}")
        self.arch = arch
        self.sources = sources
        self.width_name = width
        self.width = WIDTHS[width]
        self.n_out = int(n_out)
        n_shared = arch.n_shared_layers
        self.trunk = nn.Sequential(_layers(self.width, LAYERS[:n_shared]))
        self.branches = nn.ModuleDict({
            s: nn.Sequential(_layers(self.width, LAYERS[n_shared:])) for s in sources
        }) if n_shared < len(LAYERS) else nn.ModuleDict()
        d = self.width.feature
        self.heads = nn.ModuleDict({
            s: SelfHead(d, self.width.self_hidden) if s == "self" else nn.Linear(d, self.n_out)
            for s in sources
        })
        self.feature_order = sources if arch.concat else ("shared",)
        self.feature_dim = d * len(self.feature_order)

    # ------------------------------------------------------------------ forward passes
    def _check_source(self, source: str) -> None:
        if source not in self.heads:
            raise MtdtlError(f"this {self.arch.label} model has no source {source!r}; it has {list(self.sources)}")

    def source_features(self, x: torch.Tensor, source: str) -> torch.Tensor:
        """fc-feature of the branch of ``source``.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, 2, 216, 128)]
            Scaled dB-mel crops.
        source : str

        Returns
        -------
        torch.Tensor [shape=(batch, d)]
        """
        self._check_source(source)
        h = self.trunk(x)
        return self.branches[source](h) if len(self.branches) else h

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation: [shape=(batch, 2, 216, 128)] → [shape=(batch, feature_dim)].

        The trunk runs once; branches' fc-features are concatenated in :attr:`feature_order`.
        """
        h = self.trunk(x)
        if not len(self.branches):
            return h
        return torch.cat([self.branches[s](h) for s in self.sources], dim=1)

    def forward(self, x, source: str) -> torch.Tensor:
        """Logits of ``source``'s head.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, 2, 216, 128)], or for ``self`` a pair (left, right)
            of such tensors
        source : str

        Returns
        -------
        torch.Tensor [shape=(batch, n_out)], or [shape=(batch, 2)] for ``self`` (index 1: the
        two crops come from the same track). Softmax is left to the loss.
        """
        self._check_source(source)
        if source == "self":
            if not isinstance(x, (tuple, list)) or len(x) != 2:
                raise MtdtlError("the self head takes a pair (left, right) of crop batches")
            left, right = x
            return self.self_logits(torch.cat([left, right], dim=0))
        return self.heads[source](self.source_features(x, source))

    def self_logits(self, pairs: torch.Tensor) -> torch.Tensor:
        """Logits of the ``self`` head for pairs stacked along the batch.

        Parameters
        ----------
        pairs : torch.Tensor [shape=(2 * batch, 2, 216, 128)]
            Left crops in the first half, their right partners in the second half.

        Returns
        -------
        torch.Tensor [shape=(batch, 2)]

        Notes
        -----
        Both halves go through the network in one pass (half the kernel launches); the maths is
        that of two passes except that batch-norm statistics are taken over all 2 x batch crops.
        """
        self._check_source("self")
        n = pairs.shape[0] // 2
        h = self.source_features(pairs, "self")
        return self.heads["self"](h[:n], h[n:])

    def head_logits(self, features: torch.Tensor, source: str) -> torch.Tensor:
        """Logits of a (non-``self``) source's head from :meth:`features` output.

        Used to read a representation back in terms of a source's topics (Section 5.5).
        """
        self._check_source(source)
        if source == "self":
            raise MtdtlError("the self head compares two crops; it has no per-crop output")
        if self.arch.concat:
            i = self.feature_order.index(source)
            d = self.width.feature
            features = features[:, i * d:(i + 1) * d]
        return self.heads[source](features)

    # ------------------------------------------------------------------ description
    def config(self) -> dict:
        """What :func:`build_model` needs to rebuild this model (JSON-ready)."""
        return {
            "arch": self.arch.id,
            "sources": list(self.sources),
            "width": self.width_name,
            "n_out": self.n_out,
            "feature_order": list(self.feature_order),
            "feature_dim": self.feature_dim,
            "widths": asdict(self.width),
        }

    def extra_repr(self) -> str:
        return f"arch={self.arch.id}, sources={list(self.sources)}, width={self.width_name}, feature_dim={self.feature_dim}"


def init_weights(model: nn.Module, init: str) -> nn.Module:
    """Re-initialise ``model``'s convolution and dense layers in place (:data:`INITS`).

    ``"glorot"``: weights uniform in ``±sqrt(6 / (fan_in + fan_out))`` (fans over the kernel's
    receptive field, as Lasagne's ``GlorotUniform``), biases 0. ``"torch"``: left as built.
    """
    if init not in INITS:
        raise MtdtlError(f"unknown weight initialisation {init!r}; use one of {', '.join(INITS)}")
    if init == "glorot":
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        m.bias.zero_()
    return model


def build_model(arch: str | ArchSpec, sources: str | Iterable[str], *, width: str = "full",
                n_out: int = K, seed: int | None = None, init: str = "torch") -> RepresentationModel:
    """Build a representation network.

    Parameters
    ----------
    arch : str
        Architecture id (:data:`mtdtl.constants.ARCH_IDS`), e.g. ``"ms_cr@6"``.
    sources : str or iterable of str
        Learning sources (names from :data:`mtdtl.constants.SOURCE_NAMES`, or one
        comma-separated string); kept in canonical order (see the module docstring).
    width : {"full", "tiny"}
        Table 3's widths, or a tiny network for tests.
    n_out : int
        Units of each fc-output head: k of the reduced labels (50 in the paper).
    seed : int, optional
        Seed of the weight initialisation; the global torch RNG is left untouched. ``None``
        draws from the global RNG.
    init : {"glorot", "torch"}
        Weight initialisation (:data:`INITS`, :func:`init_weights`).

    Returns
    -------
    RepresentationModel
        In training mode, on the CPU.

    Raises
    ------
    MtdtlError
        Unknown architecture, width or source; ``ss_r`` with more than one source.
    """
    spec = parse_arch(arch)
    srcs = canonical_sources(sources)
    if not spec.multi_source and len(srcs) != 1:
        raise MtdtlError(f"{spec.label} learns from exactly one source; got {list(srcs)}. "
                         "Use mss_cr, ms_cr@2/4/6 or ms_sr@fc for several sources")
    if int(n_out) < 1:
        raise MtdtlError(f"n_out={n_out}: the fc-output heads need at least one unit")
    if init not in INITS:
        raise MtdtlError(f"unknown weight initialisation {init!r}; use one of {', '.join(INITS)}")
    if seed is None:
        return init_weights(RepresentationModel(spec, srcs, width=width, n_out=n_out), init)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return init_weights(RepresentationModel(spec, srcs, width=width, n_out=n_out), init)
