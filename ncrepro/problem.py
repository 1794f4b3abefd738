"""The unconstrained feature model's problem: sizes and weight decays, in one checked object.

The UFM (Mixon, Parshall & Pi 2020, arXiv:2011.11619; Zhu et al. 2021, arXiv:2105.02375;
Zhou et al. 2022, arXiv:2210.02192) treats the last-layer features as free variables: with K
classes, n samples per class (N = nK) and feature dimension d,

    f(W, H, b) = 1/N sum_i L(W h_i + b, y_i) + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2
                 + lambda_b/2 ||b||^2.

:mod:`ncrepro.theory`, :mod:`ncrepro.ufm` and :mod:`ncrepro.landscape` all take a
:class:`UFMProblem`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["UFMProblem"]


def _is_whole(value) -> bool:
    """An integer, or a finite float with no fractional part (not NaN, not infinite)."""
    try:
        return math.isfinite(value) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


@dataclass(frozen=True, kw_only=True)
class UFMProblem:
    """K classes, n samples per class, feature dimension d, and the weight decays.

    ``d`` may be left out where only the closed-form theory is needed (it does not depend on d,
    except for one MSE case, see :func:`ncrepro.theory.global_minimizer`); the solvers need it.

    Example:
        >>> p = UFMProblem(K=10, n=20, d=16, lambda_W=5e-3, lambda_H=5e-3)
        >>> round(p.c0, 6)  # (K-1) sqrt(n lambda_W lambda_H)
        0.201246

    ``d < K - 1`` is allowed (the solvers run there, to show what happens when no simplex ETF
    fits); the closed-form theory refuses it.

    Raises:
        ValueError: K < 2, n < 1, d < 1 (or not whole numbers), a decay that is not finite and > 0
            (>= 0 for b).
    """

    K: int
    n: int
    lambda_W: float
    lambda_H: float
    lambda_b: float = 0.0
    d: int | None = None

    def __post_init__(self) -> None:
        for name, least in (("K", 2), ("n", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not _is_whole(value) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value}")
        for name in ("lambda_W", "lambda_H"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not (self.lambda_b >= 0 and math.isfinite(self.lambda_b)):
            raise ValueError(f"lambda_b must be a finite number >= 0, got {self.lambda_b}")
        if self.d is not None and (isinstance(self.d, bool) or not _is_whole(self.d) or self.d < 1):
            raise ValueError(f"d must be a positive integer, got {self.d}")
        object.__setattr__(self, "K", int(self.K))
        object.__setattr__(self, "n", int(self.n))
        if self.d is not None:
            object.__setattr__(self, "d", int(self.d))

    @property
    def N(self) -> int:
        """Number of samples, ``n K``."""
        return self.n * self.K

    @property
    def rho(self) -> float:
        """``sqrt(n lambda_W lambda_H)``: the price of a unit of logit in the nuclear-norm form of
        the two regularisers (a product of square roots, which does not underflow)."""
        return math.sqrt(self.n) * math.sqrt(self.lambda_W) * math.sqrt(self.lambda_H)

    @property
    def c(self) -> float:
        """``sqrt(lambda_W / (n lambda_H))``: at the optimum every feature is ``h = c w_y``."""
        return math.sqrt(self.lambda_W) / (math.sqrt(self.n) * math.sqrt(self.lambda_H))

    @property
    def c0(self) -> float:
        """``(K-1) sqrt(n lambda_W lambda_H)``: the price of a unit of margin in ``g(m)``."""
        return (self.K - 1) * self.rho

    @property
    def etf_fits(self) -> bool:
        """Whether a simplex ETF of K vectors fits in d dimensions (``d >= K - 1``)."""
        return self.d is None or self.d >= self.K - 1

    def require_d(self) -> int:
        """``d``, which the solvers need; ValueError when it was left out."""
        if self.d is None:
            raise ValueError("this needs the feature dimension: give UFMProblem(..., d=...)")
        return self.d

    def replace(self, **changes) -> "UFMProblem":
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)
