"""The common shape of every loss module (private)."""

from __future__ import annotations

import torch
from torch import nn

from ._validation import check_logits_targets, check_reduction, reduce


class PerSampleLoss(nn.Module):
    """A loss defined per sample on logits ``(B, K)`` and integer targets ``(B,)``.

    Subclasses implement :meth:`per_sample`; this class checks the inputs and applies
    the batch reduction (``"mean"``, ``"sum"`` or ``"none"``).
    """

    name: str = ""

    def __init__(self, *, reduction: str = "mean", validate_targets: bool = True) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.validate_targets = validate_targets

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_logits_targets(logits, targets, self.validate_targets)
        return reduce(self.per_sample(logits, targets.long()), self.reduction)

    def hyperparameters(self) -> dict[str, float]:
        return {}

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{params}{', ' if params else ''}reduction={self.reduction!r}"
