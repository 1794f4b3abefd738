import math

import numpy as np
import pytest

from ncrepro import landscape, theory, ufm
from ncrepro.problem import UFMProblem

SMALL = UFMProblem(K=3, n=2, d=4, lambda_W=5e-3, lambda_H=5e-3)


@pytest.mark.parametrize("loss, params", [("ls", {"alpha": 0.2}), ("fl", {"gamma": 2.0})])
def test_saddles_and_minimum(loss, params):
    origin = landscape.analyse_point(loss, SMALL, landscape.origin_point(loss, SMALL, **params), **params)
    tied = landscape.analyse_point(loss, SMALL, landscape.tied_critical_point(loss, SMALL, tie=(1, 2), **params),
                                   **params)
    best = landscape.analyse_point(loss, SMALL, landscape.optimum_point(loss, SMALL, **params), **params)
    for point in (origin, tied):
        assert point["gradient_norm"] < 1e-8 and point["min_eigenvalue"] < -1e-3
        assert point["objective"] > best["objective"]
    assert best["negative"] == 0
    assert best["near_zero"] == landscape.expected_null_dimension(loss, 3, 4, 0.0) == 6


@pytest.mark.parametrize("loss, params, lambda_b, d", [
    ("ce", {}, 0.0, 4), ("ls", {"alpha": 0.1}, 0.0, 2), ("fl", {"gamma": 3.0}, 0.0, 3),
    ("mse", {"scale": 2.0}, 0.0, 3), ("mse", {"scale": 15.0}, 1.0, 4)])
def test_closed_form_point_is_the_optimum(loss, params, lambda_b, d):
    """Built from the theory alone: zero gradient, the closed-form objective, no descent direction."""
    problem = SMALL.replace(lambda_b=lambda_b, d=d)
    x = landscape.closed_form_point(loss, problem, **params)
    info = landscape.analyse_point(loss, problem, x, **params)
    assert info["gradient_norm"] < 1e-10
    assert info["objective"] == pytest.approx(theory.global_minimizer(loss, problem, **params)["objective"], rel=1e-12)
    assert info["negative"] == 0


def test_expected_null_dimension():
    assert landscape.expected_null_dimension("ce", 4, 3, 0.0) == 3 + 1      # d = K-1: all of O(3), plus the bias
    assert landscape.expected_null_dimension("mse", 4, 5, 0.0) == 10 - 1
    assert landscape.expected_null_dimension("ls", 4, 5, 1e-3) == 9


def test_bad_tie():
    with pytest.raises(ValueError, match="tie"):
        landscape.tied_critical_point("ce", SMALL, tie=(0, 0))


def test_gradient_norm_search_finds_saddles_that_are_strict_for_ls():
    points = landscape.critical_points_by_gradient_norm("ls", SMALL, seeds=range(8), alpha=0.1)
    best = theory.global_minimizer("ls", SMALL, alpha=0.1)["objective"]
    values = set()
    for x in points:
        info = landscape.analyse_point("ls", SMALL, x, alpha=0.1)
        values.add(round(info["objective"], 6))
        if info["objective"] > best * (1 + 1e-7):
            assert info["min_eigenvalue"] < -1e-3     # every non-optimal critical point is a strict saddle
    assert len(values) >= 3, values                    # more than the origin and the optimum


def focal_window_problem(K=12, n=1, above=1.004):
    """c0 just above -ell'(0): the origin is a strict local minimum, the global one is not 0."""
    c0 = above * theory.origin_threshold("fl", K, gamma=3.0)
    lam = c0 / ((K - 1) * math.sqrt(n))
    return UFMProblem(K=K, n=n, d=K + 1, lambda_W=lam, lambda_H=lam)


def test_focal_window_has_spurious_minima_and_ce_ls_do_not():
    """In the focal window some random starts stop above the global minimum at points with dead
    classes; CE and LS controls on the same sizes reach the global minimum from every start."""
    problem = focal_window_problem(K=30)
    opt = theory.global_minimizer("fl", problem, gamma=3.0)
    assert not opt["trivial"] and opt["objective"] < theory.global_minimizer("fl", problem.replace(
        lambda_W=problem.lambda_W * 10, lambda_H=problem.lambda_H * 10), gamma=3.0)["objective"] * 10
    origin = landscape.analyse_point("fl", problem, landscape.origin_point("fl", problem, gamma=3.0), gamma=3.0)
    assert origin["negative"] == 0 and origin["objective"] > opt["objective"]
    survey = landscape.survey_random_starts("fl", problem, seeds=range(8), gamma=3.0)
    stuck = [r for r in survey if r["gap"] > 1e-7]
    assert stuck and any(r["dead"] > 0 for r in stuck)
    for loss, params in (("ce", {}), ("ls", {"alpha": 0.1})):
        control = problem.replace(lambda_W=1e-2, lambda_H=1e-2)
        assert all(r["gap"] < 1e-7 for r in landscape.survey_random_starts(loss, control, seeds=range(8), **params))


def test_perturbations_return_to_a_minimum_and_escape_a_saddle():
    x_star = landscape.closed_form_point("ls", SMALL, alpha=0.1)
    back = landscape.perturbation_returns("ls", SMALL, x_star, sizes=(0.05,), count=4, alpha=0.1)
    f_star = ufm.objective("ls", SMALL, x_star, alpha=0.1)
    assert back[0]["escaped"] == 0 and back[0]["highest"] == pytest.approx(f_star,
                                                                             rel=1e-8)
    saddle = landscape.tied_critical_point("ls", SMALL, alpha=0.1)
    away = landscape.perturbation_returns("ls", SMALL, saddle, sizes=(0.05,), count=4, alpha=0.1)
    assert away[0]["escaped"] == 4


def test_dead_classes():
    W = np.eye(3, 4)
    W[2] = 0
    x = ufm.flat_point(W, np.zeros((6, 4)), np.zeros(3))
    assert landscape.dead_classes(SMALL, x) == 1
