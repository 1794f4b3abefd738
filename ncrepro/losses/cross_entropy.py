"""Cross entropy, the baseline loss of the paper (Zhou et al., NeurIPS 2022, eq. CE)."""

from __future__ import annotations

import torch

from ._base import PerSampleLoss


def log_true_class_probability(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p_y`` computed as ``z_y - logsumexp(z)`` (stable for any logit size)."""
    true_logit = logits.gather(1, targets[:, None]).squeeze(1)
    return true_logit - torch.logsumexp(logits, dim=1)


class CrossEntropyLoss(PerSampleLoss):
    """Cross entropy ``-log p_y`` with ``p = softmax(z)``."""

    name = "ce"

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -log_true_class_probability(logits, targets)
