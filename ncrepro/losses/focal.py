"""Focal loss (Lin, Goyal, Girshick, He & Dollár 2017, arXiv:1708.02002), as studied by Zhou et
al., NeurIPS 2022 (arXiv:2210.02192).

``-(1 - p_y)^gamma log p_y`` with no class-balancing weight. The official code calls the
exponent ``gamma`` (3 in its scripts); the paper's figures call it beta. ``1 - p_y`` is never
formed by subtraction: ``1 - p_y`` comes exact from ``_stable``, so values and gradients
hold their digits for confidently right and badly wrong samples alike, for any ``gamma >= 0``.
"""

from __future__ import annotations

import numpy as np
import torch

from ._base import PerSampleLoss
from ._registry import LossSpec
from ._stable import nll_and_q
from ._validation import as_tensors, check_gamma


def focal(logits: torch.Tensor, targets: torch.Tensor, gamma=3.0) -> torch.Tensor:
    """Per-sample ``(1 - p_y)^gamma (-log p_y)``.

    Args:
        logits: ``(..., K)``; targets: broadcastable to ``logits.shape[:-1]``.
        gamma: >= 0 (0 is cross entropy); a float or a tensor broadcastable to the samples.

    Example:
        >>> import math
        >>> z = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)  # p_y = 1/4
        >>> focal(z, torch.tensor([0]), 2.0)  # (3/4)^2 log 4
        tensor([0.7798], dtype=torch.float64)
    """
    logits, targets = as_tensors(logits, targets)
    nll, q = nll_and_q(logits, targets)
    # q >= tiny keeps the gradient of q^gamma finite (gamma < 1) where q underflows to 0,
    # which happens only where the loss itself is far below the smallest normal number.
    return torch.pow(q.clamp(min=torch.finfo(q.dtype).tiny), gamma) * nll


def focal_at_margin(m, K: int, gamma=3.0) -> np.ndarray:
    """``(1 - p)^gamma (-log p)`` with ``p = 1/(1 + (K-1)e^{-m})``."""
    m = np.asarray(m, dtype=np.float64)
    nll = np.logaddexp(0.0, np.log(K - 1) - m)
    log_q = (np.log(K - 1) - m) - nll                 # log(1 - p) = log(s / (1 + s))
    return np.exp(gamma * log_q) * nll


SPEC = LossSpec(
    name="fl", label="FL", title="focal loss", per_sample=focal, at_margin=focal_at_margin,
    param="gamma", default=3.0, check=check_gamma, token="g", config_field="gamma", color="#2ca02c",
    references=("Lin et al. 2017, arXiv:1708.02002", "Mukhoti et al. 2020, arXiv:2002.09437",
                "Zhou et al. 2022, arXiv:2210.02192"),
)


class FocalLoss(PerSampleLoss):
    """``-(1 - p_y)^gamma log p_y``; ``gamma`` >= 0 (``gamma = 0`` is cross entropy)."""

    spec = SPEC

    def __init__(self, gamma: float = 3.0, **kwargs) -> None:
        super().__init__(value=gamma, **kwargs)

    @property
    def gamma(self) -> float:
        return self.value
