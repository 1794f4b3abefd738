"""The four losses compared by Zhou et al., "Are All Losses Created Equal: A Neural Collapse
Perspective", NeurIPS 2022: cross entropy, label smoothing, focal loss and MSE.

``get_loss(name, reduction=..., **params)`` builds any of them by the short names the
paper's code uses.
"""

from __future__ import annotations

from torch import nn

from .cross_entropy import CrossEntropyLoss
from .focal import FocalLoss
from .label_smoothing import LabelSmoothingLoss
from .mse import MSELoss

LOSSES: dict[str, type] = {
    "ce": CrossEntropyLoss,
    "ls": LabelSmoothingLoss,
    "fl": FocalLoss,
    "mse": MSELoss,
}

#: The hyperparameter each loss takes, with the value the official CIFAR-10 scripts use.
DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "ce": {},
    "ls": {"alpha": 0.1},
    "fl": {"gamma": 3.0},
    "mse": {"scale": 15.0},
}


def check_loss_name(name: str) -> str:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return name


def get_loss(name: str, *, reduction: str = "mean", validate_targets: bool = True, **params) -> nn.Module:
    """Build a loss module by name.

    Args:
        name: ``"ce"``, ``"ls"`` (``alpha``), ``"fl"`` (``gamma``) or ``"mse"`` (``scale``).
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for per-sample losses.
        validate_targets: check that labels lie in ``[0, K)`` (a device sync on CUDA).
        **params: the loss's hyperparameter; anything else is an error.

    Raises:
        ValueError: unknown name, unknown or out-of-range hyperparameter.
    """
    check_loss_name(name)
    allowed = set(DEFAULT_PARAMS[name])
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"loss {name!r} takes {sorted(allowed) or 'no hyperparameters'}, got {sorted(unknown)}"
        )
    return LOSSES[name](reduction=reduction, validate_targets=validate_targets, **params)


__all__ = [
    "CrossEntropyLoss",
    "LabelSmoothingLoss",
    "FocalLoss",
    "MSELoss",
    "LOSSES",
    "DEFAULT_PARAMS",
    "get_loss",
    "check_loss_name",
]
