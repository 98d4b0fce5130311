"""Building blocks of the representation network (Kim et al., 2019, Section 3.1, Table 3).

- :class:`ConvBlock`: 2-d convolution with zero 'same' padding, batch normalisation, ReLU and an
  optional 2 x 2 max-pool ("conv + BN + ReLU (+ max-pool)").
- :class:`GlobalAvgPool`: averages out both spatial dimensions (``gap`` in Table 3).
- :class:`FeatureLayer`: ``fc-feature``: fully connected + BN + ReLU + dropout (p = 0.5). Its
  output (after ReLU, before dropout in eval mode) is the learned representation.
- :class:`SelfHead`: the Siamese ``self`` head of Figure 3: the fc-features of two crops
  concatenated → fully connected (128) + BN + ReLU + dropout → fully connected (2).

Layer widths are arguments, so the same blocks build the paper's network and the tiny one the
tests use.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBlock", "GlobalAvgPool", "FeatureLayer", "SelfHead"]


class ConvBlock(nn.Module):
    """Convolution + batch norm + ReLU (+ 2 x 2 max-pool), 'same' zero padding.

    Parameters
    ----------
    in_channels, out_channels : int
        Feature maps in and out.
    kernel_size : int
        Square kernel (5 for conv1, 3 for conv2-conv61, 1 for conv62).
    stride : tuple of int
        (time, frequency) stride; (2, 1) for conv1, (1, 1) elsewhere.
    pool : bool
        Follow with a 2 x 2 max-pool (conv1-conv5), or not (conv61, conv62).

    Notes
    -----
    'Same' padding here means ``kernel_size // 2`` zeros on every side: the output has the
    input's shape divided by the stride (Table 3: conv1 maps 2 x 216 x 128 to 16 x 108 x 128).
    The convolution keeps its bias, as the paper's implementation did, although the batch norm
    that follows makes it redundant; the parameter counts of Section 5.4 include it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 stride: tuple[int, int] = (1, 1), pool: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : [shape=(batch, in_channels, time, freq)] → [shape=(batch, out_channels, time', freq')]."""
        return self.pool(self.relu(self.bn(self.conv(x))))


class GlobalAvgPool(nn.Module):
    """Mean over the two spatial dimensions: (batch, c, t, f) → (batch, c)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class FeatureLayer(nn.Module):
    """The ``fc-feature`` layer: linear + BN + ReLU + dropout (p = 0.5).

    In eval mode dropout is the identity, so the output is the representation that feature
    extraction reads.
    """

    def __init__(self, in_features: int, out_features: int, *, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.bn = nn.BatchNorm1d(out_features)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : [shape=(batch, in_features)] → [shape=(batch, out_features)]."""
        return self.dropout(self.relu(self.bn(self.fc(x))))


class SelfHead(nn.Module):
    """Siamese head of the ``self`` source (Figure 3): are two crops from the same track?

    The two crops' fc-features are concatenated (2 d) and mapped through a hidden fully
    connected layer (128 units, BN, ReLU, dropout 0.5, as in the authors' released code) to
    2 logits (index 1 = same track).
    """

    def __init__(self, in_features: int, hidden: int = 128, *, dropout: float = 0.5) -> None:
        super().__init__()
        self.hidden = FeatureLayer(2 * in_features, hidden, dropout=dropout)
        self.out = nn.Linear(hidden, 2)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """left, right : [shape=(batch, d)] fc-features → logits [shape=(batch, 2)]."""
        return self.out(self.hidden(torch.cat([left, right], dim=1)))
