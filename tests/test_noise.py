import math

import pytest

from ncrepro.noise import (
    NOISE_NOT_MEASURED,
    TREND_Z,
    Difference,
    Estimate,
    accuracy_estimate,
    difference,
    log_estimate,
    ordering,
    ordering_text,
    pooled_seed_dof,
    pooled_seed_sd,
    seed_sd,
    seed_sd_interval,
    spread,
)


def test_the_one_seed_noise_rule_from_the_expert_read():
    """The worked numbers of the second expert read: a change of spread with one seed on 10,000
    test images at about 75% accuracy has a standard error of about 0.87 points, so the rule
    calls changes up to about 1.7 points noise (the book once used 1.2)."""
    e = accuracy_estimate([0.75], 10_000)
    change = difference(spread({"a": e, "b": e}), spread({"a": e, "b": e}))
    assert change.se == pytest.approx(2 * math.sqrt(0.75 * 0.25 / 10_000))
    assert 100 * TREND_Z * change.se == pytest.approx(1.73, abs=0.01)


def test_accuracy_estimate_adds_seed_and_test_noise():
    e = accuracy_estimate([0.80, 0.82, 0.78], 10_000)
    assert e.mean == pytest.approx(0.80) and e.n == 3 and e.sd == pytest.approx(0.02)
    assert e.se == pytest.approx(math.sqrt(0.02 ** 2 / 3 + 0.8 * 0.2 / 10_000))
    one = accuracy_estimate([0.8], 10_000)
    assert one.sd is None and one.se == pytest.approx(0.004)
    borrowed = accuracy_estimate([0.8], 10_000, assumed_seed_sd=0.02)
    assert borrowed.se == pytest.approx(math.sqrt(0.02 ** 2 + 0.0016 / 100))
    for bad in ([], [1.2], [0.5, float("nan")]):
        with pytest.raises(ValueError):
            accuracy_estimate(bad, 10_000)
    with pytest.raises(ValueError, match="test_images"):
        accuracy_estimate([0.5], 0)


def test_seed_sd_and_pooling():
    assert seed_sd([1.0]) is None and seed_sd([1.0, 3.0]) == pytest.approx(math.sqrt(2))
    # Pooled over (1, 3) and (2, 4, 6): (1*2 + 2*4) / 3 = 10/3.
    assert pooled_seed_sd([[1.0, 3.0], [2.0, 4.0, 6.0], [7.0]]) == pytest.approx(math.sqrt(10 / 3))
    assert pooled_seed_sd([[1.0], [2.0]]) is None


def test_log_estimate_and_differences_of_orderings():
    a = log_estimate([0.1, 0.1, 0.1])
    b = log_estimate([1.0, 1.2, 0.8])
    assert a.mean == pytest.approx(-1.0) and a.se == 0.0
    d = difference(a, b)
    assert d.delta == pytest.approx(b.mean + 1.0) and d.is_trend() and d.direction() == "grows"
    close = difference(log_estimate([1.0, 1.3]), log_estimate([1.1, 1.2]))
    assert not close.is_trend() and close.direction() == "within noise"
    with pytest.raises(ValueError, match="positive"):
        log_estimate([0.0])


def test_difference_accepts_estimates_spreads_and_differences():
    e1, e2 = Estimate(0.5, 0.03, 3), Estimate(0.6, 0.04, 3)
    d = difference(e1, e2)
    assert d.delta == pytest.approx(0.1) and d.se == pytest.approx(0.05)
    assert difference(d, d).delta == 0.0 and difference(d, d).se == pytest.approx(0.05 * math.sqrt(2))
    with pytest.raises(ValueError, match="two losses"):
        spread({"ce": e1})


def test_ordering_marks_steps_beyond_noise():
    est = {"ce": Estimate(0.0, 0.1, 3), "ls": Estimate(0.1, 0.1, 3), "mse": Estimate(-2.0, 0.1, 3),
           "fl": Estimate(1.0, 0.1, 3)}
    assert [(a, b) for a, b, _ in ordering(est)] == [("mse", "ce"), ("ce", "ls"), ("ls", "fl")]
    assert ordering_text(est, {"ce": "CE", "ls": "LS", "mse": "MSE", "fl": "FL"}) == "MSE < CE ≈ LS < FL"
    assert ordering_text({"ce": Estimate(0.0, 0.1, 1)}) == "ce"


def test_one_seed_with_nothing_to_borrow_makes_no_trend():
    # The expert's complaint in reverse: one seed per loss and no seed spread anywhere used to give
    # a standard error of 0, so NC1 0.23 against 0.51 read as an ordering "beyond noise".
    ce, fl, mse = log_estimate([0.226]), log_estimate([0.51]), log_estimate([0.0069])
    assert not ce.measured and math.isnan(ce.se)
    d = difference(ce, fl)
    assert not d.measured and not d.is_trend() and d.direction() == NOISE_NOT_MEASURED
    labels = {"ce": "CE", "fl": "FL", "mse": "MSE"}
    assert ordering_text({"ce": ce, "fl": fl, "mse": mse}, labels) == "MSE, CE, FL from lowest (noise not measured)"
    # Borrowing a measured seed spread makes the same values judgeable again.
    borrowed = {k: log_estimate([v], assumed_seed_sd=0.05) for k, v in (("ce", 0.226), ("fl", 0.51), ("mse", 0.0069))}
    assert ordering_text(borrowed, labels) == "MSE < CE < FL"
    assert Difference(0.02, 0.005).text(".1f", scale=100, unit=" points") == "+2.0 ± 0.5 points"


def test_the_interval_of_a_seed_sd_follows_the_chi_square_and_narrows_with_freedom():
    from scipy.stats import chi2

    low, high = seed_sd_interval(2.0, 4)
    assert low == pytest.approx(2.0 * math.sqrt(4 / chi2.ppf(0.975, 4)))
    assert high == pytest.approx(2.0 * math.sqrt(4 / chi2.ppf(0.025, 4)))
    widths = [seed_sd_interval(1.0, d)[1] - seed_sd_interval(1.0, d)[0] for d in (1, 2, 8, 30)]
    assert widths == sorted(widths, reverse=True) and widths[-1] < 1.0
    assert seed_sd_interval(1.0, 3, level=0.5)[1] < seed_sd_interval(1.0, 3)[1]
    assert pooled_seed_dof([[1.0, 3.0], [2.0, 4.0, 6.0], [7.0]]) == 3 and pooled_seed_dof([[1.0]]) == 0
    bad_inputs = ({"sd": 1.0, "dof": 0}, {"sd": 1.0, "dof": 1.5}, {"sd": -1.0, "dof": 2},
                  {"sd": 1.0, "dof": 2, "level": 1.0})
    for bad in bad_inputs:
        with pytest.raises(ValueError):
            seed_sd_interval(**bad)
