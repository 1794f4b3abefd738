"""ncrepro: a tested, executable reproduction of Zhou et al., "Are All Losses Created Equal:
A Neural Collapse Perspective" (NeurIPS 2022, arXiv:2210.02192).

The public API, re-exported explicitly:

* losses: :func:`get_loss` and the four loss modules;
* metrics: :func:`nc_metrics`, :class:`NCMetricsAccumulator`;
* theory and the unconstrained feature model: :mod:`ncrepro.theory`, :mod:`ncrepro.ufm`,
  :mod:`ncrepro.landscape`;
* real networks: :mod:`ncrepro.data`, :mod:`ncrepro.models`, :mod:`ncrepro.train`,
  :mod:`ncrepro.sweep`.
"""

from .losses import CrossEntropyLoss, FocalLoss, LabelSmoothingLoss, MSELoss, get_loss
from .metrics import NCMetricsAccumulator, nc_metrics

__version__ = "0.1.0"

__all__ = [
    "get_loss",
    "CrossEntropyLoss",
    "LabelSmoothingLoss",
    "FocalLoss",
    "MSELoss",
    "nc_metrics",
    "NCMetricsAccumulator",
    "__version__",
]
