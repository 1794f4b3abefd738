"""Exact global minimizers of the unconstrained feature model (UFM).

The UFM (Mixon et al. 2020; Zhu et al. 2021; Zhou et al., NeurIPS 2022) treats the last-layer
features as free variables: with K classes, n samples per class, N = nK,

    f(W, H, b) = 1/N sum_k sum_i L(W h_ki + b, k)
                 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2 + lambda_b/2 ||b||^2.

At a global minimizer of the CE/LS/FL family (Zhou et al., Theorems 3.1-3.2), every
``||w_k||^2 = a``, ``h_ki = c w_k`` with ``c = sqrt(lambda_W / (n lambda_H))``, the rows of W form
a simplex ETF, and every sample has the same logit margin ``m = c a K/(K-1)``. Substituting,
the regularisers sum to ``K lambda_W a`` and the whole problem becomes one-dimensional:

    minimise over m >= 0:  g(m) = ell(m) + c0 m,   c0 = (K-1) sqrt(n lambda_W lambda_H),

where ``ell(m)`` is the per-sample loss when all K-1 wrong logits sit m below the true one.
``m = 0`` is the collapse to W = H = 0. For CE, LS and MSE g is convex and the optimum is in
closed form; the focal ``ell`` is not convex in m, so it is minimised globally (dense bracket,
then Brent refinement, then a comparison with the end point m = 0).

A correction to a common statement: for CE the non-zero solution exists iff
``c0 < (K-1)/K`` (the slope of g at 0 is ``c0 - (K-1)/K``), not merely ``c0 < 1``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from .losses import check_loss_name
from .losses._validation import check_alpha, check_gamma, check_scale

__all__ = ["global_minimizer", "per_sample_loss_at_margin", "ufm_scale_constants"]


def _check_problem(K: int, n: int, lambda_W: float, lambda_H: float, lambda_b: float) -> None:
    if int(K) != K or K < 2:
        raise ValueError(f"K must be an integer >= 2, got {K}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    for name, value in (("lambda_W", lambda_W), ("lambda_H", lambda_H)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
    if not (lambda_b >= 0 and math.isfinite(lambda_b)):
        raise ValueError(f"lambda_b must be a finite number >= 0, got {lambda_b}")


def ufm_scale_constants(K: int, n: int, lambda_W: float, lambda_H: float) -> tuple[float, float]:
    """``(c, c0)``: the feature/classifier ratio ``h = c w`` and the margin price ``c0``."""
    # Products of square roots: n lambda_W lambda_H itself underflows for decays near 1e-300.
    c = math.sqrt(lambda_W) / (math.sqrt(n) * math.sqrt(lambda_H))
    c0 = (K - 1) * math.sqrt(n) * math.sqrt(lambda_W) * math.sqrt(lambda_H)
    if c0 == 0.0 or not math.isfinite(c) or c == 0.0:
        raise ValueError(f"weight decays lambda_W={lambda_W:g}, lambda_H={lambda_H:g} are too small or too "
                         f"unequal for float64: the optimum's scale is not representable")
    return c, c0


def _log1p_s(m: np.ndarray, K: int) -> np.ndarray:
    """``log(1 + (K-1) e^-m)`` without overflow or loss of digits."""
    return np.logaddexp(0.0, math.log(K - 1) - m)


def per_sample_loss_at_margin(loss: str, m, *, K: int, **params):
    """``ell(m)``: the loss of one sample whose K-1 wrong logits all sit ``m`` below the true one.

    For MSE the logits are the optimal ETF logits with the optimal bias ``M/K`` (``lambda_b = 0``),
    and ``m`` is the gap between true and wrong logits.
    """
    check_loss_name(loss)
    m = np.asarray(m, dtype=np.float64)
    if loss == "mse":
        M = check_scale(params.get("scale", 15.0))
        return (K - 1) / (2.0 * K) * (M - m) ** 2
    nll = _log1p_s(m, K)                            # -log p_y
    if loss == "ce":
        return nll
    if loss == "ls":
        alpha = check_alpha(params.get("alpha", 0.1))
        return nll + alpha * (K - 1) * m / K
    gamma = check_gamma(params.get("gamma", 3.0))
    log_q = (math.log(K - 1) - m) - nll             # log(1 - p_y) = log(s / (1 + s))
    return np.exp(gamma * log_q) * nll


def _loss_params(loss: str, params: dict) -> dict:
    allowed = {"ce": set(), "ls": {"alpha"}, "fl": {"gamma"}, "mse": {"scale"}}[loss]
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"loss {loss!r} takes {sorted(allowed) or 'no hyperparameters'}, got {sorted(unknown)}")
    defaults = {"ls": {"alpha": 0.1}, "fl": {"gamma": 3.0}, "mse": {"scale": 15.0}}.get(loss, {})
    return {**defaults, **params}


def _focal_margin(K: int, gamma: float, c0: float) -> float:
    """Global minimiser over m >= 0 of ``ell_FL(m) + c0 m`` (ell_FL is not convex)."""
    def g(m):
        return per_sample_loss_at_margin("fl", m, K=K, gamma=gamma) + c0 * m

    g0 = float(g(0.0))
    # ell >= 0, so g(m) >= c0 m and any minimiser has m <= g(0)/c0; beyond ~750 s = (K-1)e^-m
    # underflows and g is exactly linear, so the cap loses nothing.
    hi = min(g0 / c0, 800.0)
    grid = np.concatenate([np.linspace(0.0, min(hi, 60.0), 6001), np.linspace(min(hi, 60.0), hi, 2001)])
    values = g(grid)
    best_m, best_g = 0.0, g0
    # Refine around every local minimum of the grid, not only the lowest one.
    interior = np.flatnonzero((values[1:-1] <= values[:-2]) & (values[1:-1] <= values[2:])) + 1
    if values[-1] < values[-2]:
        interior = np.append(interior, len(grid) - 1)
    for i in interior:
        lo, up = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        res = optimize.minimize_scalar(lambda x: float(g(x)), bounds=(lo, up), method="bounded",
                                       options={"xatol": 1e-13, "maxiter": 500})
        if res.fun < best_g:
            best_m, best_g = float(res.x), float(res.fun)
    if best_m > 0:
        # Polish with Newton on g'(m) = 0 using a finely centred difference, for 1e-10 accuracy.
        best_m = _polish_stationary(lambda x: float(g(x)), best_m)
    return best_m


def _polish_stationary(g, m: float) -> float:
    h = 1e-4 * max(1.0, m)
    for _ in range(30):
        d1 = (g(m + h) - g(m - h)) / (2 * h)
        d2 = (g(m + h) - 2 * g(m) + g(m - h)) / h ** 2
        if d2 <= 0:
            break
        step = d1 / d2
        m_new = max(m - step, 0.0)
        if abs(m_new - m) < 1e-14 * max(1.0, m):
            return m_new
        m = m_new
        h = max(1e-6 * max(1.0, m), min(h, abs(step) * 10 + 1e-7))
    return m


def _mse_common_part(K: int, M: float, rho: float, lambda_b: float, d: int | None) -> tuple[float, float]:
    """``(gamma, delta)``: the optimal bias entry and the common logit offset carried by the
    features for MSE. See :func:`global_minimizer`."""
    if lambda_b == 0:
        return M / K, 0.0                      # the free bias absorbs the common target M/K
    if lambda_b * M / (K * (1.0 + lambda_b)) <= rho:
        return M / (K * (1.0 + lambda_b)), 0.0
    if d is not None and d < K:
        raise ValueError(f"with lambda_b * M / (K (1 + lambda_b)) > sqrt(n lambda_W lambda_H) the MSE optimum "
                         f"needs a common feature direction (rank K), which d = {d} < K = {K} does not allow; "
                         f"this regime has no closed form here")
    return rho / lambda_b, M - K * rho - K * rho / lambda_b


def global_minimizer(loss: str, *, K: int, n: int, lambda_W: float, lambda_H: float,
                     lambda_b: float = 0.0, d: int | None = None, **params) -> dict:
    """The UFM's global minimum for ``loss`` in closed form (or, for focal loss, by global 1-D search).

    Args:
        loss: ``"ce"``, ``"ls"`` (``alpha``), ``"fl"`` (``gamma``) or ``"mse"`` (``scale``),
            with the hyperparameter conventions of :mod:`ncrepro.losses` (MSE is per sample
            ``1/2 ||z - M e_y||^2``).
        K, n: classes and samples per class.
        lambda_W, lambda_H, lambda_b: the weight decays of W, H and b.
        d: the feature dimension, needed only to refuse the one case whose optimum does not fit
            in ``d = K - 1`` dimensions (MSE with a strongly penalised bias, below).

    Returns:
        ``margin`` (every sample's logit margin ``m*``), ``w_norm_sq`` (``||w_k||^2``),
        ``h_norm_sq`` (``||h_ki||^2``), ``feature_mean_norm_sq`` (``||mean of all h||^2``),
        ``objective`` (f at the optimum), ``bias`` (the value of every entry of the optimal b,
        ``None`` for the CE family with ``lambda_b = 0``, where any constant vector is optimal),
        ``trivial`` (True when the only minimiser is W = H = 0), and ``c``, ``c0`` (see
        :func:`ufm_scale_constants`).

    MSE with a bias. With ``rho = sqrt(n lambda_W lambda_H)`` the problem reduces (through the
    nuclear-norm form of the two regularisers) to logits ``Z = m (I - 11^T/K) + delta 11^T/K``
    and ``b = gamma 1``: the margin ``m = max(M - K rho, 0)`` does not depend on the bias, and
    the common part costs ``(delta + K gamma - M)^2/(2K) + rho delta + lambda_b K gamma^2 / 2``.
    While ``lambda_b M / (K (1 + lambda_b)) <= rho`` the bias carries it alone
    (``gamma = M / (K (1 + lambda_b))``, ``delta = 0``); beyond that threshold a unit of common
    logit is cheaper through the features: ``gamma = rho / lambda_b`` and
    ``delta = M - K rho (1 + 1/lambda_b) > 0``, so the features acquire a non-zero global mean
    along a direction that every classifier row reads alike. That needs rank K, i.e. ``d >= K``.
    """
    check_loss_name(loss)
    _check_problem(K, n, lambda_W, lambda_H, lambda_b)
    if d is not None and (int(d) != d or d < K - 1):
        raise ValueError(f"d must be an integer >= K-1 = {K - 1}, got {d}")
    params = _loss_params(loss, params)
    c, c0 = ufm_scale_constants(K, n, lambda_W, lambda_H)
    bias = None if lambda_b == 0 else 0.0
    delta = 0.0                                     # common logit offset carried by the features
    extra = 0.0                                     # objective beyond ell(m) + c0 m
    if loss == "ce" or loss == "ls":
        alpha = check_alpha(params.get("alpha", 0.0))
        slope = c0 + alpha * (K - 1) / K            # -ell_CE'(m*) must equal this
        m = math.log((K - 1) * (1 - slope) / slope) if slope < (K - 1) / K else 0.0
    elif loss == "fl":
        m = _focal_margin(K, check_gamma(params["gamma"]), c0)
    else:
        M = check_scale(params["scale"])
        rho = c0 / (K - 1)
        m = max(M - K * rho, 0.0)
        bias, delta = _mse_common_part(K, M, rho, lambda_b, d)
        # ell(m) is the loss with the free bias M/K; the common part replaces that zero.
        extra = (delta + K * bias - M) ** 2 / (2 * K) + rho * delta + 0.5 * lambda_b * K * bias ** 2
    ell = float(per_sample_loss_at_margin(loss, m, K=K, **params))
    spread = m * (K - 1) / K + delta / K           # the diagonal of |Z| = m (I - 11^T/K) + delta 11^T/K
    return {
        "margin": m,
        "w_norm_sq": spread / c,
        "h_norm_sq": c * spread,
        "feature_mean_norm_sq": c * delta / K,
        "objective": ell + c0 * m + extra,
        "bias": bias,
        "trivial": m == 0.0 and delta == 0.0,
        "c": c,
        "c0": c0,
    }
