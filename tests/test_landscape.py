import pytest

from ncrepro import landscape

KW = dict(K=3, n=2, d=4, lambda_W=5e-3, lambda_H=5e-3)


@pytest.mark.parametrize("loss, params", [("ls", {"alpha": 0.2}), ("fl", {"gamma": 2.0})])
def test_saddles_and_minimum(loss, params):
    origin = landscape.analyse_point(loss, landscape.origin_point(loss, K=3, n=2, d=4, **params), **KW, **params)
    tied = landscape.analyse_point(loss, landscape.tied_critical_point(loss, **KW, tie=(1, 2), **params), **KW, **params)
    best = landscape.analyse_point(loss, landscape.optimum_point(loss, **KW, **params), **KW, **params)
    for point in (origin, tied):
        assert point["gradient_norm"] < 1e-8 and point["min_eigenvalue"] < -1e-3
        assert point["objective"] > best["objective"]
    assert best["negative"] == 0
    assert best["near_zero"] == landscape.expected_null_dimension(loss, 3, 4, 0.0) == 6


def test_expected_null_dimension():
    assert landscape.expected_null_dimension("ce", 4, 3, 0.0) == 3 + 1      # d = K-1: all of O(3), plus the bias
    assert landscape.expected_null_dimension("mse", 4, 5, 0.0) == 10 - 1
    assert landscape.expected_null_dimension("ls", 4, 5, 1e-3) == 9


def test_bad_tie():
    with pytest.raises(ValueError, match="tie"):
        landscape.tied_critical_point("ce", **KW, tie=(0, 0))
