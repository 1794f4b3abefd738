import numpy as np
import pytest
import torch

from ncrepro import get_loss, theory, ufm

SETTINGS = dict(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=4e-3)


@pytest.mark.parametrize("loss, params, lam_b", [("ce", {}, 2e-3), ("ls", {"alpha": 0.25}, 0.0),
                                                  ("fl", {"gamma": 1.5}, 0.0), ("mse", {"scale": 2.0}, 2e-3)])
def test_solver_reaches_the_closed_form(loss, params, lam_b):
    sol = ufm.solve(loss, **SETTINGS, lambda_b=lam_b, seed=3, **params)
    kw = {k: v for k, v in SETTINGS.items() if k != "d"}
    th = theory.global_minimizer(loss, **kw, lambda_b=lam_b, **params)
    assert sol.converged
    assert sol.objective == pytest.approx(th["objective"], rel=1e-7)
    assert sol.margins() == pytest.approx(np.full(15, th["margin"]), rel=1e-5)
    m = sol.metrics()
    assert m["nc1"] < 1e-8 and m["nc2"] < 1e-5 and m["nc3"] < 1e-5


def test_objective_uses_the_library_losses():
    rng = np.random.default_rng(0)
    K, n, d = 3, 4, 5
    W, H, b = rng.normal(size=(K, d)), rng.normal(size=(K * n, d)), rng.normal(size=K)
    labels = torch.from_numpy(ufm.ufm_labels(K, n))
    for loss, params, hyper in (("ce", {}, 0.0), ("ls", {"alpha": 0.3}, 0.3), ("fl", {"gamma": 2.0}, 2.0),
                                ("mse", {"scale": 4.0}, 4.0)):
        f = ufm.ufm_objective(loss, torch.tensor(W)[None], torch.tensor(H)[None], torch.tensor(b)[None], labels,
                              torch.tensor([hyper], dtype=torch.float64), 0.1, 0.2, 0.3)[0]
        data = get_loss(loss, **params)(torch.tensor(H @ W.T + b), labels)
        reg = 0.05 * (W ** 2).sum() + 0.1 * (H ** 2).sum() + 0.15 * (b ** 2).sum()
        assert float(f) == pytest.approx(float(data) + reg, rel=1e-12)


def test_gradient_matches_autograd():
    problem = ufm._Problem("fl", 3, 2, 4, 0.1, 0.2, 0.05, [1.5, 0.0], [0, 1], 0.5)
    x = problem.x0.clone()
    f, g = problem.value_and_grad(x)
    xr = x.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(problem.value(xr).sum(), xr)
    torch.testing.assert_close(g, g_ref)


def test_batched_hyperparameters_equal_separate_solves():
    alphas = [0.0, 0.3, 0.7]
    batched = ufm.solve("ls", **SETTINGS, alpha=alphas, seed=1)
    assert len(batched) == 3
    for a, sol in zip(alphas, batched):
        single = ufm.solve("ls", **SETTINGS, alpha=a, seed=1)
        assert sol.params == {"alpha": a}
        assert sol.objective == pytest.approx(single.objective, rel=1e-10)


def test_seed_list_and_determinism():
    sols = ufm.solve("ce", **SETTINGS, seed=[0, 1, 2])
    assert len({round(s.objective, 12) for s in sols}) == 1
    a = ufm.solve("ce", **SETTINGS, seed=4)
    b = ufm.solve("ce", **SETTINGS, seed=4)
    np.testing.assert_array_equal(a.W, b.W)


def test_gradient_descent_records_and_descends():
    sol = ufm.gradient_descent("ls", **SETTINGS, lr=0.5, steps=300, record_every=50, alpha=0.1)
    tr = sol.trajectory
    assert tr["iteration"] == [0, 50, 100, 150, 200, 250, 300]
    assert all(a > b for a, b in zip(tr["objective"], tr["objective"][1:]))
    assert tr["nc1"][-1] < tr["nc1"][0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(K=5, n=3, d=3, lambda_W=1e-2, lambda_H=1e-2), "d must be"),
    (dict(K=5, n=3, d=7, lambda_W=-1.0, lambda_H=1e-2), "lambda_W"),
    (dict(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=1e-2, alpha=[0.1, 1.2]), r"\[0, 1\)"),
    (dict(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=1e-2, alpha=[0.1, 0.2], seed=[0, 1, 2]), "equal length"),
    (dict(K=5, n=3, d=7, lambda_W=1e-2, lambda_H=1e-2, gamma=2.0), "takes"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ufm.solve("ls", **kwargs)
