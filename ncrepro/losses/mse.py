"""Mean squared error on raw logits (Hui & Belkin 2021, arXiv:2006.07322), as studied by Zhou et
al., NeurIPS 2022 (arXiv:2210.02192).

Per sample ``1/2 ||z - M e_y||^2`` with target scale ``M`` (the official code's ``--rescale``,
15 in its scripts), no extra weight on the true class and no softmax.

Relation to the official code: the version used for the paper computes the batch *sum* of
``||z - 15 e_y||^2``, which is ``2 * MSELoss(scale=15, reduction="sum")`` here, i.e.
``2 * B`` times our default mean over a batch of ``B``. The factor 1/2 makes the unconstrained
feature model's optimum come out in the paper's form, ``m* = M - K sqrt(n lambda_W lambda_H)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ._base import PerSampleLoss
from ._registry import LossSpec
from ._validation import as_tensors, check_scale


def mse(logits: torch.Tensor, targets: torch.Tensor, scale=15.0) -> torch.Tensor:
    """Per-sample ``1/2 ||z - scale e_y||^2``.

    Args:
        logits: ``(..., K)``; targets: broadcastable to ``logits.shape[:-1]``.
        scale: M > 0; a float or a tensor broadcastable to the samples.

    Example:
        >>> mse(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), 3.0)
        tensor([2.])
    """
    logits, targets = as_tensors(logits, targets)
    targets = targets.expand(logits.shape[:-1])
    scale = torch.as_tensor(scale, dtype=logits.dtype, device=logits.device)
    onehot = torch.nn.functional.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    return 0.5 * (logits - onehot * scale.unsqueeze(-1)).pow(2).sum(-1)


def mse_at_margin(m, K: int, scale=15.0) -> np.ndarray:
    """``(K-1)/(2K) (M - m)^2``: the optimal ETF logits with the free optimal bias ``M/K``."""
    m = np.asarray(m, dtype=np.float64)
    return (K - 1) / (2.0 * K) * (scale - m) ** 2


SPEC = LossSpec(
    name="mse", label="MSE", title="mean squared error", per_sample=mse, at_margin=mse_at_margin,
    param="scale", default=15.0, check=check_scale, token="M", config_field="mse_scale", kind="mse",
    color="#9467bd", references=("Hui & Belkin 2021, arXiv:2006.07322", "Han, Papyan & Donoho 2022, "
                                 "arXiv:2106.02073", "Zhou et al. 2022, arXiv:2210.02192"),
)


class MSELoss(PerSampleLoss):
    """``1/2 ||z - scale * e_y||^2`` per sample; ``scale`` > 0."""

    spec = SPEC

    def __init__(self, scale: float = 15.0, **kwargs) -> None:
        super().__init__(value=scale, **kwargs)

    @property
    def scale(self) -> float:
        return self.value
