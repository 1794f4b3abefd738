"""The UFM's optimisation landscape, checked numerically on small problems.

Zhou et al. (NeurIPS 2022) prove that for label smoothing every critical point of the UFM that
is not a global minimiser is a strict saddle (a direction of negative curvature), and for focal
loss the same near the optimal solutions. This module finds such critical points and computes
exact Hessians (``torch.autograd.functional.hessian`` in float64), so the book can report the
most negative eigenvalue at each, rather than an impression.

Critical points that are not minima come from symmetry: if classes ``i`` and ``j`` share their
classifier row, bias and features, swapping the two labels maps the point to itself, so the
gradient is swap-symmetric and a critical point of the objective restricted to tied
configurations is a critical point of the whole problem (the principle of symmetric
criticality, for a finite group). ``tied_critical_point`` minimises over that subspace.
"""

from __future__ import annotations


import numpy as np
import torch

from .ufm import _Problem, _hyper_values, _check_problem, solve, ufm_labels

__all__ = [
    "flat_point",
    "gradient_norm",
    "hessian_eigenvalues",
    "origin_point",
    "tied_critical_point",
    "expected_null_dimension",
    "CriticalPoint",
]


class CriticalPoint(dict):
    """A point (W, H, b) with its objective, gradient norm and Hessian spectrum summary."""


def _problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, params, x0=None):
    _check_problem(K, n, d, lambda_W, lambda_H, lambda_b)
    name, values, is_list = _hyper_values(loss, params)
    if is_list:
        raise ValueError("landscape functions take one hyperparameter value, not a list")
    init = None if x0 is None else np.asarray(x0, dtype=np.float64)[None]
    return _Problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, values if name else [0.0], [0], 0.1, init)


def flat_point(W, H, b) -> np.ndarray:
    """(W, H, b) as one vector, in the order the solvers use."""
    return np.concatenate([np.asarray(W, np.float64).ravel(), np.asarray(H, np.float64).ravel(),
                           np.asarray(b, np.float64).ravel()])


def gradient_norm(loss, x, *, K, n, d, lambda_W, lambda_H, lambda_b=0.0, **params) -> float:
    """Euclidean norm of the UFM gradient at the flat point ``x``."""
    prob = _problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, params)
    _, g = prob.value_and_grad(torch.as_tensor(x, dtype=torch.float64)[None])
    return float(g.norm())


def hessian_eigenvalues(loss, x, *, K, n, d, lambda_W, lambda_H, lambda_b=0.0, **params) -> np.ndarray:
    """All eigenvalues (ascending) of the exact Hessian of the UFM objective at ``x``."""
    prob = _problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, params)
    x = torch.as_tensor(x, dtype=torch.float64)
    Hm = torch.autograd.functional.hessian(lambda v: prob.value(v[None])[0], x)
    return torch.linalg.eigvalsh(0.5 * (Hm + Hm.T)).numpy()


def expected_null_dimension(loss: str, K: int, d: int, lambda_b: float) -> int:
    """Flat directions of the Hessian at a global minimiser that the symmetries predict.

    Rotations ``W -> W R, H -> H R`` (R orthogonal) leave f unchanged; at a minimiser whose W
    has rank K-1 their orbit has dimension ``dim O(d) - dim O(d-K+1)``. With ``lambda_b = 0``
    the CE-family losses are also unchanged by ``b -> b + t 1``.
    """
    r = K - 1
    rotations = d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2
    return rotations + (1 if (lambda_b == 0 and loss != "mse") else 0)


def origin_point(loss, *, K, n, d, lambda_b=0.0, **params) -> np.ndarray:
    """W = 0, H = 0 and the bias that is optimal there (0, or M/(K(1+lambda_b)) for MSE)."""
    b = np.zeros(K)
    if loss == "mse":
        b[:] = params.get("scale", 15.0) / (K * (1.0 + lambda_b))
    return flat_point(np.zeros((K, d)), np.zeros((K * n, d)), b)


def tied_critical_point(loss, *, K, n, d, lambda_W, lambda_H, lambda_b=0.0, tie=(0, 1), seed=0,
                        max_iter=2000, **params) -> np.ndarray:
    """A critical point where classes ``tie`` share classifier row, bias and features.

    Minimises the full objective over tied configurations only (L-BFGS in float64 with strong
    Wolfe line search) and returns the flat point; by symmetric criticality its full gradient
    vanishes, which :func:`gradient_norm` confirms.
    """
    i, j = tie
    if not (0 <= i < K and 0 <= j < K and i != j):
        raise ValueError(f"tie must name two different classes in [0, {K}), got {tie}")
    prob = _problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, params)
    labels = ufm_labels(K, n)
    # Class j's rows and sample rows are copies of class i's.
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
        f = prob.value(expand()[None])[0]
        f.backward()
        return f

    for _ in range(5):
        opt.step(closure)
    return expand().detach().numpy()


def analyse_point(loss, x, *, K, n, d, lambda_W, lambda_H, lambda_b=0.0, null_tol=1e-8, **params) -> CriticalPoint:
    """Objective, gradient norm and Hessian summary (min/max eigenvalue, near-zero count) at ``x``."""
    kw = dict(K=K, n=n, d=d, lambda_W=lambda_W, lambda_H=lambda_H, lambda_b=lambda_b, **params)
    prob = _problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, params)
    xt = torch.as_tensor(x, dtype=torch.float64)[None]
    eig = hessian_eigenvalues(loss, x, **kw)
    scale = max(abs(eig).max(), 1e-300)
    return CriticalPoint(
        objective=float(prob.value(xt)[0]),
        gradient_norm=gradient_norm(loss, x, **kw),
        min_eigenvalue=float(eig[0]),
        max_eigenvalue=float(eig[-1]),
        negative=int((eig < -null_tol * scale).sum()),
        near_zero=int((abs(eig) <= null_tol * scale).sum()),
        dimension=len(eig),
    )


def optimum_point(loss, *, K, n, d, lambda_W, lambda_H, lambda_b=0.0, seed=0, **params) -> np.ndarray:
    sol = solve(loss, K=K, n=n, d=d, lambda_W=lambda_W, lambda_H=lambda_H, lambda_b=lambda_b, seed=seed, **params)
    return flat_point(sol.W, sol.H, sol.b)


__all__ += ["analyse_point", "optimum_point"]
