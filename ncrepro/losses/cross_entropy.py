"""Cross entropy, the baseline loss of Zhou et al., NeurIPS 2022 (arXiv:2210.02192)."""

from __future__ import annotations

import numpy as np
import torch

from ._base import PerSampleLoss
from ._registry import LossSpec
from ._stable import nll_true_class
from ._validation import as_tensors


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, value=None) -> torch.Tensor:
    """Per-sample cross entropy ``-log softmax(z)_y``, to a few ulps (see ``_stable``).

    Args:
        logits: ``(..., K)``.
        targets: integer classes, broadcastable to ``logits.shape[:-1]``.
        value: unused (cross entropy has no hyperparameter); accepted for a uniform signature.

    Example:
        >>> cross_entropy(torch.tensor([[40.0, 0.0]], dtype=torch.float64), torch.tensor([0]))
        tensor([4.2484e-18], dtype=torch.float64)
    """
    logits, targets = as_tensors(logits, targets)
    return nll_true_class(logits, targets)


def cross_entropy_at_margin(m, K: int, value=None) -> np.ndarray:
    """``log(1 + (K-1) e^{-m})``: one sample whose K-1 wrong logits sit ``m`` below the true one."""
    m = np.asarray(m, dtype=np.float64)
    return np.logaddexp(0.0, np.log(K - 1) - m)


def cross_entropy_optimal_margin(K: int, c0: float, value=None) -> float:
    """The minimiser of ``ell(m) + c0 m``: ``log((K-1)(1 - c0)/c0)`` while ``c0 < (K-1)/K``, else 0."""
    # As logs: (1 - c0)/c0 overflows for subnormal c0, its log does not.
    return float(np.log(K - 1) + np.log1p(-c0) - np.log(c0)) if c0 < (K - 1) / K else 0.0


SPEC = LossSpec(
    name="ce", label="CE", title="cross entropy", per_sample=cross_entropy, at_margin=cross_entropy_at_margin,
    optimal_margin=cross_entropy_optimal_margin, color="#1f77b4",
    references=("Zhou et al. 2022, arXiv:2210.02192", "Papyan, Han & Donoho 2020, arXiv:2008.08186"),
)


class CrossEntropyLoss(PerSampleLoss):
    """Cross entropy ``-log p_y`` with ``p = softmax(z)``.

    Example:
        >>> CrossEntropyLoss()(torch.zeros(2, 3), torch.tensor([0, 2]))  # log 3
        tensor(1.0986)
    """

    spec = SPEC
