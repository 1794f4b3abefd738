"""Solve the unconstrained feature model (UFM) numerically, from a random start.

``solve`` minimises

    f(W, H, b) = 1/N sum_i L(W h_i + b, y_i) + lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 + lambda_b/2 ||b||^2

in float64 with a batched L-BFGS: when a loss hyperparameter is a list (``alpha=[...]``,
``gamma=[...]``) or several ``seeds`` are given, all problems are stacked and advance together
in one computation, each with its own line search, curvature history and stopping test.
``gradient_descent`` runs plain full-batch gradient descent instead, the way a network is
trained, for studying how fast each loss collapses.

The losses are the ones of :mod:`ncrepro.losses` (same names, parameters and conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .losses import check_loss_name
from .losses._validation import check_alpha, check_gamma, check_scale
from .losses.cross_entropy import log_true_class_probability
from .losses.focal import log_one_minus_true_class_probability
from .metrics import nc_metrics

__all__ = ["UFMSolution", "solve", "gradient_descent", "ufm_objective", "ufm_labels"]

_PARAM = {"ce": None, "ls": "alpha", "fl": "gamma", "mse": "scale"}
_CHECK = {"alpha": check_alpha, "gamma": check_gamma, "scale": check_scale}
_DEFAULT = {"alpha": 0.1, "gamma": 3.0, "scale": 15.0}


@dataclass
class UFMSolution:
    """One solved UFM problem. ``H`` has one row per sample, ``labels`` gives each row's class."""

    loss: str
    params: dict
    W: np.ndarray
    H: np.ndarray
    b: np.ndarray
    labels: np.ndarray
    objective: float
    iterations: int
    converged: bool
    trajectory: dict = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        return nc_metrics(self.H, self.labels, self.W, self.b)

    def margins(self) -> np.ndarray:
        """Per-sample margin ``z_y - max_{j != y} z_j``."""
        return _margins(self.W[None], self.H[None], self.b[None], torch.from_numpy(self.labels))[0].numpy()


def ufm_labels(K: int, n: int) -> np.ndarray:
    """Class of each row of H: n samples of class 0, then n of class 1, ..."""
    return np.repeat(np.arange(K), n)


def _check_problem(K, n, d, lambda_W, lambda_H, lambda_b):
    if int(K) != K or K < 2:
        raise ValueError(f"K must be an integer >= 2, got {K}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if int(d) != d or d < K - 1:
        raise ValueError(f"d must be an integer >= K-1 = {K - 1} for a simplex ETF to fit, got {d}")
    for name, v in (("lambda_W", lambda_W), ("lambda_H", lambda_H)):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number > 0, got {v}")
    if not (lambda_b >= 0 and math.isfinite(lambda_b)):
        raise ValueError(f"lambda_b must be a finite number >= 0, got {lambda_b}")


def _hyper_values(loss: str, params: dict) -> tuple[str | None, list[float], bool]:
    """The loss's hyperparameter name, its values (one per problem) and whether a list was given."""
    name = _PARAM[loss]
    unknown = set(params) - ({name} if name else set())
    if unknown:
        raise ValueError(f"loss {loss!r} takes {[name] if name else 'no hyperparameters'}, got {sorted(unknown)}")
    if name is None:
        return None, [0.0], False
    value = params.get(name, _DEFAULT[name])
    is_list = isinstance(value, (list, tuple, np.ndarray))
    values = [_CHECK[name](v) for v in (value if is_list else [value])]
    if not values:
        raise ValueError(f"{name} list is empty")
    return name, values, is_list


def _batched_per_sample_loss(loss: str, Z: torch.Tensor, y: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
    """Per-sample losses (B, N) of logits Z (B, N, K); ``hyper`` (B,) holds each problem's parameter."""
    B, N, K = Z.shape
    flat = Z.reshape(B * N, K)
    yy = y.repeat(B)
    if loss == "mse":
        target = torch.nn.functional.one_hot(y, K).to(Z.dtype)[None] * hyper[:, None, None]
        return 0.5 * (Z - target).pow(2).sum(-1)
    nll = -log_true_class_probability(flat, yy).reshape(B, N)
    if loss == "ce":
        return nll
    if loss == "ls":
        uniform = (torch.logsumexp(Z, -1) - Z.mean(-1))
        a = hyper[:, None]
        return (1 - a) * nll + a * uniform
    log_q = log_one_minus_true_class_probability(flat, yy).reshape(B, N)
    weight = torch.where(hyper[:, None] == 0, torch.ones_like(log_q), torch.exp(hyper[:, None] * log_q))
    return weight * nll


def ufm_objective(loss, W, H, b, labels, hyper, lambda_W, lambda_H, lambda_b) -> torch.Tensor:
    """UFM objective of B stacked problems: W (B,K,d), H (B,N,d), b (B,K) -> (B,)."""
    Z = H @ W.transpose(1, 2) + b[:, None, :]
    data = _batched_per_sample_loss(loss, Z, labels, hyper).mean(1)
    reg = 0.5 * (lambda_W * W.pow(2).sum((1, 2)) + lambda_H * H.pow(2).sum((1, 2)) + lambda_b * b.pow(2).sum(1))
    return data + reg


def _margins(W, H, b, labels):
    W, H, b = (torch.as_tensor(np.asarray(t)) if not isinstance(t, torch.Tensor) else t for t in (W, H, b))
    Z = H @ W.transpose(1, 2) + b[:, None, :]
    true = Z.gather(2, labels[None, :, None].expand(Z.shape[0], -1, 1)).squeeze(2)
    others = Z.scatter(2, labels[None, :, None].expand(Z.shape[0], -1, 1), float("-inf"))
    return true - others.max(2).values


class _Problem:
    """B stacked UFM problems flattened into x (B, P)."""

    def __init__(self, loss, K, n, d, lambda_W, lambda_H, lambda_b, hyper, seeds, init_scale, init=None):
        self.loss, self.K, self.n, self.d = loss, K, n, d
        self.N = K * n
        self.lams = (lambda_W, lambda_H, lambda_b)
        self.labels = torch.from_numpy(ufm_labels(K, n))
        self.hyper = torch.tensor(hyper, dtype=torch.float64)
        self.B = len(hyper)
        self.sizes = (K * d, self.N * d, K)
        if init is not None:
            self.x0 = torch.as_tensor(init, dtype=torch.float64).reshape(self.B, -1).clone()
        else:
            parts = []
            for s in seeds:
                g = torch.Generator().manual_seed(int(s))
                parts.append(torch.randn(sum(self.sizes), generator=g, dtype=torch.float64) * init_scale)
            self.x0 = torch.stack(parts)

    def split(self, x):
        W, H, b = torch.split(x, self.sizes, dim=1)
        return W.reshape(-1, self.K, self.d), H.reshape(-1, self.N, self.d), b

    def value(self, x):
        W, H, b = self.split(x)
        return ufm_objective(self.loss, W, H, b, self.labels, self.hyper, *self.lams)

    def value_and_grad(self, x):
        x = x.detach().requires_grad_(True)
        f = self.value(x)
        (g,) = torch.autograd.grad(f.sum(), x)
        return f.detach(), g


def _record(problem, x, it, traj, which):
    W, H, b = problem.split(x.detach())
    f = problem.value(x.detach())
    margins = _margins(W, H, b, problem.labels)
    traj["iteration"].append(it)
    for i in which:
        m = nc_metrics(H[i], problem.labels, W[i], b[i])
        row = traj["problems"][i]
        row["objective"].append(float(f[i]))
        row["margin"].append(float(margins[i].mean()))
        row["w_norm_sq"].append(float(W[i].pow(2).sum(1).mean()))
        row["h_norm_sq"].append(float(H[i].pow(2).sum(1).mean()))
        for k in ("nc1", "nc2", "nc3"):
            row[k].append(m[k])


def _new_trajectory(B):
    keys = ("objective", "margin", "w_norm_sq", "h_norm_sq", "nc1", "nc2", "nc3")
    return {"iteration": [], "problems": [{k: [] for k in keys} for _ in range(B)]}


def _lbfgs(problem: _Problem, max_iter: int, history: int, gtol: float, ftol: float, record_every: int,
           progress: bool):
    x = problem.x0.clone()
    B = x.shape[0]
    f, g = problem.value_and_grad(x)
    S, Y, rho = [], [], []
    active = torch.ones(B, dtype=torch.bool)
    iterations = torch.zeros(B, dtype=torch.long)
    stall = torch.zeros(B, dtype=torch.long)
    traj = _new_trajectory(B)
    which = range(B)
    if record_every:
        _record(problem, x, 0, traj, which)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_iter, desc=f"UFM {problem.loss} L-BFGS x{B}", leave=False)
    it = 0
    for it in range(1, max_iter + 1):
        # Two-loop recursion, vectorised over problems (pairs with rho = 0 are no-ops).
        q = -g
        alphas = []
        for s, y_, r in zip(reversed(S), reversed(Y), reversed(rho)):
            a = r * (s * q).sum(1)
            q = q - a[:, None] * y_
            alphas.append(a)
        if S:
            sy = (S[-1] * Y[-1]).sum(1)
            yy = (Y[-1] * Y[-1]).sum(1)
            scale = torch.where(rho[-1] > 0, sy / yy.clamp_min(1e-300), torch.ones_like(sy))
        else:
            scale = 1.0 / g.norm(dim=1).clamp_min(1e-12)
        q = q * scale[:, None]
        for s, y_, r, a in zip(S, Y, rho, reversed(alphas)):
            beta = r * (y_ * q).sum(1)
            q = q + (a - beta)[:, None] * s
        direction = q
        slope = (g * direction).sum(1)
        bad = slope >= 0                      # not a descent direction: fall back to the gradient
        direction[bad] = -g[bad]
        slope[bad] = -(g[bad] ** 2).sum(1)
        direction[~active] = 0.0
        # Backtracking (Armijo) line search, each problem with its own step.
        step = torch.ones(B, dtype=torch.float64)
        accepted = ~active
        f_new = f.clone()
        for _ in range(60):
            trial = x + step[:, None] * direction
            f_trial = problem.value(trial).detach()
            ok = (f_trial <= f + 1e-4 * step * slope) & ~accepted & torch.isfinite(f_trial)
            f_new[ok] = f_trial[ok]
            accepted |= ok
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, step * 0.5)
        failed = ~accepted
        step[failed] = 0.0
        x_new = x + step[:, None] * direction
        f_new, g_new = problem.value_and_grad(x_new)
        s, y_ = x_new - x, g_new - g
        sy = (s * y_).sum(1)
        r = torch.where((sy > 1e-12 * s.norm(dim=1) * y_.norm(dim=1)) & active, 1.0 / sy.clamp_min(1e-300),
                        torch.zeros_like(sy))
        S.append(s)
        Y.append(y_)
        rho.append(r)
        if len(S) > history:
            S.pop(0), Y.pop(0), rho.pop(0)
        rel_change = (f - f_new).abs() / f_new.abs().clamp_min(1e-300)
        stall = torch.where(rel_change < ftol, stall + 1, torch.zeros_like(stall))
        iterations += active.long()
        x, f, g = x_new, f_new, g_new
        done = (g.abs().amax(1) < gtol) | (stall >= 10) | failed
        active &= ~done
        if record_every and it % record_every == 0:
            _record(problem, x, it, traj, which)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(active=int(active.sum()))
        if not bool(active.any()):
            break
    if bar is not None:
        bar.close()
    if record_every and (not traj["iteration"] or traj["iteration"][-1] != it):
        _record(problem, x, it, traj, which)
    converged = g.abs().amax(1) < max(gtol * 100, 1e-7)
    return x, f, iterations, converged, traj


def _solutions(problem, x, f, iterations, converged, traj, loss, name, values):
    W, H, b = problem.split(x)
    out = []
    for i in range(problem.B):
        t = {"iteration": list(traj["iteration"]), **traj["problems"][i]} if traj["iteration"] else {}
        params = {} if name is None else {name: values[i]}
        out.append(UFMSolution(loss, params, W[i].numpy().copy(), H[i].numpy().copy(), b[i].numpy().copy(),
                               problem.labels.numpy().copy(), float(f[i]), int(iterations[i]),
                               bool(converged[i]), t))
    return out


def solve(loss: str, *, K: int, n: int, d: int, lambda_W: float, lambda_H: float, lambda_b: float = 0.0,
          seed: int | list[int] = 0, max_iter: int = 20000, history: int = 20, gtol: float = 1e-11,
          ftol: float = 1e-15, record_every: int = 0, init_scale: float = 0.1, init=None,
          progress: bool = False, **params):
    """Minimise the UFM objective from a random start (float64, batched L-BFGS).

    Args:
        loss: ``"ce"``, ``"ls"`` (``alpha``), ``"fl"`` (``gamma``) or ``"mse"`` (``scale``).
        K, n, d: classes, samples per class, feature dimension (``d >= K - 1``).
        lambda_W, lambda_H, lambda_b: weight decays.
        seed: random start; a list of seeds solves one problem per seed, batched.
        record_every: record the objective, mean margin, norms and NC1-NC3 every this many
            iterations in ``trajectory`` (0: no trajectory).
        init: a starting point instead of a random one (array of shape (B, K*d + N*d + K)).
        **params: the loss's hyperparameter; a list solves all values together, batched.

    Returns:
        A :class:`UFMSolution`, or a list of them when a hyperparameter or ``seed`` is a list.
    """
    check_loss_name(loss)
    _check_problem(K, n, d, lambda_W, lambda_H, lambda_b)
    name, values, hyper_list = _hyper_values(loss, params)
    seed_list = isinstance(seed, (list, tuple, np.ndarray))
    seeds = list(seed) if seed_list else [seed]
    if hyper_list and seed_list and len(values) != len(seeds):
        raise ValueError("give either a list of hyperparameters or a list of seeds, or two lists of equal length")
    B = max(len(values), len(seeds))
    values = values * B if len(values) == 1 else values
    seeds = seeds * B if len(seeds) == 1 else seeds
    hyper = values if name else [0.0] * B
    problem = _Problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, hyper, seeds, init_scale, init)
    x, f, its, conv, traj = _lbfgs(problem, max_iter, history, gtol, ftol, record_every, progress)
    out = _solutions(problem, x, f, its, conv, traj, loss, name, values)
    return out if (hyper_list or seed_list) else out[0]


def gradient_descent(loss: str, *, K: int, n: int, d: int, lambda_W: float, lambda_H: float,
                     lambda_b: float = 0.0, lr: float = 0.1, steps: int = 2000, seed: int = 0,
                     record_every: int = 20, init_scale: float = 0.1, progress: bool = False, **params):
    """Full-batch gradient descent on the UFM with a fixed step, recording the trajectory.

    Lists of hyperparameter values run together, batched, from the same random start.
    Returns a :class:`UFMSolution` (``converged`` is False: plain GD does not test convergence)
    or a list of them.
    """
    check_loss_name(loss)
    _check_problem(K, n, d, lambda_W, lambda_H, lambda_b)
    if not lr > 0 or int(steps) != steps or steps < 1:
        raise ValueError(f"need lr > 0 and a positive integer number of steps, got lr={lr}, steps={steps}")
    name, values, hyper_list = _hyper_values(loss, params)
    hyper = values if name else [0.0]
    problem = _Problem(loss, K, n, d, lambda_W, lambda_H, lambda_b, hyper, [seed] * len(hyper), init_scale)
    x = problem.x0.clone()
    traj = _new_trajectory(problem.B)
    which = range(problem.B)
    iterator = range(1, steps + 1)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc=f"UFM {loss} GD", leave=False)
    if record_every:
        _record(problem, x, 0, traj, which)
    for it in iterator:
        _, g = problem.value_and_grad(x)
        x = x - lr * g
        if record_every and (it % record_every == 0 or it == steps):
            _record(problem, x, it, traj, which)
    f = problem.value(x).detach()
    out = _solutions(problem, x, f, torch.full((problem.B,), steps), torch.zeros(problem.B, dtype=torch.bool),
                     traj, loss, name, values if name else [0.0])
    return out if hyper_list else out[0]
