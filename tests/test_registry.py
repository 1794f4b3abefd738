"""Adding a loss is one per-sample function plus one registry entry: a toy fifth loss, Poly-1
(Leng et al. 2022, arXiv:2204.12511: cross entropy plus epsilon (1 - p_y)), registered here,
appears in get_loss, the UFM solver and theory, the command line, run names and plots."""

import numpy as np
import pytest
import torch
from _tiny_data import make_image_folder

from ncrepro import UFMProblem, cross_entropy, get_loss, register_loss, theory, ufm
from ncrepro.losses import LossSpec, unregister_loss


def poly1(logits, targets, epsilon=1.0):
    nll = cross_entropy(logits, targets)
    return nll - epsilon * torch.expm1(-nll)          # + epsilon (1 - p_y), with 1 - p_y = -expm1(-nll)


def poly1_at_margin(m, K, epsilon=1.0):
    s = (K - 1) * np.exp(-np.asarray(m, dtype=np.float64))
    return np.log1p(s) + epsilon * s / (1 + s)


def check_epsilon(value):
    value = float(value)
    if not value >= -1.0:
        raise ValueError(f"Poly-1 epsilon must be >= -1, got {value}")
    return value


@pytest.fixture
def poly():
    spec = register_loss(LossSpec(name="poly1", label="Poly-1", title="Poly-1 loss", per_sample=poly1,
                                  at_margin=poly1_at_margin, param="epsilon", default=1.0, check=check_epsilon,
                                  token="eps", color="#17becf"))
    yield spec
    unregister_loss("poly1")


def test_get_loss_builds_it(poly):
    z, y = torch.randn(6, 4, dtype=torch.float64), torch.arange(6) % 4
    p = torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    expected = (-torch.log(p) + 0.5 * (1 - p)).mean()
    torch.testing.assert_close(get_loss("poly1", epsilon=0.5)(z, y), expected)
    with pytest.raises(ValueError, match="epsilon must be >= -1"):
        get_loss("poly1", epsilon=-2.0)
    with pytest.raises(ValueError, match="takes"):
        get_loss("poly1", gamma=2.0)


def test_the_ufm_solver_and_theory_know_it(poly):
    problem = UFMProblem(K=4, n=3, d=5, lambda_W=1e-2, lambda_H=1e-2)
    th = theory.global_minimizer("poly1", problem, epsilon=1.0)      # no closed form: global 1-D search
    sol = ufm.solve("poly1", problem, epsilon=1.0, seed=2)
    assert sol.converged and sol.objective == pytest.approx(th["objective"], rel=1e-8)
    assert sol.metrics()["nc1"] < 1e-8


def test_the_command_line_offers_it(poly, tmp_path, capsys):
    from ncrepro import train

    parser = train.build_parser()
    assert "poly1" in next(a for a in parser._actions if a.dest == "loss").choices
    tree = make_image_folder(tmp_path / "tree", train_per_class=4, test_per_class=2)
    out = tmp_path / "poly.json"
    assert train.main(["--data", str(tree), "--loss", "poly1", "--width", "0.0625", "--epochs", "1",
                       "--batch-size", "8", "--val-size", "4", "--device", "cpu", "--no-progress",
                       "--out", str(out)]) == 0
    assert out.exists()


def test_run_names_and_plots_know_it(poly):
    from ncrepro.plotting import LOSS_COLORS, LOSS_LABELS
    from ncrepro.protocol import run_name
    from ncrepro.train import TrainConfig

    assert run_name(TrainConfig(loss="poly1")) == "resnet18-w1-e10-poly1-s0"   # no config field: its default
    assert LOSS_LABELS["poly1"] == "Poly-1" and LOSS_COLORS["poly1"] == "#17becf"


def test_a_name_is_registered_once(poly):
    with pytest.raises(ValueError, match="already registered"):
        register_loss(poly)
