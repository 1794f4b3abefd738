"""Argument checks shared by every loss (private)."""

from __future__ import annotations

import math

import torch

_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not (0.0 <= alpha < 1.0) or math.isnan(alpha):
        raise ValueError(f"label smoothing alpha must lie in [0, 1), got {alpha}")
    return alpha


def check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not gamma >= 0.0 or math.isinf(gamma):
        raise ValueError(f"focal gamma must be a finite number >= 0, got {gamma}")
    return gamma


def check_scale(scale: float) -> float:
    scale = float(scale)
    if not scale > 0.0 or math.isinf(scale):
        raise ValueError(f"MSE target scale must be a finite number > 0, got {scale}")
    return scale


def as_tensors(logits, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, targets)`` as tensors: logits must already be one (gradients flow through them);
    targets may be anything array-like (a NumPy array, a list of ints), moved to the logits' device
    as integer class indices."""
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"logits must be a torch tensor (gradients flow through them), got "
                         f"{type(logits).__name__}; wrap them with torch.as_tensor")
    if not isinstance(targets, torch.Tensor):
        try:
            targets = torch.as_tensor(targets, device=logits.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"targets must be integer class indices, got {type(targets).__name__} ({err})") \
                from None
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    return logits, targets.long()


def check_logits_targets(logits: torch.Tensor, targets: torch.Tensor, validate_targets: bool) -> None:
    """Shapes always; label range only when asked (it costs a device sync on CUDA)."""
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, K), got {tuple(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must have shape ({logits.shape[0]},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if logits.shape[1] < 2:
        raise ValueError(f"need at least 2 classes, logits have K={logits.shape[1]}")
    if validate_targets and targets.numel() > 0:
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= logits.shape[1]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"label {bad} is outside [0, {logits.shape[1]}) for K={logits.shape[1]} classes")


def reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
