"""Mean squared error on raw logits (Hui & Belkin 2021), as studied by Zhou et al., NeurIPS 2022.

Per sample ``1/2 ||z - M e_y||^2`` with target scale ``M`` (the official code's
``--rescale``, 15 in its scripts), no extra weight on the true class and no softmax.

Relation to the official code: the version used for the paper computes the batch *sum* of
``||z - 15 e_y||^2``, which is ``2 * MSELoss(scale=15, reduction="sum")`` here, i.e.
``2 * B`` times our default mean over a batch of ``B``. The factor 1/2 makes the unconstrained
feature model's optimum come out in the paper's form, ``m* = M - K sqrt(n lambda_W lambda_H)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._base import PerSampleLoss
from ._validation import check_scale


class MSELoss(PerSampleLoss):
    """``1/2 ||z - scale * e_y||^2`` per sample; ``scale`` > 0."""

    name = "mse"

    def __init__(self, scale: float = 15.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = check_scale(scale)

    def hyperparameters(self) -> dict[str, float]:
        return {"scale": self.scale}

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(targets, logits.shape[1]).to(logits.dtype) * self.scale
        return 0.5 * (logits - target).pow(2).sum(dim=1)
