"""Label smoothing (Szegedy et al. 2016, arXiv:1512.00567; Müller, Kornblith & Hinton 2019,
arXiv:1906.02629), as studied by Zhou et al., NeurIPS 2022 (arXiv:2210.02192).

The target is ``(1 - alpha) e_y + alpha / K`` (the uniform part also falls on the true
class), so the loss equals ``torch.nn.functional.cross_entropy(..., label_smoothing=alpha)``.
The official code uses alpha = 0.1 on CIFAR-10 and 0.05 on CIFAR-100.
"""

from __future__ import annotations

import numpy as np
import torch

from ._base import PerSampleLoss
from ._registry import LossSpec
from ._stable import differences, nll_true_class
from ._validation import as_tensors, check_alpha


def label_smoothing(logits: torch.Tensor, targets: torch.Tensor, alpha=0.1) -> torch.Tensor:
    """Per-sample ``(1 - alpha)(-log p_y) + alpha mean_j(-log p_j)``, to a few ulps.

    With ``t`` the largest logit and ``d_j = z_t - z_j >= 0`` (an exact difference), every
    ``-log p_j = -log p_t + d_j``, so the loss is ``-log p_t + (1 - alpha) d_y + alpha mean_j d_j``:
    a sum of non-negative terms, nothing cancels, and only one log-probability is computed.

    Args:
        logits: ``(..., K)``; targets: broadcastable to ``logits.shape[:-1]``.
        alpha: in [0, 1); a float or a tensor broadcastable to ``logits.shape[:-1]``.

    Example:
        >>> z = torch.tensor([[2.0, 0.0, 0.0]])
        >>> label_smoothing(z, torch.tensor([0]), 0.1)
        tensor([0.3729])
    """
    logits, targets = as_tensors(logits, targets)
    top = logits.argmax(-1)
    hi, lo, _ = differences(logits, top)            # z_j - z_t <= 0
    below_top = -(hi + lo)
    below_y = below_top.gather(-1, targets.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return nll_true_class(logits, top) + (1.0 - alpha) * below_y + alpha * below_top.mean(-1)


def label_smoothing_at_margin(m, K: int, alpha=0.1) -> np.ndarray:
    """``log(1 + (K-1)e^{-m}) + alpha (K-1) m / K``."""
    m = np.asarray(m, dtype=np.float64)
    return np.logaddexp(0.0, np.log(K - 1) - m) + alpha * (K - 1) * m / K


def label_smoothing_optimal_margin(K: int, c0: float, alpha=0.1) -> float:
    """The minimiser of ``ell(m) + c0 m``: the CE form with slope ``c0 + alpha (K-1)/K``."""
    slope = c0 + alpha * (K - 1) / K
    return float(np.log((K - 1) * (1 - slope) / slope)) if slope < (K - 1) / K else 0.0


SPEC = LossSpec(
    name="ls", label="LS", title="label smoothing", per_sample=label_smoothing, at_margin=label_smoothing_at_margin,
    param="alpha", default=0.1, check=check_alpha, token="a", config_field="alpha",
    optimal_margin=label_smoothing_optimal_margin, color="#d62728",
    references=("Szegedy et al. 2016, arXiv:1512.00567", "Müller, Kornblith & Hinton 2019, arXiv:1906.02629",
                "Zhou et al. 2022, arXiv:2210.02192"),
)


class LabelSmoothingLoss(PerSampleLoss):
    """``(1 - alpha) * CE + alpha * mean_j(-log p_j)``; ``alpha`` in [0, 1)."""

    spec = SPEC

    def __init__(self, alpha: float = 0.1, **kwargs) -> None:
        super().__init__(value=alpha, **kwargs)

    @property
    def alpha(self) -> float:
        return self.value
