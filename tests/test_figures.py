import numpy as np
import pytest

from ncrepro import UFMProblem, figures, theory, ufm
from ncrepro.metrics import nc_metrics


def _visible_y(fig, axis):
    """Every finite y of every trace on ``axis`` (all slider positions)."""
    values = []
    for t in fig.data:
        if (t.yaxis or "y") == axis and t.y is not None:
            values += [v for v in t.y if v is not None and np.isfinite(v)]
    return np.array(values)


def test_push_zero_and_push_at_probability_match_closed_forms():
    assert figures.push_zero("ls", 10, alpha=0.1) == pytest.approx(theory.ls_bounded_margin(0.1, 10), abs=1e-9)
    # CE's push at p_y is 1 - p_y.
    assert figures.push_at_probability("ce", 0.9, 10) == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize("name, values", [("ls", [0.0, 0.1, 0.9]), ("fl", [0.0, 3.0, 5.0])])
def test_loss_family_figure_holds_every_curve(name, values):
    """One slider position per value, and no curve of any position leaves its axes (the book
    once clipped FL's push at gamma 3 and LS at alpha 0.9)."""
    m = np.linspace(-4, 16, 81)
    fig = figures.loss_family_figure(name, m, 10, values, active=1)
    assert len(fig.layout.sliders[0].steps) == len(values)
    for axis, layout_axis in (("y", fig.layout.yaxis), ("y2", fig.layout.yaxis2)):
        y = _visible_y(fig, axis)
        lo, hi = layout_axis.range
        if layout_axis.type == "log":
            y = np.log10(y[y > 0])
        assert lo <= y.min() and y.max() <= hi, (axis, lo, hi, y.min(), y.max())


def test_loss_push_and_live_figures_build():
    m = np.linspace(-4, 16, 41)
    fig = figures.loss_push_figure(m, 10)
    assert len(fig.data) == 8 and fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick in (1, 2, 3)
    assert len(figures.all_pushes_figure(m, 10, 0.2, 2.0, 10.0).data) == 4


def test_optimum_scale_figure_slides_over_precomputed_curves():
    problem = UFMProblem(K=10, n=20, lambda_W=5e-3, lambda_H=5e-3)
    lambdas = np.geomspace(1e-6, 1e-2, 7)
    curves = {a: theory.optimum_curves("ls", problem, lambdas, alpha=a) for a in (0.1, 0.5)}
    fig = figures.optimum_scale_figure("ls", 10, lambdas, curves, theory.optimum_curves("ce", problem, lambdas))
    assert len(fig.layout.sliders[0].steps) == 2 and fig.layout.xaxis2.type == "log"
    bar = figures.optimum_margins_figure(problem, 0.1, 3.0, -3.0)
    assert len(bar.data[0].y) == 3 and all(v > 0 for v in bar.data[0].y)


def test_collapse_path_ends_in_neural_collapse():
    H, W, labels = figures.collapse_path(4, 5, 0, 1.0)
    end = nc_metrics(H, labels, W, np.zeros(4))
    assert end["nc1"] < 1e-20 and end["nc2"] < 1e-12
    H0, W0, _ = figures.collapse_path(4, 5, 0, 0.0)
    assert nc_metrics(H0, labels, W0, np.zeros(4))["nc1"] > 0.1


def test_descent_figures_build():
    problem = UFMProblem(K=3, n=4, d=4, lambda_W=5e-3, lambda_H=5e-3)
    family = ufm.gradient_descent("ls", problem, lr=0.5, steps=40, record_every=10, seeds=[0], alpha=[0.1, 0.3])
    (ce,) = ufm.gradient_descent("ce", problem, lr=0.5, steps=40, record_every=10, seeds=[0])
    fig = figures.descent_family_figure("ls", problem, family, [0.1, 0.3], ce)
    assert len(fig.layout.sliders[0].steps) == 2
    assert len(figures.live_descent_figure(problem, 0.1, 3.0, np.log10(0.5)).data) == 3
