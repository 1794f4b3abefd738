"""Per-sample losses and their gradients against an arbitrary-precision reference (mpmath, 60
digits), at the float64 logits actually given: confident, borderline and badly misclassified
samples with margins from -700 to 700, every gamma from 0 to 5."""

import math

import mpmath
import numpy as np
import pytest
import torch

from ncrepro.losses import get_loss

mpmath.mp.dps = 60
EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny


def reference(name, z, y, value):
    """Loss and gradient in mpmath at the exact float64 inputs. Everything is formed from the
    differences z_i - z_j (exact in mpmath) through log1p, so no digit is lost to 1 + tiny even
    at 60 digits."""
    zs = [mpmath.mpf(float(v)) for v in z]
    K = len(zs)

    def others(j):
        return mpmath.fsum(mpmath.exp(zs[i] - zs[j]) for i in range(K) if i != j)

    p = [1 / (1 + others(j)) for j in range(K)]
    nll = [mpmath.log1p(others(j)) for j in range(K)]
    if name == "ce":
        loss = nll[y]
        grad = [p[j] - (1 if j == y else 0) for j in range(K)]
    elif name == "ls":
        a = mpmath.mpf(value)
        loss = (1 - a) * nll[y] + a * mpmath.fsum(nll) / K
        grad = [p[j] - ((1 - a) * (1 if j == y else 0) + a / K) for j in range(K)]
    elif name == "fl":
        g = mpmath.mpf(value)
        q = others(y) / (1 + others(y))                     # 1 - p_y without cancellation
        loss = q ** g * nll[y]
        # d/dz_j of q^g * L with dL/dz_j = p_j - [j=y], dq/dz_j = -(dp_y/dz_j) = p_y p_j - [j=y] p_y
        dqg = (g * q ** (g - 1)) if g != 0 else mpmath.mpf(0)
        grad = []
        for j in range(K):
            dL = p[j] - (1 if j == y else 0)
            dq = p[y] * p[j] - (p[y] if j == y else 0)
            grad.append(dqg * dq * nll[y] + q ** g * dL)
    else:
        M = mpmath.mpf(value)
        loss = mpmath.fsum((zs[j] - (M if j == y else 0)) ** 2 for j in range(K)) / 2
        grad = [zs[j] - (M if j == y else 0) for j in range(K)]
    return loss, grad


def terms_of(name, value, z, y, j):
    """Size of the terms whose difference a gradient entry is (0 where it is not a difference)."""
    if name == "ls":
        zs = [mpmath.mpf(float(v)) for v in z]
        p_j = 1 / (1 + mpmath.fsum(mpmath.exp(zs[i] - zs[j]) for i in range(len(zs)) if i != j))
        return p_j + mpmath.mpf(value) / len(z) + (1 - value if j == y else 0)
    if name == "mse":
        return abs(float(z[j])) + (value if j == y else 0.0)
    return 0.0


def ours(name, z, y, value):
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    params = {"ls": {"alpha": value}, "fl": {"gamma": value}, "mse": {"scale": value}}.get(name, {})
    loss = get_loss(name, reduction="sum", **params)(t[None], torch.tensor([y]))
    loss.backward()
    return float(loss.detach()), t.grad.numpy()


def ulps(ours_value: float, true) -> float:
    true = float(true)
    return abs(ours_value - true) / max(abs(true) * EPS, TINY)


def samples():
    """(logits, target): exact margins (others at 0), rounded differences, spreads, ties."""
    rng = np.random.default_rng(0)
    out = []
    for m in [-700, -300, -40.3, -5.5, -1.0, -1e-3, 0.0, 1e-3, 0.7, 3.0, 17.0, 40.1, 100.0, 300.0, 700.0]:
        z = np.zeros(10)
        z[3] = m
        out.append((z, 3))
        spread = np.round(rng.normal(0, 2, size=10), 6) + 0.1   # differences that round
        spread[3] = m + 0.123456789
        out.append((spread, 3))
    out.append((np.array([50.0, 50.0 - 1e-9, -50.0]), 1))        # near-tie with large logits
    out.append((np.array([-50.3, 49.7, 0.2]), 0))                # badly wrong, |z| ~ 50
    return out


@pytest.mark.parametrize("name, value", [("ce", None), ("ls", 0.1), ("ls", 0.9), ("mse", 15.0)]
                         + [("fl", g) for g in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)])
def test_values_and_gradients_to_a_few_ulps(name, value):
    # The exponent amplifies relative errors by up to gamma: the bound scales with it.
    bound = 8.0 * max(1.0, value if name == "fl" else 1.0)
    for z, y in samples():
        true_loss, true_grad = reference(name, z, y, value)
        loss, grad = ours(name, z, y, value)
        if abs(float(true_loss)) >= TINY:
            assert ulps(loss, true_loss) <= bound, (name, value, z, y, loss, float(true_loss))
        for j, g in enumerate(grad):
            # Gradient entries are checked where they are normal numbers; an entry far below the
            # largest one is compared with an absolute tolerance at the largest one's scale.
            scale = max(abs(float(t)) for t in true_grad)
            if abs(float(true_grad[j])) >= TINY:
                err = abs(g - float(true_grad[j]))
                # A gradient entry that is itself a difference of two terms (p_j - alpha/K for LS,
                # z_j - M e_y for MSE) can be no more exact than those terms: the bound is taken
                # relative to their size, which is the true value's wherever nothing cancels.
                terms = float(terms_of(name, value, z, y, j))
                assert err <= bound * EPS * max(abs(float(true_grad[j])), terms, 1e-12 * scale) + TINY, \
                    (name, value, z, y, j, g, float(true_grad[j]))


def test_confident_cross_entropy_is_not_zero():
    z = np.array([40.0, 0.3, -1.2, 2.5])
    loss, _ = ours("ce", z, 0, None)
    true, _ = reference("ce", z, 0, None)
    assert loss > 0 and ulps(loss, true) <= 4


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 64), (torch.float64, 64)])
def test_focal_gradient_of_misclassified_large_logits(dtype, tol):
    """Badly misclassified samples with |z| ~ 50: the gradient holds its digits in float32 too."""
    z = np.array([[-50.3, 49.7, 0.2, 10.0], [-48.0, 51.0, -3.0, 47.5]])
    t = torch.tensor(z, dtype=dtype, requires_grad=True)
    get_loss("fl", gamma=3.0, reduction="sum")(t, torch.tensor([0, 0])).backward()
    eps = torch.finfo(dtype).eps
    for i in range(2):
        # The reference at the inputs as this dtype holds them.
        zi = t.detach()[i].double().numpy()
        _, true = reference("fl", zi, 0, 3.0)
        for j in range(4):
            assert abs(float(t.grad[i, j]) - float(true[j])) <= tol * eps * abs(float(true[j])) + 1e-30


def test_every_loss_is_finite_at_extreme_logits_in_float32():
    # Logits far beyond any network's (|z| = 1e30), whose losses and gradients are still
    # representable in float32.
    z = torch.tensor([[1e30, 0.0, -1e30], [-1e30, 1e30, 0.0]], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([0, 0])
    for name, params in (("ce", {}), ("ls", {"alpha": 0.1}), ("fl", {"gamma": 3.0})):
        z.grad = None
        loss = get_loss(name, reduction="none", **params)(z, y)
        loss.sum().backward()
        assert torch.isfinite(z.grad).all(), name
        if name != "ls":  # label smoothing charges a confident sample alpha/K of its wrong logits
            assert float(loss[0].detach()) < 1e-30
    assert math.isfinite(float(get_loss("ce", reduction="none")(z.detach(), y)[1]))
