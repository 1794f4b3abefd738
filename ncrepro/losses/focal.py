"""Focal loss (Lin et al. 2017), as studied by Zhou et al., NeurIPS 2022.

``-(1 - p_y)^gamma log p_y`` with no class-balancing weight. The official code calls the
exponent ``gamma`` (3 in its scripts); the paper's figures call it beta.

``1 - p_y`` is never formed by subtraction, which loses every digit once ``p_y`` rounds to
1 (logit margins above ~17 in float32). Instead
``log(1 - p_y) = logsumexp_{j != y} z_j - logsumexp_j z_j``, so values and gradients stay
finite for logits of size 1e3 and for exponents in (0, 1), where the derivative of
``(1 - p)^gamma`` in ``p`` is unbounded but its derivative in the logits is not.
"""

from __future__ import annotations

import torch

from ._base import PerSampleLoss
from ._validation import check_gamma
from .cross_entropy import log_true_class_probability


def log_one_minus_true_class_probability(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log(1 - p_y)`` from the other classes' logits, without cancellation."""
    true_mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, targets[:, None], True)
    others = logits.masked_fill(true_mask, float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


class FocalLoss(PerSampleLoss):
    """``-(1 - p_y)^gamma log p_y``; ``gamma`` >= 0 (``gamma = 0`` is cross entropy)."""

    name = "fl"

    def __init__(self, gamma: float = 3.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gamma = check_gamma(gamma)

    def hyperparameters(self) -> dict[str, float]:
        return {"gamma": self.gamma}

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        nll = -log_true_class_probability(logits, targets)
        if self.gamma == 0.0:
            return nll
        weight = torch.exp(self.gamma * log_one_minus_true_class_probability(logits, targets))
        return weight * nll
