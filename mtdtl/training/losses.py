"""Losses of Algorithm 1: KL divergence to the reduced labels and the Siamese ``self`` cross-entropy.

Reduction over a batch (paper-silent; :attr:`mtdtl.training.TrainConfig.kl_reduction`):

- ``"batchmean"`` (default): the true KL divergence per track, ``Σ_k z_k (log z_k − log p_k)``,
  averaged over the batch; ``self``: the cross-entropy averaged over the pairs.
- ``"elementwise_mean"``: what the authors' released code computed (the element-wise mean of
  the KL terms over batch *and* outputs): KL / k, and for ``self`` (a 2-way KL to one-hot
  targets) the cross-entropy / 2. With k = 50 this weights ``self`` 25x more relative to the
  other sources, and the L2 term 50x more relative to every loss, than ``"batchmean"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mtdtl.errors import MtdtlError

#: Training reductions of a batch's loss.
TRAIN_REDUCTIONS = ("batchmean", "elementwise_mean")


def kl_loss(logits: torch.Tensor, z: torch.Tensor, *, reduction: str = "batchmean") -> torch.Tensor:
    """KL(z ‖ softmax(logits)) = Σ_k z_k (log z_k − log softmax(logits)_k), mean over the batch.

    Parameters
    ----------
    logits : torch.Tensor [shape=(batch, k)]
    z : torch.Tensor [shape=(batch, k)]
        Target distributions (rows sum to 1; zeros allowed: 0 log 0 = 0).
    reduction : {"batchmean", "elementwise_mean", "sum"}
        ``"elementwise_mean"``: divided by ``batch * k`` (the released code's), i.e. the
        ``"batchmean"`` value / k.
    """
    if reduction not in ("batchmean", "elementwise_mean", "sum"):
        raise MtdtlError(f"kl_loss reduction={reduction!r}: use batchmean, elementwise_mean or sum")
    if reduction == "elementwise_mean":  # spelled out: torch's "mean" is to change meaning
        return F.kl_div(F.log_softmax(logits.float(), dim=1), z.float(), reduction="sum") / z.numel()
    return F.kl_div(F.log_softmax(logits.float(), dim=1), z.float(), reduction=reduction)


def self_loss(logits: torch.Tensor, same: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the same-track decision (Eq. 5): logits [shape=(batch, 2)], same ∈ {0, 1}.

    ``reduction``: ``"mean"`` (= ``"batchmean"``), ``"sum"``, or ``"elementwise_mean"`` (the
    mean / 2: the released code's element-wise mean of a 2-way KL to one-hot targets).
    """
    if reduction == "batchmean":
        reduction = "mean"
    if reduction == "elementwise_mean":
        return F.cross_entropy(logits.float(), same, reduction="mean") / logits.shape[1]
    return F.cross_entropy(logits.float(), same, reduction=reduction)
