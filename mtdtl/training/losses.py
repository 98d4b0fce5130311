"""Losses of Algorithm 1: KL divergence to the reduced labels and the Siamese ``self`` cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_loss(logits: torch.Tensor, z: torch.Tensor, *, reduction: str = "batchmean") -> torch.Tensor:
    """KL(z ‖ softmax(logits)) = Σ_k z_k (log z_k − log softmax(logits)_k), mean over the batch.

    Parameters
    ----------
    logits : torch.Tensor [shape=(batch, k)]
    z : torch.Tensor [shape=(batch, k)]
        Target distributions (rows sum to 1; zeros allowed: 0 log 0 = 0).
    reduction : {"batchmean", "sum"}
    """
    return F.kl_div(F.log_softmax(logits.float(), dim=1), z.float(), reduction=reduction)


def self_loss(logits: torch.Tensor, same: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the same-track decision (Eq. 5): logits [shape=(batch, 2)], same ∈ {0, 1}."""
    return F.cross_entropy(logits.float(), same, reduction=reduction)


# ---------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------
