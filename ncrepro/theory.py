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

from .losses import loss_spec
from .problem import UFMProblem

__all__ = ["global_minimizer", "per_sample_loss_at_margin", "ufm_scale_constants", "focal_convexity_limit",
           "origin_threshold", "spurious_window", "ls_bounded_margin", "optimum_curves", "UFMProblem"]


def ufm_scale_constants(problem: UFMProblem) -> tuple[float, float]:
    """``(c, c0)``: the feature/classifier ratio ``h = c w`` and the margin price ``c0``.

    Raises:
        ValueError: when either is not a representable float64 number (decays so small or so
            unequal that the optimum's scale under- or overflows).
    """
    c, c0 = problem.c, problem.c0
    if c0 == 0.0 or not math.isfinite(c) or c == 0.0:
        raise ValueError(f"weight decays lambda_W={problem.lambda_W:g}, lambda_H={problem.lambda_H:g} are too small "
                         f"or too unequal for float64: the optimum's scale is not representable")
    return c, c0


def per_sample_loss_at_margin(loss: str, m, *, K: int, **params):
    """``ell(m)``: the loss of one sample whose K-1 wrong logits all sit ``m`` below the true one.

    For MSE the logits are the optimal ETF logits with the optimal free bias ``M/K``
    (``lambda_b = 0``), and ``m`` is the gap between true and wrong logits.
    """
    spec = loss_spec(loss)
    return spec.at_margin(np.asarray(m, dtype=np.float64), K, spec.value(params))


def _global_margin(at_margin, K: int, value, c0: float) -> float:
    """Global minimiser over m >= 0 of ``ell(m) + c0 m`` for an ``ell`` that need not be convex
    (focal loss, or a registered loss without a closed form)."""
    def g(m):
        return at_margin(m, K, value) + c0 * m

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


def focal_convexity_limit(gamma: float) -> tuple[float, int]:
    """``(q*, K_max)``: the focal per-sample loss ``ell(m)`` is convex on m >= 0 exactly for
    ``K <= K_max``.

    With ``q = 1 - p_y`` and ``L = -log(1 - q)``, the second derivative is
    ``ell''(m) = (1 - q) q^gamma [gamma (gamma (1 - q) - q) L + (2 gamma + 1) q]``, and m >= 0
    covers ``q`` in (0, (K-1)/K]. The bracket is positive for small q and first vanishes at
    ``q*``, so ell is convex iff ``(K-1)/K <= q*``, i.e. ``K <= 1 / (1 - q*)``. At gamma = 0
    (cross entropy) ell is convex for every K and ``(1.0, sys.maxsize)`` is returned.
    """
    import sys

    from .losses import check_gamma

    gamma = check_gamma(gamma)
    if gamma == 0.0:
        return 1.0, sys.maxsize

    # In t = -log(1 - q) (so 1 - q = e^-t): for small gamma the root sits so close to q = 1 that
    # q itself is not representable (gamma = 0.01: 1 - q* ~ 1e-45), but t* is an ordinary number.
    def bracket(t):
        rest = math.exp(-t)                 # 1 - q
        q = -math.expm1(-t)
        return gamma * (gamma * rest - q) * t + (2 * gamma + 1) * q

    # Positive up to q = gamma/(gamma+1); it tends to -inf as t grows, so it changes sign once more.
    lo = math.log1p(gamma)                  # t at q = gamma / (gamma + 1)
    hi = lo + 1.0
    while bracket(hi) > 0:
        lo, hi = hi, 2.0 * hi
    t_star = optimize.brentq(bracket, lo, hi, xtol=1e-14, rtol=1e-15)
    q_star = -math.expm1(-t_star)
    # K <= 1 / (1 - q*) = e^t*: beyond what an integer can hold, every K is convex.
    k_max = sys.maxsize if t_star > math.log(sys.maxsize) else int(math.floor(math.exp(t_star) + 1e-9))
    return q_star, k_max


def origin_threshold(loss: str, K: int, **params) -> float:
    """``-ell'(0)``: the origin ``W = H = 0`` is a strict local minimiser (its Hessian is positive
    on every direction but the symmetries) exactly when ``c0 > -ell'(0)``, i.e. when
    ``g'(0) = ell'(0) + c0 > 0``. For CE this is ``(K-1)/K``.

    Why: at the origin the Hessian couples W and H only through the logit gradient
    ``G = dL/dz`` at z = 0, whose singular values are ``-ell'(0) / ((K-1) sqrt(n))`` per unit;
    the block ``[[lambda_W I, G], [G^T, lambda_H I]]`` is positive definite iff
    ``sigma_max(G)^2 < lambda_W lambda_H``, which is ``-ell'(0) < c0``.
    """
    spec = loss_spec(loss)
    if spec.kind != "ce-family":
        raise ValueError(f"the origin threshold is defined for the CE family, not {loss!r}")
    value = spec.value(params)
    import torch

    # ell(m) is the per-sample loss at logits (m, 0, ..., 0) with target 0: its derivative at
    # m = 0 is the true-class entry of the gradient at zero logits (exact, by autograd).
    z = torch.zeros(1, K, dtype=torch.float64, requires_grad=True)
    spec.per_sample(z, torch.zeros(1, dtype=torch.long), value).sum().backward()
    return float(-z.grad[0, 0])


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


def global_minimizer(loss: str, problem: UFMProblem, **params) -> dict:
    """The UFM's global minimum for ``loss`` in closed form (or, without one, by global 1-D search).

    Args:
        loss: a registered loss: ``"ce"``, ``"ls"`` (``alpha``), ``"fl"`` (``gamma``),
            ``"mse"`` (``scale``), with the conventions of :mod:`ncrepro.losses` (MSE is per
            sample ``1/2 ||z - M e_y||^2``).
        problem: K, n and the weight decays; ``d`` is needed only to refuse the one case whose
            optimum does not fit in ``d = K - 1`` dimensions (MSE with a strongly penalised bias).

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

    Example:
        >>> opt = global_minimizer("ls", UFMProblem(K=10, n=100, lambda_W=5e-4, lambda_H=5e-4), alpha=0.1)
        >>> round(opt["margin"], 4)
        4.0547
    """
    spec = loss_spec(loss)
    value = spec.value(params)
    K, d, lambda_b = problem.K, problem.d, problem.lambda_b
    if not problem.etf_fits:
        raise ValueError(f"d = {d} < K-1 = {K - 1}: no simplex ETF fits, and the closed forms assume one")
    c, c0 = ufm_scale_constants(problem)
    bias = None if lambda_b == 0 else 0.0
    delta = 0.0                                     # common logit offset carried by the features
    extra = 0.0                                     # objective beyond ell(m) + c0 m
    if spec.kind == "mse":
        M = value
        rho = c0 / (K - 1)
        m = max(M - K * rho, 0.0)
        bias, delta = _mse_common_part(K, M, rho, lambda_b, d)
        # ell(m) is the loss with the free bias M/K; the common part replaces that zero.
        extra = (delta + K * bias - M) ** 2 / (2 * K) + rho * delta + 0.5 * lambda_b * K * bias ** 2
    elif spec.optimal_margin is not None:
        m = spec.optimal_margin(K, c0, value)
    else:
        m = _global_margin(spec.at_margin, K, value, c0)
    ell = float(spec.at_margin(np.array(m), K, value))
    if not (math.isfinite(m) and math.isfinite(ell + c0 * m)):
        raise ValueError(f"weight decays lambda_W={problem.lambda_W:g}, lambda_H={problem.lambda_H:g}: the optimum's "
                         f"margin is not representable in float64")
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


def spurious_window(loss: str, K: int, **params) -> tuple[float, float] | None:
    """The range of ``c0`` in which the UFM has a strict local minimiser at the origin *and* a
    non-trivial global minimiser: ``(-ell'(0), max_m (ell(0) - ell(m)) / m)``, or None when it is
    empty.

    The origin is a strict local minimiser for ``c0 > -ell'(0)`` (:func:`origin_threshold`); the
    global minimiser is non-trivial while some margin ``m > 0`` beats the origin,
    ``ell(m) + c0 m < ell(0)``, that is for ``c0`` below the steepest chord of ``ell`` from 0. For a
    convex ``ell`` (CE, LS, FL with ``K <= 17`` at gamma 3) the steepest chord is the tangent at 0
    and the window is empty; for focal loss with more classes it is not, and random starts can
    stop at the origin, or at points with dead classes, above the global minimum.

    >>> spurious_window("ce", 100) is None
    True
    >>> lo, hi = spurious_window("fl", 100, gamma=3.0)
    >>> round(lo, 4), round(hi, 4)
    (1.0946, 1.1635)
    """
    spec = loss_spec(loss)
    value = spec.value(params)
    lower = origin_threshold(loss, K, **params)

    def chord(m):
        m = np.asarray(m, dtype=np.float64)
        return (float(spec.at_margin(np.array(0.0), K, value)) - spec.at_margin(m, K, value)) / m

    grid = np.concatenate([np.geomspace(1e-6, 1.0, 2001), np.linspace(1.0, 80.0, 8001)[1:]])
    slopes = chord(grid)
    i = int(np.argmax(slopes))
    lo_m, hi_m = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(lambda m: -float(chord(m)), bounds=(lo_m, hi_m), method="bounded",
                                   options={"xatol": 1e-14, "maxiter": 500})
    upper = max(float(-res.fun), float(slopes[i]))
    # The chord's limit at m -> 0 is the tangent -ell'(0): a convex ell never exceeds it.
    if upper <= lower * (1 + 1e-9):
        return None
    return lower, upper


def ls_bounded_margin(alpha: float, K: int) -> float:
    """The margin where one sample's label-smoothing push changes sign:
    ``log(1 + K (1 - alpha) / alpha)`` (infinite for alpha = 0). Past it LS pulls the logits back
    together, so its optimal margin stays below this value at any weight decay."""
    from .losses import check_alpha

    alpha = check_alpha(alpha)
    return math.inf if alpha == 0 else math.log1p(K * (1 - alpha) / alpha)


def optimum_curves(loss: str, problem: UFMProblem, lambdas, **params) -> dict[str, np.ndarray]:
    """The optimum's margin and norms as ``lambda_W = lambda_H`` runs over ``lambdas`` (the other
    fields of ``problem`` fixed): arrays ``margin``, ``w_norm_sq``, ``h_norm_sq``, ``c0``."""
    rows = [global_minimizer(loss, problem.replace(lambda_W=float(lam), lambda_H=float(lam)), **params)
            for lam in np.asarray(lambdas, dtype=np.float64)]
    return {key: np.array([r[key] for r in rows]) for key in ("margin", "w_norm_sq", "h_norm_sq", "c0")}
