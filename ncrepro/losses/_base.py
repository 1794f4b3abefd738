"""The common shape of every loss module (private)."""

from __future__ import annotations

import torch
from torch import nn

from ._registry import LossSpec
from ._validation import as_tensors, check_logits_targets, check_reduction, reduce


class PerSampleLoss(nn.Module):
    """A registered loss as an ``nn.Module``: logits ``(B, K)``, integer targets ``(B,)``.

    Checks the inputs, applies the loss's pure per-sample function and the batch reduction
    (``"mean"``, ``"sum"`` or ``"none"``). Subclasses only name their :class:`LossSpec`.
    """

    spec: LossSpec

    def __init__(self, *, value: float | None = None, reduction: str = "mean", validate_targets: bool = True) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.validate_targets = validate_targets
        params = {} if self.spec.param is None or value is None else {self.spec.param: value}
        self.value = self.spec.value(params)

    @property
    def name(self) -> str:
        return self.spec.name

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.spec.per_sample(logits, targets, self.value)

    def forward(self, logits: torch.Tensor, targets) -> torch.Tensor:
        """The loss of ``logits`` (a tensor: the loss is differentiated through it) against
        ``targets`` (a tensor, or anything array-like such as a NumPy array or a list of ints,
        moved to the logits' device)."""
        logits, targets = as_tensors(logits, targets)
        check_logits_targets(logits, targets, self.validate_targets)
        return reduce(self.per_sample(logits, targets), self.reduction)

    def hyperparameters(self) -> dict[str, float]:
        return {} if self.spec.param is None else {self.spec.param: self.value}

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{params}{', ' if params else ''}reduction={self.reduction!r}"


def module_for(spec: LossSpec) -> type[PerSampleLoss]:
    """A PerSampleLoss class for a registered loss that has none of its own."""
    attrs = {"spec": spec, "__doc__": f"{spec.title} (registered loss {spec.name!r})."}
    if spec.param is not None:
        def __init__(self, *, reduction="mean", validate_targets=True, **params):
            PerSampleLoss.__init__(self, value=spec.value(params), reduction=reduction,
                                   validate_targets=validate_targets)
        attrs["__init__"] = __init__
    return type(f"{spec.name.capitalize()}Loss", (PerSampleLoss,), attrs)
