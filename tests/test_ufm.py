import numpy as np
import pytest
import torch

from ncrepro import get_loss, theory, ufm
from ncrepro.problem import UFMProblem

PROBLEM = UFMProblem(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=4e-3)


@pytest.mark.parametrize("loss, params, lam_b", [("ce", {}, 2e-3), ("ls", {"alpha": 0.25}, 0.0),
                                                  ("fl", {"gamma": 1.5}, 0.0), ("mse", {"scale": 2.0}, 2e-3)])
def test_solver_reaches_the_closed_form(loss, params, lam_b):
    problem = PROBLEM.replace(lambda_b=lam_b)
    sol = ufm.solve(loss, problem, seed=3, **params)
    th = theory.global_minimizer(loss, problem, **params)
    assert isinstance(sol, ufm.UFMSolution) and sol.converged
    assert sol.objective == pytest.approx(th["objective"], rel=1e-7)
    assert sol.margins() == pytest.approx(np.full(15, th["margin"]), rel=1e-5)
    m = sol.metrics()
    assert m["nc1"] < 1e-8 and m["nc2"] < 1e-5 and m["nc3"] < 1e-5


def test_objective_uses_the_library_losses():
    rng = np.random.default_rng(0)
    problem = UFMProblem(K=3, n=4, d=5, lambda_W=0.1, lambda_H=0.2, lambda_b=0.3)
    W, H, b = rng.normal(size=(3, 5)), rng.normal(size=(12, 5)), rng.normal(size=3)
    labels = torch.from_numpy(ufm.ufm_labels(3, 4))
    for loss, params in (("ce", {}), ("ls", {"alpha": 0.3}), ("fl", {"gamma": 2.0}), ("mse", {"scale": 4.0})):
        f = ufm.objective(loss, problem, ufm.flat_point(W, H, b), **params)
        data = get_loss(loss, **params)(torch.tensor(H @ W.T + b), labels)
        reg = 0.05 * (W ** 2).sum() + 0.1 * (H ** 2).sum() + 0.15 * (b ** 2).sum()
        assert f == pytest.approx(float(data) + reg, rel=1e-12)


def test_gradient_matches_autograd():
    problem = UFMProblem(K=3, n=2, d=4, lambda_W=0.1, lambda_H=0.2, lambda_b=0.05)
    x = ufm.random_start(problem, seed=1, init_scale=0.5)
    _, g = ufm.objective_and_gradient("fl", problem, x, gamma=1.5)
    xt = torch.from_numpy(x).requires_grad_(True)
    (g_ref,) = torch.autograd.grad(ufm.ufm_objective_function("fl", problem, gamma=1.5)(xt), xt)
    np.testing.assert_allclose(g, g_ref.numpy(), rtol=1e-12, atol=1e-15)


def test_points_round_trip():
    x = ufm.random_start(PROBLEM, seed=2)
    W, H, b = ufm.split_point(PROBLEM, x)
    assert W.shape == (5, 7) and H.shape == (15, 7) and b.shape == (5,)
    np.testing.assert_array_equal(ufm.flat_point(W, H, b), x)
    with pytest.raises(ValueError, match="entries"):
        ufm.split_point(PROBLEM, x[:-1])


def test_batched_hyperparameters_equal_separate_solves():
    alphas = [0.0, 0.3, 0.7]
    batched = ufm.solve_batch("ls", PROBLEM, alpha=alphas, seeds=[1])
    assert len(batched) == 3
    for a, sol in zip(alphas, batched):
        single = ufm.solve("ls", PROBLEM, alpha=a, seed=1)
        assert sol.params == {"alpha": a}
        assert sol.objective == pytest.approx(single.objective, rel=1e-10)


def test_seed_list_and_determinism():
    sols = ufm.solve_batch("ce", PROBLEM, seeds=[0, 1, 2])
    assert len(sols) == 3 and len({round(s.objective, 12) for s in sols}) == 1
    a = ufm.solve("ce", PROBLEM, seed=4)
    b = ufm.solve("ce", PROBLEM, seed=4)
    np.testing.assert_array_equal(a.W, b.W)


def test_one_value_one_solution_many_values_a_list():
    assert isinstance(ufm.solve("ls", PROBLEM, alpha=0.1), ufm.UFMSolution)
    with pytest.raises(ValueError, match="solve_batch"):
        ufm.solve("ls", PROBLEM, alpha=[0.1, 0.2])
    assert isinstance(ufm.solve_batch("ls", PROBLEM, alpha=0.1), list)
    assert len(ufm.gradient_descent("ls", PROBLEM, alpha=0.1, steps=5, record_every=0)) == 1
    runs = ufm.gradient_descent("ls", PROBLEM, alpha=0.1, steps=5, record_every=0, seeds=[0, 1, 2])
    single = ufm.gradient_descent("ls", PROBLEM, alpha=0.1, steps=5, record_every=0, seeds=[1])[0]
    assert len(runs) == 3 and runs[1].objective == pytest.approx(single.objective, rel=1e-12)


def test_gradient_descent_records_and_descends():
    (sol,) = ufm.gradient_descent("ls", PROBLEM, lr=0.5, steps=300, record_every=50, alpha=0.1)
    tr = sol.trajectory
    assert tr["iteration"] == [0, 50, 100, 150, 200, 250, 300]
    assert all(a > b for a, b in zip(tr["objective"], tr["objective"][1:]))
    assert tr["nc1"][-1] < tr["nc1"][0]


@pytest.mark.parametrize("sizes, params, message", [
    (dict(K=5, n=3, d=0, lambda_W=1e-2, lambda_H=1e-2), {}, "d must be"),
    (dict(K=5, n=3, d=7, lambda_W=-1.0, lambda_H=1e-2), {}, "lambda_W"),
    (dict(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=1e-2), dict(alpha=[0.1, 1.2]), r"\[0, 1\)"),
    (dict(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=1e-2), dict(alpha=[0.1, 0.2], seeds=[0, 1, 2]), "equal length"),
    (dict(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=1e-2), dict(gamma=2.0), "takes"),
    (dict(K=5, n=3, lambda_W=1e-2, lambda_H=1e-2), {}, "feature dimension"),
])
def test_bad_arguments(sizes, params, message):
    with pytest.raises(ValueError, match=message):
        ufm.solve_batch("ls", UFMProblem(**sizes), **params)


def test_below_k_minus_one_dimensions_no_etf_fits():
    """With d < K-1 the solver still runs, the theory refuses, and NC2 cannot reach zero."""
    problem = UFMProblem(K=5, n=3, d=2, lambda_W=1e-2, lambda_H=1e-2)
    sol = ufm.solve("ce", problem, seed=0)
    assert sol.converged and sol.metrics()["nc2"] > 0.1
    with pytest.raises(ValueError, match="no simplex ETF fits"):
        theory.global_minimizer("ce", problem)
