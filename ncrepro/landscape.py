"""The UFM's optimisation landscape, checked numerically: critical points, exact Hessians, and
where random starts end.

Zhou et al. (NeurIPS 2022, arXiv:2210.02192) prove that for label smoothing every critical point
of the UFM that is not a global minimiser is a strict saddle (a direction of negative
curvature), and for focal loss the same only *near* the optimal solutions. This module gives the
tools to test both statements in ways that could fail:

* exact Hessians in float64 (:func:`hessian_eigenvalues`, :func:`analyse_point`);
* hand-built critical points: the origin, tied configurations (by symmetric criticality), and
  the global minimiser built from the closed form (:func:`closed_form_point`);
* searches that are not hand-built: where many random starts end (:func:`survey_random_starts`),
  critical points found by minimising the gradient norm (:func:`critical_points_by_gradient_norm`),
  and perturbations of a point (:func:`perturbation_returns`);
* the focal-loss window: the origin is a strict local minimum exactly when ``c0`` exceeds
  ``-ell'(0)`` (:func:`ncrepro.theory.origin_threshold`), and then points with "dead" classes
  (:func:`dead_classes`) can trap gradient methods although a non-trivial global minimum exists.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import theory, ufm
from .losses import loss_spec
from .problem import UFMProblem

__all__ = [
    "SOLVERS",
    "CriticalPoint",
    "analyse_point",
    "closed_form_point",
    "critical_points_by_gradient_norm",
    "dead_classes",
    "expected_null_dimension",
    "gradient_norm",
    "hessian_eigenvalues",
    "optimum_point",
    "origin_point",
    "perturbation_returns",
    "survey_random_starts",
    "tied_critical_point",
    "UFMProblem",
]


class CriticalPoint(dict):
    """A point (W, H, b) with its objective, gradient norm and Hessian spectrum summary."""


def gradient_norm(loss: str, problem: UFMProblem, x, **params) -> float:
    """Euclidean norm of the UFM gradient at the flat point ``x``."""
    return float(np.linalg.norm(ufm.objective_and_gradient(loss, problem, x, **params)[1]))


def hessian_eigenvalues(loss: str, problem: UFMProblem, x, **params) -> np.ndarray:
    """All eigenvalues (ascending) of the exact Hessian of the UFM objective at ``x`` (float64)."""
    f = ufm.ufm_objective_function(loss, problem, **params)
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    hess = torch.autograd.functional.hessian(f, xt, vectorize=True)
    return torch.linalg.eigvalsh(0.5 * (hess + hess.T)).numpy()


def expected_null_dimension(loss: str, K: int, d: int, lambda_b: float) -> int:
    """Flat directions of the Hessian at a global minimiser that the symmetries predict.

    Rotations ``W -> W R, H -> H R`` (R orthogonal) leave f unchanged; at a minimiser whose W
    has rank K-1 their orbit has dimension ``dim O(d) - dim O(d-K+1)``. With ``lambda_b = 0``
    the CE-family losses are also unchanged by ``b -> b + t 1``.
    """
    r = K - 1
    rotations = d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2
    return rotations + (1 if (lambda_b == 0 and loss_spec(loss).kind == "ce-family") else 0)


def origin_point(loss: str, problem: UFMProblem, **params) -> np.ndarray:
    """W = 0, H = 0 and the bias that is optimal there (0, or M/(K(1+lambda_b)) for MSE)."""
    spec = loss_spec(loss)
    d = problem.require_d()
    b = np.zeros(problem.K)
    if spec.kind == "mse":
        b[:] = spec.value(params) / (problem.K * (1.0 + problem.lambda_b))
    return ufm.flat_point(np.zeros((problem.K, d)), np.zeros((problem.N, d)), b)


def closed_form_point(loss: str, problem: UFMProblem, **params) -> np.ndarray:
    """The global minimiser built from :func:`ncrepro.theory.global_minimizer`, not by a solver.

    The optimal logits of class k are the k-th column of ``Z = m (I - 11^T/K) + delta 11^T/K``;
    with ``Z = V diag(s) V^T`` (rank r <= d) the point is ``W = V diag(sqrt(s / c))``,
    ``h_ki = V_k diag(sqrt(s c))`` (padded with zero columns to d), and b constant.
    """
    d = problem.require_d()
    K = problem.K
    opt = theory.global_minimizer(loss, problem, **params)
    c = opt["c"]
    delta = opt["feature_mean_norm_sq"] * K / c
    Z = opt["margin"] * (np.eye(K) - 1.0 / K) + delta / K
    s, V = np.linalg.eigh(Z)
    keep = s > 1e-14 * max(s.max(), 1e-300)
    s, V = s[keep], V[:, keep]
    if len(s) > d:
        raise ValueError(f"the optimum has rank {len(s)} > d = {d}")
    W = np.zeros((K, d))
    H_class = np.zeros((K, d))
    W[:, :len(s)] = V * np.sqrt(s / c)
    H_class[:, :len(s)] = V * np.sqrt(s * c)
    b = np.full(K, opt["bias"] if opt["bias"] is not None else 0.0)
    return ufm.flat_point(W, H_class[ufm.ufm_labels(K, problem.n)], b)


def optimum_point(loss: str, problem: UFMProblem, *, seed: int = 0, **params) -> np.ndarray:
    """The global minimiser as the solver finds it from a random start."""
    return ufm.solve(loss, problem, seed=seed, **params).point()


def tied_critical_point(loss: str, problem: UFMProblem, *, tie=(0, 1), seed: int = 0, max_iter: int = 2000,
                        **params) -> np.ndarray:
    """A critical point where classes ``tie`` share classifier row, bias and features.

    Minimises the full objective over tied configurations only (L-BFGS in float64 with strong
    Wolfe line search) and returns the flat point. If classes i and j share everything, swapping
    the two labels maps the point to itself, so the gradient is swap-symmetric, and a critical
    point of the objective restricted to tied configurations is a critical point of the whole
    problem (symmetric criticality); :func:`gradient_norm` confirms it.
    """
    K, n = problem.K, problem.n
    d = problem.require_d()
    i, j = tie
    if not (0 <= i < K and 0 <= j < K and i != j):
        raise ValueError(f"tie must name two different classes in [0, {K}), got {tie}")
    f = ufm.ufm_objective_function(loss, problem, **params)
    labels = ufm.ufm_labels(K, n)
    row_source = torch.arange(K)
    row_source[j] = i
    sample_source = torch.arange(K * n)
    sample_source[labels == j] = torch.from_numpy(np.flatnonzero(labels == i))
    g = torch.Generator().manual_seed(seed)
    W = (torch.randn(K, d, generator=g, dtype=torch.float64) * 0.1).requires_grad_(True)
    H = (torch.randn(K * n, d, generator=g, dtype=torch.float64) * 0.1).requires_grad_(True)
    b = torch.zeros(K, dtype=torch.float64, requires_grad=True)

    def expand():
        return torch.cat([W[row_source].ravel(), H[sample_source].ravel(), b[row_source]])

    opt = torch.optim.LBFGS([W, H, b], lr=1, max_iter=max_iter, history_size=50, tolerance_grad=1e-14,
                            tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = f(expand())
        value.backward()
        return value

    for _ in range(5):
        opt.step(closure)
    return expand().detach().numpy()


def dead_classes(problem: UFMProblem, x, reference: float | None = None, tol: float = 1e-3,
                 floor: float = 1e-6) -> int:
    """Classes whose classifier row has collapsed to zero: ``||w_k|| <= max(tol * reference, floor)``.

    ``reference`` is the row norm of the global minimiser (``sqrt(w_norm_sq)`` of
    :func:`ncrepro.theory.global_minimizer`), an absolute yardstick: measured against the largest
    row of the point itself, a point whose rows are *all* near zero (the origin, to solver
    precision) would count only its smallest rows as dead. Without a reference (or when the
    optimum is trivial) the largest row of ``x`` is used. The floor makes every class dead at the
    origin."""
    W, _, _ = ufm.split_point(problem, x)
    norms = np.linalg.norm(W, axis=1)
    scale = reference if reference else norms.max()
    return int((norms <= max(tol * scale, floor)).sum())


def analyse_point(loss: str, problem: UFMProblem, x, *, null_tol: float = 1e-8, hessian: bool = True,
                  **params) -> CriticalPoint:
    """Objective, gradient norm, dead classes and the Hessian's summary at ``x``: its smallest
    and largest eigenvalue, and how many are negative or near zero (relative to the largest)."""
    f, g = ufm.objective_and_gradient(loss, problem, x, **params)
    out = CriticalPoint(objective=f, gradient_norm=float(np.linalg.norm(g)), dead=dead_classes(problem, x),
                        dimension=len(g))
    if hessian:
        eig = hessian_eigenvalues(loss, problem, x, **params)
        scale = max(abs(eig).max(), 1e-300)
        out.update(min_eigenvalue=float(eig[0]), max_eigenvalue=float(eig[-1]),
                   negative=int((eig < -null_tol * scale).sum()), near_zero=int((abs(eig) <= null_tol * scale).sum()))
    return out


SOLVERS = ("ncrepro", "scipy")


def _scipy_solutions(loss: str, problem: UFMProblem, seeds, init_scale: float, **params) -> list[np.ndarray]:
    """End points of SciPy's L-BFGS-B from the same random starts as :func:`ufm.solve_batch`."""
    from scipy import optimize

    ends = []
    for seed in seeds:
        x0 = ufm.random_start(problem, seed, init_scale)
        res = optimize.minimize(lambda x: ufm.objective_and_gradient(loss, problem, x, **params), x0, jac=True,
                                method="L-BFGS-B", options={"maxiter": 20000, "maxcor": 10, "gtol": 1e-10,
                                                            "ftol": 1e-16})
        ends.append(res.x)
    return ends


def survey_random_starts(loss: str, problem: UFMProblem, *, seeds, init_scale: float = 1.0,
                         hessian_for: int = 0, solver: str = "ncrepro", **params) -> list[dict]:
    """Solve from many random starts and describe where each one ends: with the package's batched
    L-BFGS (``solver="ncrepro"``) or SciPy's L-BFGS-B (``"scipy"``), from the same starts. Where
    a start ends when the landscape has several minima depends on the solver's path, so a
    fraction of starts trapped is a property of the solver as much as of the landscape.

    Each entry: ``seed``, ``objective``, ``gap`` (relative to the closed-form optimum),
    ``converged``, ``dead`` classes (against the optimum's row norm), ``gradient_norm``,
    ``min_margin``, and for the first
    ``hessian_for`` starts that did not reach the global minimum (gap > 1e-7) also the
    Hessian summary of :func:`analyse_point`. A solver's end point is critical only to about
    1e-9, so its flat directions' eigenvalues scatter around zero by that much: eigenvalues
    within 1e-6 of the largest count as zero here (strict saddles are orders above that).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {list(SOLVERS)}, got {solver!r}")
    optimum = theory.global_minimizer(loss, problem, **params)
    best, reference = optimum["objective"], math.sqrt(optimum["w_norm_sq"])
    seeds = list(seeds)
    if solver == "ncrepro":
        ends = [(sol.point(), sol.converged) for sol in
                ufm.solve_batch(loss, problem, seeds=seeds, init_scale=init_scale, **params)]
    else:
        ends = [(x, None) for x in _scipy_solutions(loss, problem, seeds, init_scale, **params)]
    out, analysed = [], 0
    for seed, (x, converged) in zip(seeds, ends):
        f, g = ufm.objective_and_gradient(loss, problem, x, **params)
        W, H, b = ufm.split_point(problem, x)
        labels = ufm.ufm_labels(problem.K, problem.n)
        margins = ufm.UFMSolution(loss, params, W, H, b, labels, f, 0, True).margins()
        row = {"seed": int(seed), "objective": f, "gap": (f - best) / abs(best),
               "converged": bool(np.linalg.norm(g) < 1e-6) if converged is None else converged,
               "dead": dead_classes(problem, x, reference), "gradient_norm": float(np.linalg.norm(g)),
               "min_margin": float(margins.min())}
        if row["gap"] > 1e-7 and analysed < hessian_for:
            info = analyse_point(loss, problem, x, null_tol=1e-6, **params)
            row.update({k: v for k, v in info.items()
                        if k in ("min_eigenvalue", "max_eigenvalue", "negative", "near_zero", "gradient_norm")})
            analysed += 1
        out.append(row)
    return out


def critical_points_by_gradient_norm(loss: str, problem: UFMProblem, *, seeds, init_scale: float = 2.0,
                                     max_iter: int = 500, rounds: int = 8, tol: float = 1e-8,
                                     **params) -> list[np.ndarray]:
    """Critical points found without knowing where to look: from each random start, minimise
    ``||grad f(x)||^2`` (L-BFGS with Hessian-vector products), polish with Newton steps on
    ``grad f = 0``, and keep the ends whose gradient norm is below ``tol``. Any critical point
    (minimum, saddle or maximum) attracts this search; it is meant for small problems (it forms
    Hessians)."""
    seeds = list(seeds)
    f = ufm.ufm_objective_function(loss, problem, **params)
    F = ufm.batched_objective_function(loss, problem, len(seeds), **params)
    # All starts in one L-BFGS run: the objective sum_b ||grad f(x_b)||^2 / 2 is separable, so its
    # minimisers are the same, and each iteration costs about what one start's does (these
    # problems are small enough that autograd's overhead, not arithmetic, sets the time).
    X = torch.stack([torch.from_numpy(ufm.random_start(problem, s, init_scale)) for s in seeds]).requires_grad_(True)
    opt = torch.optim.LBFGS([X], lr=1, max_iter=max_iter, history_size=50, tolerance_grad=1e-20,
                            tolerance_change=1e-30, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        (grad,) = torch.autograd.grad(F(X).sum(), X, create_graph=True)
        value = 0.5 * grad.pow(2).sum()
        value.backward()
        return value

    for _ in range(rounds):
        opt.step(closure)
    found = []
    for x in X.detach():
        point = _newton_polish(f, x.clone())
        if gradient_norm(loss, problem, point, **params) < tol:
            found.append(point)
    return found


def _newton_polish(f, x: torch.Tensor, steps: int = 20) -> np.ndarray:
    """Newton steps on grad f = 0 with a least-squares solve (the Hessian is singular along
    symmetries): converges quadratically to the nearby critical point, whatever its type."""
    for _ in range(steps):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(xr), xr)
        if float(grad.norm()) < 1e-13:
            break
        hess = torch.autograd.functional.hessian(f, x, vectorize=True)
        step = torch.linalg.lstsq(0.5 * (hess + hess.T), grad[:, None], rcond=1e-10).solution[:, 0]
        x = x - step
    return x.numpy().copy()


def perturbation_returns(loss: str, problem: UFMProblem, x, *, sizes=(0.01, 0.1, 0.5, 1.0), count: int = 10,
                         seed: int = 0, **params) -> list[dict]:
    """Perturb ``x`` by random vectors of relative size ``||delta|| / ||x||`` and solve again.

    Returns one row per size: the lowest and highest objective reached, and how many runs end
    below ``f(x)`` by more than 1e-9 relative (``escaped``): at a local minimum small
    perturbations all return, at a saddle some escape downhill.
    """
    rng = np.random.default_rng(seed)
    f0 = ufm.objective(loss, problem, x, **params)
    scale = np.linalg.norm(x)
    rows = []
    for size in sizes:
        inits = []
        for _ in range(count):
            v = rng.normal(size=x.shape)
            inits.append(x + size * max(scale, 1e-12) * v / np.linalg.norm(v))
        sols = ufm.solve_batch(loss, problem, init=np.stack(inits), seeds=list(range(count)), **params)
        values = np.array([s.objective for s in sols])
        rows.append({"size": size, "runs": count, "lowest": float(values.min()), "highest": float(values.max()),
                     "escaped": int((values < f0 - 1e-9 * abs(f0)).sum())})
    return rows
