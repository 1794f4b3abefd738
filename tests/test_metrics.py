import numpy as np
import pytest
import torch

from ncrepro.metrics import NCMetricsAccumulator, nc_metrics, simplex_etf_distance, textbook_nc_metrics


def textbook_nc(H, labels, W, b):
    """The straightforward computation: d x d covariances, pseudo-inverse, float64."""
    return textbook_nc_metrics(H, labels, W, b)


def random_problem(rng, N=300, d=20, K=5, spread=1.0):
    labels = np.arange(N) % K
    centres = rng.normal(size=(K, d)) * 3
    H = centres[labels] + spread * rng.normal(size=(N, d))
    W = rng.normal(size=(K, d))
    b = rng.normal(size=K)
    return H, labels, W, b


def test_matches_textbook(rng):
    H, labels, W, b = random_problem(rng)
    ours = nc_metrics(H, labels, W, b)
    ref = textbook_nc(H, labels, W, b)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key


def test_matches_textbook_unbalanced_and_d_below_K(rng):
    labels = np.array([0] * 50 + [1] * 7 + [2] * 20 + [3] * 3)
    H = rng.normal(size=(len(labels), 2)) + labels[:, None]
    W, b = rng.normal(size=(4, 2)), rng.normal(size=4)
    ours, ref = nc_metrics(H, labels, W, b), textbook_nc(H, labels, W, b)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], rel=1e-9), key


def simplex_etf(K, d, rng, scale=2.0):
    Q, _ = np.linalg.qr(rng.normal(size=(d, K)))
    return scale * np.sqrt(K / (K - 1)) * (np.eye(K) - 1 / K) @ Q.T  # (K, d), rows an ETF


def test_perfect_collapse_is_zero(rng):
    K, d, n = 4, 6, 10
    W = simplex_etf(K, d, rng)
    labels = np.repeat(np.arange(K), n)
    H = 0.7 * W[labels]  # features equal to a multiple of their classifier row: NC1-NC3 all zero
    m = nc_metrics(H, labels, W, np.zeros(K))
    assert m["nc1"] < 1e-25
    assert m["nc2"] < 1e-12 and m["nc3"] < 1e-12
    assert m["nc4"] == 0.0 and m["bias_gap"] < 1e-12


def test_nc1_closed_form(rng):
    # Two classes at +-e1, within-class noise only along e1 with variance s2: NC1 = s2 / 1 / K ...
    # Sigma_B = e1 e1^T (means +-1, K=2), Sigma_W = s2 e1 e1^T (+ 0 elsewhere), so NC1 = s2 / 2.
    n, s = 1000, 0.3
    noise = np.tile([-s, s], n // 2)
    H = np.zeros((2 * n, 3))
    labels = np.repeat([0, 1], n)
    H[:, 0] = np.where(labels == 0, -1.0, 1.0) + np.concatenate([noise, noise])
    m = nc_metrics(H, labels, np.eye(3)[:2])
    assert m["nc1"] == pytest.approx(s ** 2 / 2, rel=1e-12)


def test_nc2_of_identity_classifier():
    # Centred identity rows are exactly a simplex ETF.
    assert simplex_etf_distance(torch.eye(5) - 0.2) == pytest.approx(0.0, abs=1e-12)
    assert nc_metrics(np.eye(5), np.arange(5), np.eye(5))["nc2"] == pytest.approx(0.0, abs=1e-12)


def test_accepts_torch_and_float32(rng):
    H, labels, W, b = random_problem(rng)
    a = nc_metrics(H, labels, W, b)
    t = nc_metrics(torch.tensor(H, dtype=torch.float32), torch.tensor(labels), torch.tensor(W, dtype=torch.float32),
                   torch.tensor(b, dtype=torch.float32))
    for key in a:
        assert t[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6)


def test_streaming_equals_batch(rng):
    H, labels, W, b = random_problem(rng, N=1000)
    acc = NCMetricsAccumulator(W, b)
    for start in range(0, 1000, 128):
        acc.update(H[start:start + 128], labels[start:start + 128])
    assert acc.num_samples == 1000
    assert acc.compute() == nc_metrics(H, labels, W, b)


def test_no_bias_means_no_bias_gap(rng):
    H, labels, W, _ = random_problem(rng)
    assert "bias_gap" not in nc_metrics(H, labels, W)


def test_bad_inputs(rng):
    H, labels, W, b = random_problem(rng, K=5)
    with pytest.raises(ValueError, match="class 3 has no sample"):
        nc_metrics(H[labels != 3], labels[labels != 3], W, b)
    Hn = H.copy()
    Hn[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nc_metrics(Hn, labels, W, b)
    bad = labels.copy()
    bad[0] = 5
    with pytest.raises(ValueError, match="outside"):
        nc_metrics(H, bad, W, b)
    with pytest.raises(ValueError, match="feature dimension"):
        nc_metrics(H[:, :-1], labels, W, b)
    with pytest.raises(ValueError, match="labels must have shape"):
        nc_metrics(H, labels[:-1], W, b)
    with pytest.raises(ValueError, match="b must have shape"):
        nc_metrics(H, labels, W, b[:-1])
    with pytest.raises(ValueError, match="integer"):
        nc_metrics(H, labels.astype(float), W, b)
    with pytest.raises(ValueError, match="NumPy array or a torch tensor"):
        nc_metrics(H.tolist(), labels, W, b)
    with pytest.raises(ValueError, match="no features"):
        NCMetricsAccumulator(W, b).compute()


@pytest.mark.parametrize("spread", [1e-5, 1e-3, 1e-1])
def test_float32_features_agree_with_float64_even_nearly_collapsed(spread):
    """Within-class spread of 1e-5 of the feature size, 1,000 samples per class: float32 class
    sums once inflated NC1 tenfold; the metrics now agree with float64 to 1e-4 relative."""
    rng = np.random.default_rng(1)
    K, n, d = 10, 1000, 64
    means = rng.normal(size=(K, d)) * 10 + 50
    labels = np.repeat(np.arange(K), n)
    H = (means[labels] + spread * 10 * rng.normal(size=(K * n, d))).astype(np.float32)
    W, b = rng.normal(size=(K, d)), rng.normal(size=K)
    m32 = nc_metrics(torch.from_numpy(H), labels, W, b)
    m64 = nc_metrics(torch.from_numpy(H.astype(np.float64)), labels, W, b)
    for key in m64:
        assert m32[key] == pytest.approx(m64[key], rel=1e-4, abs=1e-12), key


def test_first_below_and_simplex_etf():
    from ncrepro.metrics import first_below, simplex_etf

    assert first_below([0, 10, 20], [1.0, 0.5, 0.01], 0.1) == 20
    assert first_below([0, 10], [1.0, 0.5], 0.1) is None
    with pytest.raises(ValueError, match="steps for"):
        first_below([0], [1.0, 2.0], 0.5)
    for K, d in ((4, 3), (4, 4), (5, 8)):
        E = simplex_etf(K, d)
        G = E @ E.T
        assert E.shape == (K, d)
        np.testing.assert_allclose(np.diag(G), 1.0, atol=1e-12)
        np.testing.assert_allclose(G[~np.eye(K, dtype=bool)], -1 / (K - 1), atol=1e-12)
        assert simplex_etf_distance(torch.from_numpy(G)) < 1e-12


def test_basis_free_comparisons():
    from ncrepro.metrics import gram_cka, gram_procrustes_distance

    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 4))                       # 4 points in R^6
    Q, _ = np.linalg.qr(rng.normal(size=(9, 9)))
    B = 2.5 * Q[:, :6] @ A                            # the same shape, rotated into R^9 and scaled
    assert gram_procrustes_distance(A.T @ A, B.T @ B) < 1e-7
    assert gram_cka(A.T @ A, B.T @ B) == pytest.approx(1.0)
    C = rng.normal(size=(6, 4))
    # Against the direct orthogonal Procrustes on normalised configurations (same dimension).
    An, Cn = A / np.linalg.norm(A), C / np.linalg.norm(C)
    U, _, Vt = np.linalg.svd(Cn @ An.T)
    direct = np.linalg.norm(U @ Vt @ An - Cn)
    assert gram_procrustes_distance(A.T @ A, C.T @ C) == pytest.approx(direct, rel=1e-9)
    with pytest.raises(ValueError, match="zero"):
        gram_cka(np.zeros((3, 3)), np.eye(3))


def test_calibration_margins_and_probes():
    from ncrepro.metrics import (
        expected_calibration_error,
        linear_probe_accuracy,
        logit_margins,
        nearest_class_mean_accuracy,
    )

    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    margins = logit_margins(logits, labels)
    torch.testing.assert_close(margins, torch.tensor([[3.0, 3.0], [-1.0, 0.0]], dtype=torch.float64))
    # Perfect calibration: confidence equals accuracy in every bin.
    confident = torch.tensor([[10.0, -10.0]] * 4, dtype=torch.float64)
    assert expected_calibration_error(confident, torch.tensor([0, 0, 0, 0])) < 1e-8
    assert expected_calibration_error(confident, torch.tensor([1, 1, 1, 1])) == pytest.approx(1.0, abs=1e-8)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 4
    y = np.repeat(np.arange(3), 50)
    H = centres[y] + rng.normal(size=(150, 5))
    assert linear_probe_accuracy(H, y, H, y) > 0.95 and nearest_class_mean_accuracy(H, y, H, y) > 0.95
