import math

import numpy as np
import pytest

from ncrepro import theory, ufm
from ncrepro.problem import UFMProblem


def brute_force_margin(loss, K, c0, **params):
    """Global minimiser of g(m) = ell(m) + c0 m by a dense grid, then a fine local grid."""
    m = np.linspace(0.0, 60.0, 600001)
    g = theory.per_sample_loss_at_margin(loss, m, K=K, **params) + c0 * m
    i = int(np.argmin(g))
    fine = np.linspace(max(m[i] - 1e-4, 0.0), m[i] + 1e-4, 20001)
    gf = theory.per_sample_loss_at_margin(loss, fine, K=K, **params) + c0 * fine
    return fine[int(np.argmin(gf))], float(gf.min())


@pytest.mark.parametrize("loss, params", [("ce", {}), ("ls", {"alpha": 0.15}), ("ls", {"alpha": 0.6}),
                                          ("fl", {"gamma": 0.3}), ("fl", {"gamma": 2.5}), ("fl", {"gamma": 4.5})])
@pytest.mark.parametrize("K, n, lam", [(3, 7, 2e-3), (10, 50, 4e-4), (25, 3, 1e-2), (7, 11, 5e-2)])
def test_closed_forms_match_a_brute_force_search(loss, params, K, n, lam):
    th = theory.global_minimizer(loss, UFMProblem(K=K, n=n, lambda_W=lam, lambda_H=2 * lam), **params)
    m_bf, g_bf = brute_force_margin(loss, K, th["c0"], **params)
    assert th["objective"] <= g_bf + 1e-12
    assert th["objective"] == pytest.approx(g_bf, rel=1e-9)
    assert th["margin"] == pytest.approx(m_bf, rel=1e-6, abs=1e-6)  # g is flat at its minimum


def test_scale_relations():
    th = theory.global_minimizer("ls", UFMProblem(K=6, n=9, lambda_W=3e-3, lambda_H=1e-3), alpha=0.2)
    c = math.sqrt(3e-3 / (9 * 1e-3))
    assert th["c"] == pytest.approx(c)
    assert th["margin"] == pytest.approx(c * th["w_norm_sq"] * 6 / 5)
    assert th["h_norm_sq"] == pytest.approx(c * c * th["w_norm_sq"])


def test_ce_collapses_at_c0_between_threshold_and_one():
    K, n = 10, 4
    lam = 0.95 / ((K - 1) * math.sqrt(n))      # c0 = 0.95 in ((K-1)/K, 1)
    th = theory.global_minimizer("ce", UFMProblem(K=K, n=n, lambda_W=lam, lambda_H=lam))
    assert th["trivial"] and th["objective"] == pytest.approx(math.log(K))
    lam = 0.85 / ((K - 1) * math.sqrt(n))
    assert not theory.global_minimizer("ce", UFMProblem(K=K, n=n, lambda_W=lam, lambda_H=lam))["trivial"]


def test_ls_margin_is_bounded_as_weight_decay_vanishes():
    for alpha in (0.05, 0.3, 0.8):
        th = theory.global_minimizer("ls", UFMProblem(K=10, n=100, lambda_W=1e-12, lambda_H=1e-12), alpha=alpha)
        assert th["margin"] == pytest.approx(math.log1p(10 * (1 - alpha) / alpha), rel=1e-6)


def test_focal_picks_the_global_of_two_local_minima():
    # K = 1000, gamma = 3: g has a local minimum at m = 0 and an interior one; which is global
    # depends on c0. A solver of -ell'(m) = c0 alone would return the interior point in both cases.
    K, n = 1000, 5
    for c0, trivial in ((1.08, False), (1.11, True)):
        lam = c0 / ((K - 1) * math.sqrt(n))
        th = theory.global_minimizer("fl", UFMProblem(K=K, n=n, lambda_W=lam, lambda_H=lam), gamma=3.0)
        m_bf, g_bf = brute_force_margin("fl", K, c0, gamma=3.0)
        assert th["trivial"] is trivial
        assert th["objective"] == pytest.approx(g_bf, rel=1e-10)


def test_mse_closed_form_and_bias():
    th = theory.global_minimizer("mse", UFMProblem(K=5, n=8, lambda_W=1e-3, lambda_H=1e-3), scale=3.0)
    assert th["margin"] == pytest.approx(3.0 - 5 * math.sqrt(8) * 1e-3)
    assert th["bias"] is None or th["bias"] == pytest.approx(3.0 / 5)
    rho = math.sqrt(8) * 1e-3
    # A weakly penalised bias carries the common target alone: b = M / (K (1 + lambda_b)).
    weak = theory.global_minimizer("mse", UFMProblem(K=5, n=8, lambda_W=1e-3, lambda_H=1e-3, lambda_b=0.004), scale=3.0)
    assert 0.004 * 3.0 / (5 * 1.004) <= rho
    assert weak["bias"] == pytest.approx(3.0 / (5 * 1.004)) and weak["feature_mean_norm_sq"] == 0.0
    # Past the threshold the bias stops at rho / lambda_b and the features take the rest.
    strong = theory.global_minimizer("mse", UFMProblem(K=5, n=8, lambda_W=1e-3, lambda_H=1e-3, lambda_b=0.5), scale=3.0)
    assert strong["bias"] == pytest.approx(rho / 0.5) and strong["margin"] == pytest.approx(th["margin"])
    assert strong["feature_mean_norm_sq"] > 0
    huge = theory.global_minimizer("mse", UFMProblem(K=5, n=8, lambda_W=1.0, lambda_H=1.0), scale=3.0)
    assert huge["trivial"] and huge["objective"] == pytest.approx(4 / 10 * 9)


@pytest.mark.parametrize("lambda_b", [0.01, 0.1, 1.0, 10.0])
def test_mse_with_bias_matches_the_solver_from_several_starts(lambda_b):
    """Both regimes of the MSE-with-bias optimum (the threshold lies near lambda_b = 0.015 here)."""
    problem = UFMProblem(K=10, n=20, d=16, lambda_W=5e-3, lambda_H=5e-3, lambda_b=lambda_b)
    th = theory.global_minimizer("mse", problem, scale=15.0)
    sols = ufm.solve_batch("mse", problem, seeds=[0, 1, 2, 3, 4], init_scale=0.5, scale=15.0)
    for sol in sols:
        assert sol.converged
        assert sol.objective == pytest.approx(th["objective"], rel=1e-9)
        assert np.mean(sol.b) == pytest.approx(th["bias"], rel=1e-6)
        assert float(np.sum(sol.H.mean(0) ** 2)) == pytest.approx(th["feature_mean_norm_sq"], abs=1e-7)
        assert np.mean(sol.margins()) == pytest.approx(th["margin"], rel=1e-6)
    if lambda_b == 0.1:  # the example where the bias-only formula said 4.0189
        assert th["objective"] == pytest.approx(3.3041019662, rel=1e-9)


def test_mse_with_bias_needs_rank_k_past_the_threshold():
    base = UFMProblem(K=10, n=20, d=9, lambda_W=5e-3, lambda_H=5e-3)
    with pytest.raises(ValueError, match="d = 9 < K = 10"):
        theory.global_minimizer("mse", base.replace(lambda_b=1.0), scale=15.0)
    assert theory.global_minimizer("mse", base.replace(lambda_b=0.01), scale=15.0)["feature_mean_norm_sq"] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(loss="ce", K=1, n=2, lambda_W=1e-3, lambda_H=1e-3), "K must"),
    (dict(loss="ce", K=3, n=0, lambda_W=1e-3, lambda_H=1e-3), "n must"),
    (dict(loss="ce", K=3, n=2, lambda_W=0.0, lambda_H=1e-3), "lambda_W"),
    (dict(loss="ce", K=3, n=2, lambda_W=1e-3, lambda_H=1e-3, lambda_b=-1.0), "lambda_b"),
    (dict(loss="ce", K=3, n=2, d=0, lambda_W=1e-3, lambda_H=1e-3), "d must"),
    (dict(loss="ce", K=4, n=2, d=2, lambda_W=1e-3, lambda_H=1e-3), "no simplex ETF fits"),
    (dict(loss="ls", K=3, n=2, lambda_W=1e-3, lambda_H=1e-3, alpha=1.0), r"\[0, 1\)"),
    (dict(loss="fl", K=3, n=2, lambda_W=1e-3, lambda_H=1e-3, gamma=-0.5), ">= 0"),
    (dict(loss="hinge", K=3, n=2, lambda_W=1e-3, lambda_H=1e-3), "unknown loss"),
    (dict(loss="ce", K=3, n=2, lambda_W=1e-3, lambda_H=1e-3, alpha=0.1), "no hyperparameters"),
])
def test_bad_arguments(kwargs, message):
    loss = kwargs.pop("loss")
    sizes = {k: kwargs.pop(k) for k in ("K", "n", "d", "lambda_W", "lambda_H", "lambda_b") if k in kwargs}
    with pytest.raises(ValueError, match=message):
        theory.global_minimizer(loss, UFMProblem(**sizes), **kwargs)


@pytest.mark.parametrize("gamma, K_max", [(1.0, 23), (2.0, 17), (3.0, 17), (4.0, 18), (5.0, 19)])
def test_focal_convexity_limit_matches_the_second_difference(gamma, K_max):
    """ell_FL is convex on m >= 0 exactly up to K_max, checked on a dense grid either side."""
    _, limit = theory.focal_convexity_limit(gamma)
    assert limit == K_max
    m = np.linspace(0, 60, 60001)   # step 1e-3: curvature, not rounding, sets the differences
    for K, convex in ((K_max, True), (K_max + 1, False)):
        ell = theory.per_sample_loss_at_margin("fl", m, K=K, gamma=gamma)
        assert bool(np.diff(ell, 2).min() >= -1e-12) == convex


@pytest.mark.parametrize("loss, params, K, expected", [
    ("ce", {}, 10, 0.9), ("ls", {"alpha": 0.1}, 10, 0.81), ("fl", {"gamma": 0.0}, 7, 6 / 7)])
def test_origin_threshold_closed_forms(loss, params, K, expected):
    assert theory.origin_threshold(loss, K, **params) == pytest.approx(expected, rel=1e-14)


def test_origin_threshold_is_where_the_origin_hessian_turns():
    """The origin's smallest Hessian eigenvalue (beyond the flat bias direction) changes sign
    exactly at c0 = -ell'(0): the threshold link between g'(0) and the landscape."""
    from ncrepro import landscape

    K, n, d = 4, 2, 4
    threshold = theory.origin_threshold("fl", K, gamma=3.0)
    for factor, sign in ((0.97, -1), (1.03, 1)):
        lam = factor * threshold / ((K - 1) * math.sqrt(n))
        problem = UFMProblem(K=K, n=n, d=d, lambda_W=lam, lambda_H=lam)
        eig = landscape.hessian_eigenvalues("fl", problem, landscape.origin_point("fl", problem, gamma=3.0), gamma=3.0)
        beyond_bias = eig[np.abs(eig) > 1e-12]
        assert np.sign(beyond_bias.min()) == sign


def test_ls_bounded_margin_is_where_the_push_turns():
    from ncrepro.losses import loss_and_push

    for alpha in (0.05, 0.1, 0.5, 0.9):
        m = theory.ls_bounded_margin(alpha, 10)
        _, push = loss_and_push("ls", [m - 1e-6, m + 1e-6], 10, alpha=alpha)
        assert push[0] > 0 > push[1]
    assert theory.ls_bounded_margin(0.0, 10) == math.inf


def test_optimum_curves_follow_global_minimizer():
    problem = UFMProblem(K=10, n=20, lambda_W=1.0, lambda_H=1.0)
    lambdas = np.geomspace(1e-6, 1e-3, 5)
    curves = theory.optimum_curves("ls", problem, lambdas, alpha=0.1)
    for lam, m in zip(lambdas, curves["margin"]):
        assert m == theory.global_minimizer("ls", problem.replace(lambda_W=lam, lambda_H=lam), alpha=0.1)["margin"]
    assert np.all(np.diff(curves["margin"]) < 0)   # a larger weight decay buys a smaller margin
