"""The book's figures that are more than one plotting call, built from the package's
computations: each chapter calls one of these, so a chapter defines no functions and every
figure is tested (it builds, its sliders have one position per value, its axes hold its data).

Every multi-panel figure stacks its panels in one column, which reads on a phone as on a wide
screen; log axes show powers of ten (:data:`ncrepro.plotting.LOG_AXIS`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import theory, ufm
from .losses import loss_and_push
from .metrics import simplex_etf
from .plotting import LOG_AXIS, LOSS_COLORS, LOSS_LABELS, log_ticks, slider_figure
from .problem import UFMProblem

__all__ = [
    "push_zero",
    "push_at_probability",
    "loss_push_figure",
    "loss_family_figure",
    "all_pushes_figure",
    "optimum_scale_figure",
    "optimum_margins_figure",
    "collapse_path",
    "descent_family_figure",
    "live_descent_figure",
]

_SYMBOLS = {"alpha": "α", "gamma": "γ", "scale": "M"}


def _stacked(titles: Sequence[str], *, shared_x: bool = True):
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=shared_x, vertical_spacing=0.12,
                        subplot_titles=list(titles))
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0), margin=dict(l=60, r=10, t=60))
    return fig


def _padded(low: float, high: float, pad: float = 0.06) -> list[float]:
    span = (high - low) or 1.0
    return [low - pad * span, high + pad * span]


def push_zero(name: str, K: int, *, lo: float = 0.0, hi: float = 60.0, **params) -> float:
    """The margin where a loss's push ``-dL/dz_y`` on ``z = (m, 0, ..., 0)`` changes sign, by
    bisection on the module's autograd gradient (label smoothing's bounded margin)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        push = loss_and_push(name, [mid], K, **params)[1][0]
        lo, hi = (mid, hi) if push > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def push_at_probability(name: str, p: float, K: int, **params) -> float:
    """A loss's push at the logits ``(m, 0, ..., 0)`` whose true-class probability is ``p``."""
    return float(loss_and_push(name, [np.log((K - 1) * p / (1 - p))], K, **params)[1][0])


def loss_push_figure(m, K: int, *, alpha: float = 0.1, gamma: float = 3.0, mse_scale: float = 15.0):
    """The four losses (top, log scale) and their push (bottom) on ``z = (m, 0, ..., 0)``; the
    MSE push is divided by its target scale ``M`` so that it shares the axis."""
    fig = _stacked(["loss (log scale)", "push −∂L/∂z_y"])
    settings = {"ce": ({}, "CE"), "ls": ({"alpha": alpha}, f"LS, α = {alpha:g}"),
                "fl": ({"gamma": gamma}, f"FL, γ = {gamma:g}"),
                "mse": ({"scale": mse_scale}, f"MSE, M = {mse_scale:g} (push ÷ M)")}
    lows, pushes = [], []
    for name, (params, label) in settings.items():
        loss_values, push = loss_and_push(name, m, K, **params)
        push = push / (mse_scale if name == "mse" else 1.0)
        shown = np.maximum(loss_values, 1e-12)
        lows.append(shown.min())
        pushes.append(push)
        common = dict(legendgroup=name, line=dict(color=LOSS_COLORS[name], width=2.5))
        fig.add_trace(go.Scatter(x=m, y=shown, name=label, **common), row=1, col=1)
        fig.add_trace(go.Scatter(x=m, y=push, name=label, showlegend=False, **common), row=2, col=1)
    fig.update_yaxes(row=1, col=1, range=[np.log10(min(lows)) - 0.3, 2.5], **log_ticks([min(lows), 10 ** 2.5]))
    fig.update_yaxes(row=2, col=1, range=_padded(min(p.min() for p in pushes), max(p.max() for p in pushes)),
                     zeroline=True)
    fig.update_xaxes(title_text="margin m = z_y − z_j", row=2, col=1)
    return fig


def loss_family_figure(name: str, m, K: int, values: Sequence[float], *, active: int = 0):
    """One loss for every value of its hyperparameter (slider) against cross entropy (dotted):
    the loss (top) and its push (bottom); for label smoothing the margin where the push changes
    sign is marked (dashed). Both axes hold every curve of every slider position."""
    param = {"ls": "alpha", "fl": "gamma"}[name]
    log = name == "fl"
    fig = _stacked(["loss (log scale)" if log else "loss", "push −∂L/∂z_y"])
    ce_loss, ce_push = loss_and_push("ce", m, K)
    dotted = dict(color=LOSS_COLORS["ce"], dash="dot")
    fig.add_trace(go.Scatter(x=m, y=ce_loss, name="CE", line=dotted), row=1, col=1)
    fig.add_trace(go.Scatter(x=m, y=ce_push, name="CE push", showlegend=False, line=dotted), row=2, col=1)
    steps, loss_lo, loss_hi, push_lo, push_hi = [], [], [], [], []
    solid = dict(color=LOSS_COLORS[name], width=3)
    for v in values:
        loss_values, push = loss_and_push(name, m, K, **{param: v})
        shown = np.maximum(loss_values, 1e-12) if log else loss_values
        loss_lo.append(shown.min())
        loss_hi.append(shown.max())
        push_lo.append(push.min())
        push_hi.append(push.max())
        traces = [go.Scatter(x=m, y=shown, name=f"{LOSS_LABELS[name]}, {_SYMBOLS[param]} = {v:g}", line=solid,
                             xaxis="x", yaxis="y"),
                  go.Scatter(x=m, y=push, name=f"{LOSS_LABELS[name]} push", showlegend=False, line=solid,
                             xaxis="x2", yaxis="y2")]
        if name == "ls":
            zero = theory.ls_bounded_margin(v, K) if v > 0 else None
            inside = zero is not None and m[0] <= zero <= m[-1]
            traces.append(go.Scatter(x=[zero, zero] if inside else [None, None], y=[min(push_lo), max(push_hi)],
                                     mode="lines", name="push changes sign", line=dict(color=LOSS_COLORS["ls"],
                                                                                      dash="dash"),
                                     xaxis="x2", yaxis="y2"))
        steps.append((f"{v:g}", traces))
    if name == "ls":
        # The zero markers span every position's push range.
        for _, traces in steps:
            traces[2].y = (min(push_lo), max(push_hi))
    fig = slider_figure(steps, prefix=f"{_SYMBOLS[param]} = ", active=active, fig=fig)
    lo_all = min(min(loss_lo), ce_loss.min())
    hi_all = max(max(loss_hi), ce_loss.max())
    if log:
        fig.update_yaxes(row=1, col=1, range=[np.log10(max(lo_all, 1e-12)) - 0.3, np.log10(hi_all) + 0.3],
                         **log_ticks([max(lo_all, 1e-12), hi_all]))
    else:
        fig.update_yaxes(row=1, col=1, range=_padded(lo_all, hi_all))
    fig.update_yaxes(row=2, col=1, range=_padded(min(min(push_lo), ce_push.min()), max(max(push_hi), ce_push.max())))
    fig.update_xaxes(title_text="margin m", row=2, col=1)
    return fig


def all_pushes_figure(m, K: int, alpha: float = 0.1, gamma: float = 3.0, scale: float = 15.0):
    """The four pushes at any ``alpha``, ``gamma`` and ``M`` (the live controls' figure)."""
    fig = go.Figure()
    for name, params in (("ce", {}), ("ls", {"alpha": alpha}), ("fl", {"gamma": gamma}), ("mse", {"scale": scale})):
        _, push = loss_and_push(name, m, K, **params)
        fig.add_trace(go.Scatter(x=m, y=push / (scale if name == "mse" else 1.0), name=LOSS_LABELS[name],
                                 line=dict(color=LOSS_COLORS[name])))
    fig.update_layout(title="push −∂L/∂z_y (MSE divided by M)", xaxis_title="margin m")
    return fig


def optimum_scale_figure(name: str, K: int, lambdas, curves: dict, reference: dict, *, active: int = 0):
    """The UFM optimum of ``name`` for every value of its hyperparameter (slider) against cross
    entropy (dotted) as the weight decay ``lambda_W = lambda_H`` varies: the optimal margin (top;
    for label smoothing with its bound dashed) and the classifier and feature norms (bottom).

    ``curves`` maps each value to :func:`ncrepro.theory.optimum_curves` of the loss there,
    ``reference`` is the same for cross entropy."""
    param = {"ls": "alpha", "fl": "gamma"}[name]
    values = list(curves)
    fig = _stacked(["optimal margin m*", "norms at the optimum: ‖w‖² (thick), ‖h‖² (thin)"])
    ce = reference
    dotted = dict(color=LOSS_COLORS["ce"], dash="dot")
    fig.add_trace(go.Scatter(x=lambdas, y=ce["margin"], name="CE", line=dotted), row=1, col=1)
    fig.add_trace(go.Scatter(x=lambdas, y=ce["w_norm_sq"], name="CE ‖w‖²", showlegend=False, line=dotted),
                  row=2, col=1)
    color = LOSS_COLORS[name]
    steps = []
    for v in values:
        c = curves[v]
        traces = [go.Scatter(x=lambdas, y=c["margin"], name=f"{LOSS_LABELS[name]}, {_SYMBOLS[param]} = {v:g}",
                             line=dict(color=color, width=3), xaxis="x", yaxis="y")]
        if name == "ls":
            bound = theory.ls_bounded_margin(v, K) if v > 0 else None
            traces.append(go.Scatter(x=lambdas, y=np.full_like(lambdas, bound if bound else np.nan),
                                     name="bounded margin", line=dict(color=color, dash="dash"), xaxis="x",
                                     yaxis="y"))
        traces += [go.Scatter(x=lambdas, y=c["w_norm_sq"], name="‖w‖²", showlegend=False,
                              line=dict(color=color, width=3), xaxis="x2", yaxis="y2"),
                   go.Scatter(x=lambdas, y=c["h_norm_sq"], name="‖h‖²", showlegend=False,
                              line=dict(color=color, width=1.5), xaxis="x2", yaxis="y2")]
        steps.append((f"{v:g}", traces))
    fig = slider_figure(steps, prefix=f"{_SYMBOLS[param]} = ", active=active, fig=fig)
    fig.update_xaxes(title_text="λ_W = λ_H", row=2, col=1, **LOG_AXIS)
    fig.update_xaxes(row=1, col=1, **LOG_AXIS)
    fig.update_yaxes(row=2, col=1, **LOG_AXIS)
    return fig


def optimum_margins_figure(problem: UFMProblem, alpha: float = 0.1, gamma: float = 3.0,
                           log10_lambda: float = -3.0):
    """The optimal margins of CE, LS and FL at one weight decay (the live controls' figure)."""
    p = problem.replace(lambda_W=10 ** log10_lambda, lambda_H=10 ** log10_lambda)
    rows = [("CE", theory.global_minimizer("ce", p)), (f"LS {alpha:g}", theory.global_minimizer("ls", p, alpha=alpha)),
            (f"FL {gamma:g}", theory.global_minimizer("fl", p, gamma=gamma))]
    return go.Figure(go.Bar(x=[r[0] for r in rows], y=[r[1]["margin"] for r in rows]),
                     layout=dict(title=f"optimal margin at λ = {10 ** log10_lambda:.2g}", yaxis_title="m*"))


def collapse_path(K: int, n: int, seed: int, t: float):
    """A synthetic path to neural collapse: at ``t = 0`` random class means, noisy features and a
    random classifier; at ``t = 1`` features at their class means on a scaled simplex ETF and the
    classifier equal to the ETF. Returns ``(H, W, labels)`` in ``d = K - 1`` dimensions."""
    rng = np.random.default_rng(seed)
    d = K - 1
    etf = simplex_etf(K, d)
    labels = np.repeat(np.arange(K), n)
    means0 = rng.normal(size=(K, d))
    noise = rng.normal(size=(K * n, d))
    W0 = rng.normal(size=(K, d))
    means = (1 - t) * means0 + t * 2.0 * etf
    H = means[labels] + (1 - t) ** 2 * 0.8 * noise
    W = (1 - t) * W0 + t * etf
    return H, W, labels


def descent_family_figure(name: str, problem: UFMProblem, family, values: Sequence[float], reference, *,
                          active: int = 0):
    """Gradient descent for every value of a loss's hyperparameter (slider), each from the same
    start, against cross entropy (``reference``, a solution with a trajectory; dotted): NC2
    (top, log scale) and the mean margin with the closed-form optimal margin dashed (bottom)."""
    param = {"ls": "alpha", "fl": "gamma"}[name]
    fig = _stacked(["NC2 (log scale)", "mean margin"])
    tr = reference.trajectory
    dotted = dict(color=LOSS_COLORS["ce"], dash="dot")
    fig.add_trace(go.Scatter(x=tr["iteration"], y=np.maximum(tr["nc2"], 1e-16), name="CE", line=dotted),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=tr["iteration"], y=tr["margin"], name="CE margin", showlegend=False, line=dotted),
                  row=2, col=1)
    color = LOSS_COLORS[name]
    steps = []
    for v, sol in zip(values, family):
        t = sol.trajectory
        target = theory.global_minimizer(name, problem, **{param: v})["margin"]
        steps.append((f"{v:g}", [
            go.Scatter(x=t["iteration"], y=np.maximum(t["nc2"], 1e-16),
                       name=f"{LOSS_LABELS[name]}, {_SYMBOLS[param]} = {v:g}", line=dict(color=color, width=3),
                       xaxis="x", yaxis="y"),
            go.Scatter(x=t["iteration"], y=t["margin"], name="margin", showlegend=False,
                       line=dict(color=color, width=3), xaxis="x2", yaxis="y2"),
            go.Scatter(x=[0, t["iteration"][-1]], y=[target, target], name="optimal margin (theory)",
                       line=dict(color=color, dash="dash"), xaxis="x2", yaxis="y2"),
        ]))
    fig = slider_figure(steps, prefix=f"{_SYMBOLS[param]} = ", active=active, fig=fig)
    fig.update_yaxes(row=1, col=1, **LOG_AXIS)
    fig.update_xaxes(title_text="gradient descent step", row=2, col=1)
    return fig


def live_descent_figure(problem: UFMProblem, alpha: float = 0.1, gamma: float = 3.0,
                        log10_step: float = float(np.log10(0.5))):
    """NC2 during gradient descent for CE, LS and FL at any ``alpha``, ``gamma`` and step size
    (the live controls' figure)."""
    fig = go.Figure()
    for loss, params in (("ce", {}), ("ls", {"alpha": alpha}), ("fl", {"gamma": gamma})):
        (sol,) = ufm.gradient_descent(loss, problem, lr=10 ** log10_step, steps=2000, record_every=40, **params)
        fig.add_trace(go.Scatter(x=sol.trajectory["iteration"], y=sol.trajectory["nc2"], name=LOSS_LABELS[loss],
                                 line=dict(color=LOSS_COLORS[loss])))
    fig.update_layout(title="NC2 during gradient descent", xaxis_title="step")
    fig.update_yaxes(**LOG_AXIS)
    return fig
