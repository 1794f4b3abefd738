import math

import pytest
import torch
import torch.nn.functional as F

from ncrepro.losses import DEFAULT_PARAMS, get_loss


def _batch(B=16, K=7, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, K, generator=g, dtype=dtype) * scale, torch.randint(0, K, (B,), generator=g)


def test_cross_entropy_matches_pytorch():
    z, y = _batch()
    torch.testing.assert_close(get_loss("ce")(z, y), F.cross_entropy(z, y))


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.1, 0.5, 0.95])
def test_label_smoothing_matches_pytorch(alpha):
    z, y = _batch()
    torch.testing.assert_close(get_loss("ls", alpha=alpha)(z, y), F.cross_entropy(z, y, label_smoothing=alpha))


def test_limiting_cases_equal_cross_entropy():
    z, y = _batch()
    ce = get_loss("ce", reduction="none")(z, y)
    torch.testing.assert_close(get_loss("ls", alpha=0.0, reduction="none")(z, y), ce)
    torch.testing.assert_close(get_loss("fl", gamma=0.0, reduction="none")(z, y), ce)


def test_focal_closed_form():
    z, y = _batch()
    p = torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    for gamma in (0.5, 1.0, 2.0, 3.0):
        expected = -(1 - p) ** gamma * torch.log(p)
        torch.testing.assert_close(get_loss("fl", gamma=gamma, reduction="none")(z, y), expected)


def test_focal_two_class_known_value():
    # Two classes, logits (0, log 3): p_y = 1/4 for y = 0, so loss = (3/4)^2 * log 4.
    z = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    y = torch.tensor([0])
    assert get_loss("fl", gamma=2.0)(z, y).item() == pytest.approx((0.75 ** 2) * math.log(4.0), rel=1e-12)


def test_mse_closed_form_and_official_relation():
    z, y = _batch()
    M = 15.0
    target = F.one_hot(y, z.shape[1]).double() * M
    per = 0.5 * ((z - target) ** 2).sum(1)
    torch.testing.assert_close(get_loss("mse", scale=M, reduction="none")(z, y), per)
    official = ((z - target) ** 2).sum()  # the paper's code: batch sum of ||z - 15 e_y||^2
    torch.testing.assert_close(2 * get_loss("mse", scale=M, reduction="sum")(z, y), official)


def test_reductions():
    z, y = _batch()
    for name, params in DEFAULT_PARAMS.items():
        per = get_loss(name, reduction="none", **params)(z, y)
        assert per.shape == (z.shape[0],)
        torch.testing.assert_close(get_loss(name, reduction="sum", **params)(z, y), per.sum())
        torch.testing.assert_close(get_loss(name, **params)(z, y), per.mean())


@pytest.mark.parametrize("name", ["ce", "ls", "fl", "mse"])
def test_gradcheck(name):
    z, y = _batch(B=5, K=4, scale=1.0)
    z.requires_grad_(True)
    loss = get_loss(name, **DEFAULT_PARAMS[name])
    assert torch.autograd.gradcheck(lambda t: loss(t, y), (z,))


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9, 3.0])
def test_focal_gradcheck_fractional_gamma(gamma):
    z, y = _batch(B=5, K=4, scale=2.0)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: get_loss("fl", gamma=gamma)(t, y), (z,))


def test_focal_gradient_matches_closed_form():
    # d/dz_y of -(1-p)^g log p = -(1-p) * [ (1-p)^g - g (1-p)^(g-1) p log p ]
    z, y = _batch(B=8, K=5, scale=2.0)
    z.requires_grad_(True)
    g = 2.0
    get_loss("fl", gamma=g, reduction="sum")(z, y).backward()
    p = torch.softmax(z.detach(), 1).gather(1, y[:, None]).squeeze(1)
    expected = -(1 - p) * ((1 - p) ** g - g * (1 - p) ** (g - 1) * p * torch.log(p))
    torch.testing.assert_close(z.grad.gather(1, y[:, None]).squeeze(1), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.3, 1.0, 3.0])
def test_focal_extreme_logits_finite(dtype, gamma):
    z = torch.tensor([[1e3, 0.0, -1e3], [-1e3, 1e3, 0.0], [0.0, 0.0, 1e3], [1e3, 1e3 - 1, -1e3]], dtype=dtype)
    y = torch.tensor([0, 0, 2, 1])
    z.requires_grad_(True)
    loss = get_loss("fl", gamma=gamma, reduction="none")(z, y)
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(z.grad).all()
    # A confidently correct sample has ~zero loss; a confidently wrong one pays ~ its margin.
    assert loss[0].item() == pytest.approx(0.0, abs=1e-30)
    assert loss[1].item() == pytest.approx(2e3, rel=1e-6)


@pytest.mark.parametrize("name", ["ce", "ls", "mse"])
def test_extreme_logits_finite(name):
    z = torch.tensor([[1e3, 0.0, -1e3], [-1e3, 1e3, 0.0]], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([0, 0])
    loss = get_loss(name, **DEFAULT_PARAMS[name])(z, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: get_loss("hinge"), "unknown loss"),
        (lambda: get_loss("ls", alpha=1.0), r"\[0, 1\)"),
        (lambda: get_loss("ls", alpha=-0.1), r"\[0, 1\)"),
        (lambda: get_loss("ls", alpha=float("nan")), r"\[0, 1\)"),
        (lambda: get_loss("fl", gamma=-1.0), ">= 0"),
        (lambda: get_loss("mse", scale=0.0), "> 0"),
        (lambda: get_loss("ce", alpha=0.1), "no hyperparameters"),
        (lambda: get_loss("fl", alpha=0.1), "gamma"),
        (lambda: get_loss("ce", reduction="max"), "reduction"),
    ],
)
def test_bad_hyperparameters(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_inputs():
    loss = get_loss("ce")
    z = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="outside"):
        loss(z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="outside"):
        loss(z, torch.tensor([0, -1, 2, 1]))
    with pytest.raises(ValueError, match="shape"):
        loss(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        loss(torch.zeros(4), torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="integer"):
        loss(z, torch.zeros(4))
