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

from .losses import loss_spec
from .metrics import nc_metrics
from .problem import UFMProblem

__all__ = [
    "UFMProblem",
    "UFMSolution",
    "solve",
    "solve_batch",
    "gradient_descent",
    "objective",
    "objective_and_gradient",
    "random_start",
    "flat_point",
    "split_point",
    "ufm_objective",
    "ufm_objective_function",
    "batched_objective_function",
    "collapse_time",
    "ufm_labels",
]


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

    def point(self) -> np.ndarray:
        """``(W, H, b)`` as one flat vector (see :func:`flat_point`)."""
        return flat_point(self.W, self.H, self.b)


def ufm_labels(K: int, n: int) -> np.ndarray:
    """Class of each row of H: n samples of class 0, then n of class 1, ..."""
    return np.repeat(np.arange(K), n)


def _hyper_values(loss: str, params: dict, allow_list: bool) -> tuple[str | None, list[float], bool]:
    """The loss's hyperparameter name, its values (one per problem) and whether a list was given."""
    spec = loss_spec(loss)
    name = spec.param
    unknown = set(params) - ({name} if name else set())
    if unknown:
        raise ValueError(f"loss {loss!r} takes {[name] if name else 'no hyperparameters'}, got {sorted(unknown)}")
    if name is None:
        return None, [0.0], False
    value = params.get(name, spec.default)
    is_list = isinstance(value, (list, tuple, np.ndarray))
    if is_list and not allow_list:
        raise ValueError(f"{name} is a list: solve one value with solve(), several with solve_batch()")
    values = [spec.value({name: v}) for v in (value if is_list else [value])]
    if not values:
        raise ValueError(f"{name} list is empty")
    return name, values, is_list


def _batched_per_sample_loss(loss: str, Z: torch.Tensor, y: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
    """Per-sample losses (B, N) of logits Z (B, N, K); ``hyper`` (B,) holds each problem's parameter."""
    spec = loss_spec(loss)
    value = None if spec.param is None else hyper[:, None].to(Z.dtype)
    return spec.per_sample(Z, y, value)


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


def random_start(problem: UFMProblem, seed: int = 0, init_scale: float = 0.1) -> np.ndarray:
    """The solvers' random starting point for ``seed``: i.i.d. normal entries times ``init_scale``,
    as one flat vector (see :func:`flat_point`)."""
    if not (init_scale > 0 and np.isfinite(init_scale)):
        # W = H = 0 is a critical point of every loss here: a start there never leaves it.
        raise ValueError(f"init_scale must be a finite number > 0, got {init_scale}")
    d = problem.require_d()
    size = problem.K * d + problem.N * d + problem.K
    g = torch.Generator().manual_seed(int(seed))
    return (torch.randn(size, generator=g, dtype=torch.float64) * init_scale).numpy()


def flat_point(W, H, b) -> np.ndarray:
    """(W, H, b) as one vector, in the order the solvers use."""
    return np.concatenate([np.asarray(W, np.float64).ravel(), np.asarray(H, np.float64).ravel(),
                           np.asarray(b, np.float64).ravel()])


def split_point(problem: UFMProblem, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of :func:`flat_point`: ``(W (K, d), H (N, d), b (K,))``."""
    d = problem.require_d()
    x = np.asarray(x, dtype=np.float64)
    sizes = (problem.K * d, problem.N * d, problem.K)
    if x.shape != (sum(sizes),):
        raise ValueError(f"a point of this problem has {sum(sizes)} entries, got shape {x.shape}")
    W, H, b = np.split(x, np.cumsum(sizes)[:2])
    return W.reshape(problem.K, d), H.reshape(problem.N, d), b


class _Problem:
    """B stacked UFM problems flattened into x (B, P); ``rows`` selects a subset of them."""

    def __init__(self, loss, problem: UFMProblem, hyper, seeds, init_scale, init=None):
        d = problem.require_d()
        self.loss, self.K, self.n, self.d = loss, problem.K, problem.n, d
        self.N = problem.N
        self.lams = (problem.lambda_W, problem.lambda_H, problem.lambda_b)
        self.labels = torch.from_numpy(ufm_labels(problem.K, problem.n))
        self.hyper = torch.tensor(hyper, dtype=torch.float64)
        self.B = len(hyper)
        self.sizes = (self.K * d, self.N * d, self.K)
        if init is not None:
            self.x0 = torch.as_tensor(np.asarray(init), dtype=torch.float64).reshape(self.B, -1).clone()
            if self.x0.shape[1] != sum(self.sizes):
                raise ValueError(f"init must hold {sum(self.sizes)} entries per problem, got {self.x0.shape[1]}")
            if not bool(torch.isfinite(self.x0).all()):
                raise ValueError("init holds a value that is not finite")
            at_origin = (self.x0[:, :self.sizes[0] + self.sizes[1]] == 0).all(1)
            if bool(at_origin.any()):
                raise ValueError("a start with W = H = 0 is a critical point of every loss here (a saddle or the "
                                 "collapse): the solver would stay there; start from a random point instead")
        else:
            self.x0 = torch.stack([torch.from_numpy(random_start(problem, s, init_scale)) for s in seeds])

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


def _objective_problem(loss, problem, params, x0=None) -> _Problem:
    name, values, _ = _hyper_values(loss, params, allow_list=False)
    init = None if x0 is None else np.asarray(x0, dtype=np.float64)[None]
    return _Problem(loss, problem, values if name else [0.0], [0], 0.1, init)


def objective(loss: str, problem: UFMProblem, x, **params) -> float:
    """The UFM objective at the flat point ``x`` (see :func:`flat_point`)."""
    prob = _objective_problem(loss, problem, params)
    return float(prob.value(torch.as_tensor(np.asarray(x), dtype=torch.float64)[None])[0])


def objective_and_gradient(loss: str, problem: UFMProblem, x, **params) -> tuple[float, np.ndarray]:
    """The UFM objective and its gradient at the flat point ``x``."""
    prob = _objective_problem(loss, problem, params)
    f, g = prob.value_and_grad(torch.as_tensor(np.asarray(x), dtype=torch.float64)[None])
    return float(f[0]), g[0].numpy()


def ufm_objective_function(loss: str, problem: UFMProblem, **params):
    """``x -> f(x)`` as a torch function of a flat float64 tensor (differentiable twice), for
    Hessians and gradient-norm searches."""
    prob = _objective_problem(loss, problem, params)
    return lambda x: prob.value(x[None])[0]


def collapse_time(solution: UFMSolution, key: str, threshold: float, lr: float) -> float | None:
    """When a gradient-descent run's metric ``key`` (``"nc1"``, ``"nc2"``, ...) first falls below
    ``threshold``, in gradient-flow time (step size x steps), or None if it never does. The
    resolution is the run's recording interval, in the same units."""
    from .metrics import first_below

    step = first_below(solution.trajectory["iteration"], solution.trajectory[key], threshold)
    return None if step is None else step * lr


def batched_objective_function(loss: str, problem: UFMProblem, batch: int, **params):
    """``X -> f`` for ``batch`` points at once: X (batch, P) float64 to the (batch,) objectives,
    differentiable twice. Summing the outputs gives each row its own gradient, which is how
    many small searches run as one (see :func:`ncrepro.landscape.critical_points_by_gradient_norm`)."""
    prob = _objective_problem(loss, problem, params)
    prob.hyper = prob.hyper.expand(batch)
    return lambda X: prob.value(X)


def _run_lbfgs(loss, problem, hyper, seeds, init_scale, init, max_iter, history, gtol, ftol, record_every,
               progress, name, values):
    prob = _Problem(loss, problem, hyper, seeds, init_scale, init)
    x, f, its, conv, traj = _lbfgs(prob, max_iter, history, gtol, ftol, record_every, progress)
    return _solutions(prob, x, f, its, conv, traj, loss, name, values)


def solve(loss: str, problem: UFMProblem, *, seed: int = 0, max_iter: int = 20000, history: int = 10,
          gtol: float = 1e-11, ftol: float = 1e-15, record_every: int = 0, init_scale: float = 0.1, init=None,
          progress: bool = False, **params) -> UFMSolution:
    """Minimise the UFM objective from one random start (float64 L-BFGS); see :func:`solve_batch`.

    Args:
        loss: a registered loss: ``"ce"``, ``"ls"`` (``alpha``), ``"fl"`` (``gamma``), ``"mse"`` (``scale``).
        problem: sizes (``d`` needed) and weight decays.
        seed: the random start; ``init``: a flat starting point instead.
        record_every: record the objective, mean margin, norms and NC1-NC3 every this many
            iterations in ``trajectory`` (0: no trajectory).
        **params: the loss's hyperparameter (one value).

    Returns:
        One :class:`UFMSolution`.

    Example:
        >>> sol = solve("ce", UFMProblem(K=4, n=3, d=5, lambda_W=1e-2, lambda_H=1e-2))
        >>> sol.converged, round(sol.metrics()["nc1"], 8)
        (True, 0.0)
    """
    name, values, _ = _hyper_values(loss, params, allow_list=False)
    if init is not None:
        init = np.asarray(init, dtype=np.float64)[None]
    return _run_lbfgs(loss, problem, values if name else [0.0], [seed], init_scale, init, max_iter, history, gtol,
                      ftol, record_every, progress, name, values)[0]


def solve_batch(loss: str, problem: UFMProblem, *, seeds=(0,), max_iter: int = 20000, history: int = 10,
                gtol: float = 1e-11, ftol: float = 1e-15, record_every: int = 0, init_scale: float = 0.1,
                init=None, progress: bool = False, **params) -> list[UFMSolution]:
    """Solve several UFM problems at once, batched: one per seed, or one per hyperparameter value
    (``alpha=[0.0, 0.1, 0.2]``), or both paired (two lists of equal length).

    All problems advance together in one computation, each with its own line search, curvature
    history and stopping test; a problem leaves the batch when it converges. ``init`` (an array
    of shape ``(B, P)``) gives the starting points instead of random ones.

    Returns:
        A list of :class:`UFMSolution`, one per problem.
    """
    name, values, _ = _hyper_values(loss, params, allow_list=True)
    seeds = [int(s) for s in np.atleast_1d(seeds)]
    if len(values) > 1 and len(seeds) > 1 and len(values) != len(seeds):
        raise ValueError("give either a list of hyperparameters or a list of seeds, or two lists of equal length")
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        B = init.shape[0]
    else:
        B = max(len(values), len(seeds))
    values = values * B if len(values) == 1 else values
    seeds = seeds * B if len(seeds) == 1 else seeds
    if len(values) != B or len(seeds) != B:
        raise ValueError(f"init holds {B} starting points, which does not match the seeds or hyperparameters")
    hyper = values if name else [0.0] * B
    return _run_lbfgs(loss, problem, hyper, seeds, init_scale, init, max_iter, history, gtol, ftol, record_every,
                      progress, name, values)


def gradient_descent(loss: str, problem: UFMProblem, *, lr: float = 0.1, steps: int = 2000, seeds=(0,),
                     record_every: int = 20, init_scale: float = 0.1, progress: bool = False,
                     snapshots: bool = False, **params) -> list[UFMSolution]:
    """Full-batch gradient descent on the UFM with a fixed step, recording the trajectory.

    Several runs go together, batched: one per seed, or one per hyperparameter value
    (``alpha=[...]``, all from the start of the single seed), or both paired. With
    ``snapshots=True`` the trajectory also keeps ``W``, ``H`` and ``b`` at every recorded step
    (lists of arrays), for drawing the geometry as it forms.

    Returns:
        A list of :class:`UFMSolution`, one per run (one for a single value and seed);
        ``converged`` is False, since plain GD does not test convergence.

    Raises:
        ValueError: a non-finite or non-positive step, or a run that diverges.
    """
    if not (lr > 0 and np.isfinite(lr)) or int(steps) != steps or steps < 1:
        raise ValueError(f"need a finite lr > 0 and a positive integer number of steps, got lr={lr}, steps={steps}")
    name, values, _ = _hyper_values(loss, params, allow_list=True)
    seeds = [int(s) for s in np.atleast_1d(seeds)]
    if len(values) > 1 and len(seeds) > 1 and len(values) != len(seeds):
        raise ValueError("give either a list of hyperparameters or a list of seeds, or two lists of equal length")
    B = max(len(values), len(seeds))
    values = values * B if len(values) == 1 else values
    seeds = seeds * B if len(seeds) == 1 else seeds
    hyper = values if name else [0.0] * B
    problem_ = _Problem(loss, problem, hyper, seeds, init_scale)
    x = problem_.x0.clone()
    traj = _new_trajectory(problem_.B)
    which = range(problem_.B)
    iterator = range(1, steps + 1)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc=f"UFM {loss} GD", leave=False)
    kept = []

    def record(it):
        _record(problem_, x, it, traj, which)
        if snapshots:
            kept.append([t.numpy().copy() for t in problem_.split(x)])

    if record_every:
        record(0)
    for it in iterator:
        _, g = problem_.value_and_grad(x)
        x = x - lr * g
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"gradient descent diverged by step {it} (lr={lr}); use a smaller lr")
        if record_every and (it % record_every == 0 or it == steps):
            record(it)
    f = problem_.value(x).detach()
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"gradient descent diverged (lr={lr}); use a smaller lr")
    out = _solutions(problem_, x, f, torch.full((problem_.B,), steps), torch.zeros(problem_.B, dtype=torch.bool),
                     traj, loss, name, values if name else [0.0] * B)
    for i, sol in enumerate(out):
        if snapshots:
            sol.trajectory["snapshots"] = [{"W": W[i], "H": H[i], "b": b[i]} for W, H, b in kept]
    return out
