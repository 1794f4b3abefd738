"""The losses compared by Zhou et al., "Are All Losses Created Equal: A Neural Collapse
Perspective", NeurIPS 2022 (arXiv:2210.02192): cross entropy, label smoothing, focal loss and
MSE, each defined once as a pure per-sample function and registered with what the rest of
ncrepro needs to know about it (:class:`LossSpec`).

``get_loss(name, reduction=..., **params)`` builds any registered loss as an ``nn.Module`` by
the short names the paper's code uses. A fifth loss is one module with its per-sample function
plus one :func:`register_loss` call; the UFM solver, the theory, the command line, run names
and plots read the registry.

References:
    Zhou, You, Li, Liu, Liu, Qu, Zhu. Are All Losses Created Equal: A Neural Collapse
    Perspective. NeurIPS 2022. https://arxiv.org/abs/2210.02192
"""

from __future__ import annotations

from torch import nn

from . import cross_entropy as _ce
from . import focal as _fl
from . import label_smoothing as _ls
from . import mse as _mse
from ._base import PerSampleLoss, module_for
from ._registry import LOSSES, LossSpec, loss_spec, register_loss, unregister_loss
from ._validation import check_alpha, check_gamma, check_scale
from .cross_entropy import CrossEntropyLoss, cross_entropy
from .focal import FocalLoss, focal
from .label_smoothing import LabelSmoothingLoss, label_smoothing
from .mse import MSELoss, mse

for _module in (_ce, _ls, _fl, _mse):
    register_loss(_module.SPEC)

_CLASSES: dict[str, type[PerSampleLoss]] = {"ce": CrossEntropyLoss, "ls": LabelSmoothingLoss, "fl": FocalLoss,
                                            "mse": MSELoss}


def default_params() -> dict[str, dict[str, float]]:
    """Each registered loss's hyperparameter with its default, e.g. ``{"ls": {"alpha": 0.1}, ...}``."""
    return {name: ({} if s.param is None else {s.param: s.default}) for name, s in LOSSES.items()}


#: The hyperparameter each built-in loss takes, with the value the official CIFAR-10 scripts use.
DEFAULT_PARAMS: dict[str, dict[str, float]] = default_params()


def check_loss_name(name: str) -> str:
    """``name`` if it is a registered loss; ValueError naming the known ones otherwise."""
    return loss_spec(name).name


def get_loss(name: str, *, reduction: str = "mean", validate_targets: bool = True, **params) -> nn.Module:
    """Build a registered loss module by name.

    Args:
        name: ``"ce"``, ``"ls"`` (``alpha``), ``"fl"`` (``gamma``), ``"mse"`` (``scale``), or a
            loss added with :func:`register_loss`.
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for per-sample losses.
        validate_targets: check that labels lie in ``[0, K)`` (a device sync on CUDA).
        **params: the loss's hyperparameter; anything else is an error.

    Raises:
        ValueError: unknown name, unknown or out-of-range hyperparameter.

    Example:
        >>> import torch
        >>> loss = get_loss("ls", alpha=0.1)
        >>> float(loss(torch.zeros(4, 10), torch.arange(4)))  # log 10
        2.302585...
    """
    spec = loss_spec(name)
    value = spec.value(params)
    cls = _CLASSES.get(name) or module_for(spec)
    if spec.param is None:
        return cls(reduction=reduction, validate_targets=validate_targets)
    return cls(**{spec.param: value}, reduction=reduction, validate_targets=validate_targets)


def loss_and_push(name: str, margins, K: int, **params):
    """Loss and push ``-dL/dz_y`` of a registered loss at logits ``z = (m, 0, ..., 0)``, ``y = 0``,
    for every margin ``m`` in ``margins`` (float64, gradient by autograd through the module).

    Returns:
        Two NumPy arrays: the per-sample losses and the pushes.
    """
    import torch

    m = torch.as_tensor(margins, dtype=torch.float64).reshape(-1)
    z = torch.zeros(len(m), K, dtype=torch.float64)
    z[:, 0] = m
    z.requires_grad_(True)
    values = get_loss(name, reduction="none", **params)(z, torch.zeros(len(m), dtype=torch.long))
    values.sum().backward()
    return values.detach().numpy(), -z.grad[:, 0].numpy()


__all__ = [
    "get_loss",
    "loss_and_push",
    "check_loss_name",
    "LOSSES",
    "LossSpec",
    "loss_spec",
    "register_loss",
    "unregister_loss",
    "default_params",
    "DEFAULT_PARAMS",
    "PerSampleLoss",
    "CrossEntropyLoss",
    "LabelSmoothingLoss",
    "FocalLoss",
    "MSELoss",
    "cross_entropy",
    "label_smoothing",
    "focal",
    "mse",
    "check_alpha",
    "check_gamma",
    "check_scale",
]
