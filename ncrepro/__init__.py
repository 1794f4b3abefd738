"""ncrepro: a tested, executable reproduction of Zhou et al., "Are All Losses Created Equal:
A Neural Collapse Perspective" (NeurIPS 2022, arXiv:2210.02192).

The public API, re-exported explicitly:

* losses: :func:`get_loss`, the four loss modules and their pure per-sample functions, and the
  registry (:class:`LossSpec`, :func:`register_loss`);
* metrics: :func:`nc_metrics`, :class:`NCMetricsAccumulator`;
* the unconstrained feature model: :class:`UFMProblem`, and the modules :mod:`ncrepro.theory`,
  :mod:`ncrepro.ufm`, :mod:`ncrepro.landscape`;
* real networks: the modules :mod:`ncrepro.data`, :mod:`ncrepro.models`, :mod:`ncrepro.train`,
  :mod:`ncrepro.sweep`;
* reading them: :mod:`ncrepro.noise` (standard errors over seeds and test images, the rule that
  calls a difference a trend, the seed noise and how well a few seeds know it),
  :mod:`ncrepro.terminal_phase`, :mod:`ncrepro.twins` (runs that differ in one setting),
  :mod:`ncrepro.comparison` and :mod:`ncrepro.verdicts`.
"""

from ._version import __version__
from .losses import (
                     LOSSES,
                     CrossEntropyLoss,
                     FocalLoss,
                     LabelSmoothingLoss,
                     LossSpec,
                     MSELoss,
                     cross_entropy,
                     focal,
                     get_loss,
                     label_smoothing,
                     mse,
                     register_loss,
)
from .metrics import NCMetricsAccumulator, nc_metrics
from .problem import UFMProblem

__all__ = [
    "get_loss",
    "LOSSES",
    "LossSpec",
    "register_loss",
    "CrossEntropyLoss",
    "LabelSmoothingLoss",
    "FocalLoss",
    "MSELoss",
    "cross_entropy",
    "label_smoothing",
    "focal",
    "mse",
    "nc_metrics",
    "NCMetricsAccumulator",
    "UFMProblem",
    "__version__",
]
