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

from dataclasses import dataclass, field

import numpy as np
import torch

from .losses import check_loss_name
from .losses._validation import check_alpha, check_gamma, check_scale
from .losses.cross_entropy import log_true_class_probability
from .losses.focal import log_one_minus_true_class_probability
from .metrics import nc_metrics
from .theory import _check_problem as _check_sizes_and_decays

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
    _check_sizes_and_decays(K, n, lambda_W, lambda_H, lambda_b)
    if int(d) != d or d < K - 1:
        raise ValueError(f"d must be an integer >= K-1 = {K - 1} for a simplex ETF to fit, got {d}")


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
    """B stacked UFM problems flattened into x (B, P); ``rows`` selects a subset of them."""

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

    def value(self, x, rows=None):
        W, H, b = self.split(x)
        hyper = self.hyper if rows is None else self.hyper[rows]
        return ufm_objective(self.loss, W, H, b, self.labels, hyper, *self.lams)

    def value_and_grad(self, x, rows=None):
        """Objective and gradient. Autograd runs only through the small logits tensor Z (B, N, K);
        the gradients in W, H and b are then two batched products (dZ^T H, dZ W) and a sum."""
        lam_W, lam_H, lam_b = self.lams
        W, H, b = self.split(x.detach())
        hyper = self.hyper if rows is None else self.hyper[rows]
        with torch.enable_grad():
            Z = torch.baddbmm(b[:, None, :], H, W.transpose(1, 2)).requires_grad_(True)
            data = _batched_per_sample_loss(self.loss, Z, self.labels, hyper).mean(1)
            (G,) = torch.autograd.grad(data.sum(), Z)
        flat = lambda t: t.reshape(t.shape[0], -1)  # noqa: E731
        f = data.detach() + 0.5 * (lam_W * torch.linalg.vecdot(flat(W), flat(W))
                                   + lam_H * torch.linalg.vecdot(flat(H), flat(H))
                                   + lam_b * torch.linalg.vecdot(b, b))
        gW = torch.baddbmm(W, G.transpose(1, 2), H, beta=lam_W)
        gH = torch.baddbmm(H, G, W, beta=lam_H)
        gb = G.sum(1) + lam_b * b
        return f, torch.cat([flat(gW), flat(gH), gb], dim=1)


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


def _lbfgs_direction(g, S, Y, rho):
    """-H g by the two-loop recursion, all problems at once.

    The curvature pairs are stored in float32: they only shape the search direction, while the
    objective, gradient, line search and stopping test stay in float64, so the optimum's accuracy
    is unchanged and the memory-bound recursion moves half the bytes. Pairs with rho = 0 (failed
    curvature test) are no-ops.
    """
    q = -g.float()
    alphas = []
    for s, y, r in zip(reversed(S), reversed(Y), reversed(rho)):
        a = r * torch.linalg.vecdot(s, q)
        q.addcmul_(y, a[:, None], value=-1.0)
        alphas.append(a)
    if S:
        sy = torch.linalg.vecdot(S[-1], Y[-1])
        yy = torch.linalg.vecdot(Y[-1], Y[-1])
        q.mul_(torch.where(rho[-1] > 0, sy / yy.clamp_min(1e-30), torch.ones_like(sy))[:, None])
    else:
        q.div_(g.float().norm(dim=1).clamp_min(1e-12)[:, None])
    for s, y, r, a in zip(S, Y, rho, reversed(alphas)):
        beta = r * torch.linalg.vecdot(y, q)
        q.addcmul_(s, (a - beta)[:, None])
    d = q.double()
    slope = torch.linalg.vecdot(g, d)
    bad = slope >= 0                              # not a descent direction: use the gradient
    if bool(bad.any()):
        d[bad] = -g[bad]
        slope[bad] = -torch.linalg.vecdot(g[bad], g[bad])
    return d, slope


def _lbfgs(problem: _Problem, max_iter: int, history: int, gtol: float, ftol: float, record_every: int,
           progress: bool):
    """Batched L-BFGS; problems leave the batch as soon as they converge."""
    B = problem.B
    x_all = problem.x0.clone()
    f_all = torch.empty(B, dtype=torch.float64)
    gmax_all = torch.empty(B, dtype=torch.float64)
    its_all = torch.zeros(B, dtype=torch.long)
    ids = torch.arange(B)
    x = x_all.clone()
    f, g = problem.value_and_grad(x, ids)
    S, Y, rho = [], [], []
    stall = torch.zeros(B, dtype=torch.long)
    traj = _new_trajectory(B)
    if record_every:
        _record(problem, x_all, 0, traj, range(B))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_iter, desc=f"UFM {problem.loss} L-BFGS x{B}", leave=False)
    it = 0
    for it in range(1, max_iter + 1):
        d, slope = _lbfgs_direction(g, S, Y, rho)
        # Backtracking (Armijo) line search with the gradient taken at each trial point, so an
        # accepted step (usually the first, t = 1, tried on the whole batch at once) costs one
        # evaluation in all; only rejected problems are retried with halved steps.
        x_new = x + d
        f_new, g_new = problem.value_and_grad(x_new, ids)
        ok = (f_new <= f + 1e-4 * slope) & torch.isfinite(f_new)
        pending = torch.nonzero(~ok).flatten()
        step = torch.ones(len(ids), dtype=torch.float64)
        for _ in range(60):
            if len(pending) == 0:
                break
            step[pending] *= 0.5
            trial = x[pending] + step[pending, None] * d[pending]
            f_t, g_t = problem.value_and_grad(trial, ids[pending])
            ok = (f_t <= f[pending] + 1e-4 * step[pending] * slope[pending]) & torch.isfinite(f_t)
            acc = pending[ok]
            x_new[acc], f_new[acc], g_new[acc] = trial[ok], f_t[ok], g_t[ok]
            pending = pending[~ok]
        if len(pending):  # no acceptable step: stay put, and stop this problem below
            x_new[pending], f_new[pending], g_new[pending] = x[pending], f[pending], g[pending]
        failed = torch.zeros(len(ids), dtype=torch.bool)
        failed[pending] = True
        s, y_ = (x_new - x).float(), (g_new - g).float()
        sy = torch.linalg.vecdot(s, y_)
        good = sy > 1e-10 * s.norm(dim=1) * y_.norm(dim=1)
        S.append(s)
        Y.append(y_)
        rho.append(torch.where(good, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy)))
        if len(S) > history:
            S.pop(0), Y.pop(0), rho.pop(0)
        rel_change = (f - f_new).abs() / f_new.abs().clamp_min(1e-300)
        stall = torch.where(rel_change < ftol, stall + 1, torch.zeros_like(stall))
        x, f, g = x_new, f_new, g_new
        its_all[ids] += 1
        gmax = g.abs().amax(1)
        done = (gmax < gtol) | (stall >= 10) | failed
        if record_every or bool(done.any()):
            x_all[ids], f_all[ids], gmax_all[ids] = x, f, gmax
        if bool(done.any()):
            keep = ~done
            ids, x, f, g, stall = ids[keep], x[keep], f[keep], g[keep], stall[keep]
            S, Y, rho = [t[keep] for t in S], [t[keep] for t in Y], [t[keep] for t in rho]
        if record_every and it % record_every == 0:
            _record(problem, x_all, it, traj, range(B))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(active=len(ids))
        if len(ids) == 0:
            break
    if len(ids):
        x_all[ids], f_all[ids], gmax_all[ids] = x, f, g.abs().amax(1)
    if bar is not None:
        bar.close()
    if record_every and (not traj["iteration"] or traj["iteration"][-1] != it):
        _record(problem, x_all, it, traj, range(B))
    converged = gmax_all < max(gtol * 100, 1e-7)
    return x_all, f_all, its_all, converged, traj


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
          seed: int | list[int] = 0, max_iter: int = 20000, history: int = 10, gtol: float = 1e-11,
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
    if init is None and not (init_scale > 0 and np.isfinite(init_scale)):
        # W = H = 0 is a critical point of every loss here: a start there never leaves it.
        raise ValueError(f"init_scale must be a finite number > 0, got {init_scale}")
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
                     record_every: int = 20, init_scale: float = 0.1, progress: bool = False,
                     snapshots: bool = False, **params):
    """Full-batch gradient descent on the UFM with a fixed step, recording the trajectory.

    Lists of hyperparameter values run together, batched, from the same random start. With
    ``snapshots=True`` the trajectory also keeps ``W``, ``H`` and ``b`` at every recorded step
    (lists of arrays), for drawing the geometry as it forms.
    Returns a :class:`UFMSolution` (``converged`` is False: plain GD does not test convergence)
    or a list of them.
    """
    check_loss_name(loss)
    _check_problem(K, n, d, lambda_W, lambda_H, lambda_b)
    if not (lr > 0 and np.isfinite(lr)) or int(steps) != steps or steps < 1:
        raise ValueError(f"need a finite lr > 0 and a positive integer number of steps, got lr={lr}, steps={steps}")
    if not (init_scale > 0 and np.isfinite(init_scale)):
        raise ValueError(f"init_scale must be a finite number > 0, got {init_scale}")
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
    kept = []

    def record(it):
        _record(problem, x, it, traj, which)
        if snapshots:
            kept.append([t.numpy().copy() for t in problem.split(x)])

    if record_every:
        record(0)
    for it in iterator:
        _, g = problem.value_and_grad(x)
        x = x - lr * g
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"gradient descent diverged by step {it} (lr={lr}); use a smaller lr")
        if record_every and (it % record_every == 0 or it == steps):
            record(it)
    f = problem.value(x).detach()
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"gradient descent diverged (lr={lr}); use a smaller lr")
    out = _solutions(problem, x, f, torch.full((problem.B,), steps), torch.zeros(problem.B, dtype=torch.bool),
                     traj, loss, name, values if name else [0.0])
    for i, sol in enumerate(out):
        if snapshots:
            sol.trajectory["snapshots"] = [{"W": W[i], "H": H[i], "b": b[i]} for W, H, b in kept]
    return out if hyper_list else out[0]
