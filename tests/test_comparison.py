import numpy as np
import pytest
from scipy.stats import t as student_t

from ncrepro.comparison import (
    AS_CLOSE,
    CLOSER,
    EQUIVALENCE_FACTOR,
    FURTHER_APART,
    NOT_SHOWN_CLOSE,
    NOT_YET_COMPARABLE,
    NetworkPair,
    compare_by_width,
    compare_fitted_losses,
    compare_with_seeds,
    etf_distance,
    geometry_distance,
    is_judged,
    joint_reading,
    network_pairs,
    no_comparison_reason,
    pair_matrix,
    prediction_agreement,
    seed_comparison_text,
    unrelated_disagreement,
)
from ncrepro.metrics import simplex_etf


def _net(loss, seed, means, predictions, width=0.125):
    return {"run": f"{loss}-s{seed}", "config": {"arch": "resnet18", "width": width, "epochs": 10, "loss": loss,
                                                 "seed": seed},
            "analysis": {"geometry": {"means": np.asarray(means).tolist()}, "test_predictions": list(predictions)}}


def test_measures_on_known_configurations():
    etf = simplex_etf(4)
    G = etf @ etf.T
    rotated = 3.0 * G  # the same shape at another scale
    a, b = _net("ce", 0, G, [0, 1, 2, 3]), _net("ls", 0, rotated, [0, 1, 2, 0])
    assert geometry_distance(a, b) == pytest.approx(0.0, abs=1e-7)
    assert etf_distance(a) == pytest.approx(0.0, abs=1e-7)
    squashed = np.diag([1.0, 1.0, 1.0, 0.0])
    assert geometry_distance(a, _net("fl", 0, squashed, [0] * 4)) > 0.1
    assert prediction_agreement(a, b) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="same images"):
        prediction_agreement(a, _net("mse", 0, G, [0, 1]))
    with pytest.raises(ValueError, match="test_predictions"):
        prediction_agreement(a, {"run": "old", "analysis": {"geometry": {"means": G.tolist()}}})


def test_pairs_are_between_losses_at_one_seed_or_between_seeds_of_one_loss():
    rng = np.random.default_rng(0)
    nets = [_net(loss, seed, np.eye(3), rng.integers(0, 3, 50)) for loss in ("ce", "mse") for seed in (0, 1, 2)]
    nets.append(_net("ce", 0, np.eye(3), rng.integers(0, 3, 50), width=0.25))  # another setting: no pairs
    pairs = network_pairs(nets, "agreement")
    kinds = sorted((p.kind, p.loss_a, p.loss_b, p.seed_a, p.seed_b) for p in pairs)
    assert [k for k in kinds if k[0] == "losses"] == [("losses", "ce", "mse", s, s) for s in (0, 1, 2)]
    assert len([k for k in kinds if k[0] == "seeds"]) == 6  # three pairs per loss
    with pytest.raises(ValueError, match="unknown measure"):
        network_pairs(nets, "cka")


def test_seed_yardstick_decides_the_verdict():
    base = np.arange(200) % 4
    def flip(n, offset):  # a copy of base with n predictions changed
        p = base.copy()
        p[offset:offset + n] = (p[offset:offset + n] + 1) % 4
        return p
    # Losses disagree on about 30% of images, seeds of one loss on 5%: further apart than seeds.
    nets = [_net("ce", s, np.eye(4), flip(10, 10 * s)) for s in range(3)]
    nets += [_net("mse", s, np.eye(4), flip(60, 100 + 10 * s)) for s in range(3)]
    cmp = compare_with_seeds(network_pairs(nets, "agreement"), "agreement")
    assert cmp.verdict == "further apart than seeds"
    assert cmp.between_seeds.mean > cmp.between_losses.mean
    # Losses that disagree as much as seeds do: as close as seeds.
    alike = [_net(loss, s, np.eye(4), flip(10, 10 * s + (100 if loss == "mse" else 0)))
             for loss in ("ce", "mse") for s in range(3)]
    assert compare_with_seeds(network_pairs(alike, "agreement"), "agreement").verdict == "as close as seeds"
    matrix = pair_matrix(network_pairs(nets, "agreement"))
    assert matrix[("ce", "mse")] == matrix[("mse", "ce")] and matrix[("ce", "mse")].n == 3
    assert matrix[("ce", "ce")].mean == pytest.approx(0.9) and matrix[("ce", "ce")].n == 3
    # One seed: no yardstick.
    assert compare_with_seeds(network_pairs(nets[:1] + nets[3:4], "agreement"), "agreement") is None
    # Two seeds of one loss: one between-seed pair, a mean without a noise level. It is not read
    # as a difference in either direction, however far apart the losses are.
    one_pair = compare_with_seeds(network_pairs(nets[:2] + nets[3:4], "agreement"), "agreement")
    assert one_pair.verdict == NOT_YET_COMPARABLE and not one_pair.difference.measured
    assert one_pair.difference.text(".1f", scale=100).endswith("noise not measured")


def test_few_pairs_are_judged_on_their_degrees_of_freedom():
    """Two between-seed pairs give their mean 1 degree of freedom: a gap of about 4 standard
    errors, a trend by the old fixed rule of 2, stays within noise (Welch's t needs about 10)."""
    setting = ("resnet18", 0.125, 100)
    pairs = [NetworkPair("seeds", setting, loss, loss, 0, 1, v) for loss, v in (("ce", 0.90), ("ls", 0.92))]
    pairs += [NetworkPair("losses", setting, "ce", "ls", s, s, v) for s, v in enumerate((0.86, 0.87, 0.86, 0.87))]
    cmp = compare_with_seeds(pairs, "agreement")
    d = cmp.difference
    assert d.delta == pytest.approx(-0.045) and 4 < abs(d.delta) / d.se < 5 and 1 < d.dof < 1.5
    # No trend, but no closeness either: with one degree of freedom the data cannot rule out that
    # the losses disagree 1.25 times as much as seeds do (0.135 against 1.25 x 0.09).
    assert cmp.verdict == NOT_SHOWN_CLOSE
    assert cmp.margin.delta == pytest.approx(0.135 - 1.25 * 0.09) and cmp.bound() > 0
    assert compare_with_seeds(pairs, "agreement", level=0.5).verdict == "further apart than seeds"


def test_as_close_as_seeds_is_shown_by_a_one_sided_test_against_a_margin():
    setting = ("resnet18", 0.125, 100)
    k = EQUIVALENCE_FACTOR
    seeds = [NetworkPair("seeds", setting, loss, loss, 0, 1, v)
             for loss, v in (("ce", 0.10), ("ls", 0.11), ("fl", 0.09), ("mse", 0.10))]
    names = ("ce", "ls", "fl", "mse")

    def between_losses(values):  # every pair of losses at each seed, one value per seed
        return [NetworkPair("losses", setting, a, b, s, s, v) for s, v in enumerate(values)
                for i, a in enumerate(names) for b in names[i + 1:]]

    apart = between_losses((0.12, 0.11, 0.13))
    cmp = compare_with_seeds(seeds + apart, "geometry")
    # margin = d_losses - k d_seeds, its variance se_l^2 + k^2 se_s^2, Welch on 2 and 3 dof.
    se_l, se_s = np.std([0.12, 0.11, 0.13], ddof=1) / np.sqrt(3), np.std([0.10, 0.11, 0.09, 0.10], ddof=1) / 2
    se = np.hypot(se_l, k * se_s)
    dof = se ** 4 / (se_l ** 4 / 2 + (k * se_s) ** 4 / 3)
    assert cmp.margin.delta == pytest.approx(0.12 - k * 0.10) and cmp.margin.se == pytest.approx(se)
    assert cmp.margin.dof == pytest.approx(dof)
    assert cmp.bound() == pytest.approx(0.12 - k * 0.10 + student_t.ppf(0.95, dof) * se)
    assert cmp.difference.is_trend() and cmp.verdict == "further apart than seeds"  # 0.12 against 0.10, tight
    # Losses as far apart as seeds, measured tightly enough: no trend, and the margin cleared.
    alike = between_losses((0.100, 0.098, 0.102))
    cmp = compare_with_seeds(seeds + alike, "geometry")
    assert not cmp.difference.is_trend() and cmp.bound() < 0 and cmp.verdict == "as close as seeds"
    assert cmp.margin_text().startswith(f"distance between losses minus {k:g} times that between seeds: −0.025 ± "
                                        "0.005, upper 95% bound −0.013")
    assert cmp.margin_text().endswith("below 0: shown")
    # The same with noisier seeds: still no trend, but the margin no longer cleared.
    noisy = [NetworkPair("seeds", setting, loss, loss, 0, 1, v)
             for loss, v in (("ce", 0.06), ("ls", 0.14), ("fl", 0.08), ("mse", 0.12))]
    cmp = compare_with_seeds(noisy + alike, "geometry")
    assert not cmp.difference.is_trend() and cmp.bound() > 0 and cmp.verdict == NOT_SHOWN_CLOSE
    assert cmp.margin_text().endswith("not below 0: not shown")
    # Agreement counts disagreement, one minus it.
    agree = compare_with_seeds([NetworkPair(p.kind, p.setting, p.loss_a, p.loss_b, p.seed_a, p.seed_b, 1 - p.value)
                                for p in seeds + alike], "agreement")
    assert agree.margin.delta == pytest.approx(0.100 - k * 0.10) and agree.verdict == "as close as seeds"
    assert agree.margin_text(".1f", scale=100, unit=" points").startswith(
        f"disagreement between losses minus {k:g} times that between seeds: −2.5 ± 0.5 points")


def test_pairs_that_share_networks_are_averaged_into_independent_units():
    """Between losses, one unit per seed at which every loss has a network (the mean of its pairs);
    between seeds, one unit per loss (the mean of that loss's pairs of seeds)."""
    setting = ("resnet18", 0.125, 100)
    losses = [("ce", "ls", 0.1), ("ce", "mse", 0.3), ("ls", "mse", 0.2)]
    pairs = [NetworkPair("losses", setting, a, b, 0, 0, v) for a, b, v in losses]
    pairs += [NetworkPair("losses", setting, "ce", "ls", 1, 1, 0.12)]  # seed 1 has no MSE network: left out
    pairs += [NetworkPair("losses", setting, a, b, 2, 2, v + (0.06 if b == "mse" and a == "ls" else 0.0))
              for a, b, v in losses]
    pairs += [NetworkPair("seeds", setting, "ce", "ce", a, b, v)
              for a, b, v in ((0, 1, 0.05), (0, 2, 0.07), (1, 2, 0.06))]
    pairs += [NetworkPair("seeds", setting, "ls", "ls", 0, 1, 0.04)]
    cmp = compare_with_seeds(pairs, "geometry")
    assert cmp.between_losses.n == 2 and cmp.between_losses.mean == pytest.approx((0.2 + 0.22) / 2)
    assert cmp.between_seeds.n == 2 and cmp.between_seeds.mean == pytest.approx((0.06 + 0.04) / 2)
    assert cmp.difference.dof == pytest.approx(2.0)  # two units of equal spread on each side: Welch gives 2
    # Only one seed with every loss: no noise level on that side yet, whatever the number of pairs.
    one = compare_with_seeds([p for p in pairs if p.seed_a != 2 or p.kind == "seeds"], "geometry")
    assert one.between_losses.n == 1 and one.verdict == NOT_YET_COMPARABLE


def test_unrelated_disagreement_matches_networks_with_independent_errors():
    rng = np.random.default_rng(0)
    n, k, acc = 200_000, 10, 0.77
    labels = rng.integers(0, k, n)

    def network():  # right with probability acc, else a uniformly drawn other class
        wrong = (labels + rng.integers(1, k, n)) % k
        return np.where(rng.random(n) < acc, labels, wrong)

    observed = np.mean(network() != network())
    assert observed == pytest.approx(unrelated_disagreement(acc, k), abs=0.005)
    with pytest.raises(ValueError, match="fraction"):
        unrelated_disagreement(1.2, 10)
    with pytest.raises(ValueError, match="at least 2"):
        unrelated_disagreement(0.5, 1)


def test_why_there_is_no_comparison_with_seeds():
    """Each state in which compare_with_seeds has nothing to say gets its own reason: no second
    seed, no second loss, or no seed with every loss (the units would average different pairs)."""
    setting = ("resnet18", 0.125, 100)
    seeds = [NetworkPair("seeds", setting, "ce", "ce", 0, 1, 0.9)]
    ce_ls = [NetworkPair("losses", setting, "ce", "ls", 0, 0, 0.8)]
    assert no_comparison_reason(ce_ls) == "there are not yet two seeds of one loss to compare with"
    assert no_comparison_reason(seeds) == "there are not yet networks of two losses at one seed to compare"
    # CE-LS at seed 0 and LS-FL at seed 1: three losses, but no seed has all of them.
    patchy = seeds + ce_ls + [NetworkPair("losses", setting, "ls", "fl", 1, 1, 0.7)]
    assert compare_with_seeds(patchy, "agreement") is None
    assert no_comparison_reason(patchy).startswith("no seed has a network of every loss yet")


def test_a_comparison_with_seeds_reads_as_one_sentence():
    """Agreement in percent with both tests once the noise is measured; geometry as a distance;
    a single unit on a side: the verdict and 'noise not measured', no test; nothing to compare:
    the reason instead of a verdict."""
    setting = ("resnet18", 0.125, 100)
    pairs = [NetworkPair("seeds", setting, loss, loss, 0, 1, v) for loss, v in (("ce", 0.90), ("ls", 0.92))]
    pairs += [NetworkPair("losses", setting, "ce", "ls", s, s, v) for s, v in enumerate((0.86, 0.87, 0.86, 0.87))]
    text = seed_comparison_text(pairs, "agreement")
    assert text == compare_with_seeds(pairs, "agreement").text()
    assert text.startswith("networks of different losses agree on 86.5% of the test images (over 4 seeds with every "
                           "loss) and networks of one loss from different seeds on 91.0% (over 2 losses with several "
                           f"seeds): the losses are {NOT_SHOWN_CLOSE} (difference −4.5 ± ")
    assert "; a trend needs more than " in text
    assert " degrees of freedom; disagreement between losses minus 1.25 times" in text
    assert text.endswith("not below 0: not shown)")
    geometry = [NetworkPair(p.kind, p.setting, p.loss_a, p.loss_b, p.seed_a, p.seed_b, 1 - p.value) for p in pairs]
    assert seed_comparison_text(geometry, "geometry").startswith(
        f"networks of different losses are {NOT_SHOWN_CLOSE} (mean distance 0.135 between losses, over 4 seeds "
        "with every loss, against 0.090 between seeds, over 2 losses with several seeds; difference +0.045 ± ")
    one_unit = seed_comparison_text(geometry[:1] + geometry[2:], "geometry")
    assert one_unit.startswith(f"networks of different losses are {NOT_YET_COMPARABLE} (")
    assert one_unit.endswith("noise not measured)") and "a trend needs" not in one_unit
    assert seed_comparison_text(pairs[2:], "agreement") == no_comparison_reason(pairs[2:])
    # A measure there is not: a ValueError naming the ones there are, with or without pairs.
    for given in (pairs, []):
        with pytest.raises(ValueError, match="unknown measure 'cka'; choose one of"):
            seed_comparison_text(given, "cka")


def test_the_two_measures_read_together():
    # Only both measures at least as close as seeds make the same features.
    assert joint_reading({"geometry": AS_CLOSE, "agreement": CLOSER}).endswith("the same features by both tests")
    # One measure further apart refutes it, whichever it is, and the sentence says which.
    decisions = joint_reading({"geometry": FURTHER_APART, "agreement": AS_CLOSE})
    assert decisions.startswith("the losses make the same test predictions as often as seeds")
    assert decisions.endswith("the same decisions, not the same features")
    geometry = joint_reading({"geometry": AS_CLOSE, "agreement": FURTHER_APART})
    assert geometry.endswith("the same geometry, not the same decisions")
    both = joint_reading({"geometry": FURTHER_APART, "agreement": FURTHER_APART})
    assert both.endswith(": not the same features")
    assert joint_reading({"geometry": FURTHER_APART, "agreement": NOT_SHOWN_CLOSE}) == (
        f"the losses are {FURTHER_APART} in their class-mean geometry and {NOT_SHOWN_CLOSE} in their test "
        "predictions: not the same features")
    # Closeness in one measure with the other open is not yet the same features.
    waiting = joint_reading({"geometry": AS_CLOSE, "agreement": NOT_YET_COMPARABLE})
    assert waiting == (f"the losses are {AS_CLOSE} in their class-mean geometry and not yet judged in their test "
                       "predictions: whether the features are the same waits for more seeds")
    assert joint_reading({"geometry": None}) == joint_reading({}) == (
        "neither test is judged yet: each needs two seeds with every loss")
    with pytest.raises(ValueError, match="unknown measure 'accuracy'"):
        joint_reading({"accuracy": AS_CLOSE})


def test_each_width_is_compared_with_its_own_seeds():
    """A width with seeds of every loss is judged; another width with one seed only has no
    yardstick of its own and says so, instead of borrowing the first width's seeds."""
    base = np.arange(200) % 4

    def flip(n, offset):
        p = base.copy()
        p[offset:offset + n] = (p[offset:offset + n] + 1) % 4
        return p

    nets = [_net("ce", s, np.eye(4), flip(10, 10 * s)) for s in range(3)]
    nets += [_net("mse", s, np.eye(4), flip(60, 100 + 10 * s)) for s in range(3)]
    wide = [_net(loss, 0, np.eye(4), flip(5, 0), width=0.25) for loss in ("ce", "mse")]
    by_width = compare_by_width(nets + wide)
    assert list(by_width) == [0.125, 0.25]
    assert by_width[0.125].verdicts["agreement"] == "further apart than seeds"
    assert by_width[0.125].found["agreement"] == compare_with_seeds(network_pairs(nets, "agreement"), "agreement")
    assert by_width[0.25].verdicts == {"geometry": None, "agreement": None}
    assert by_width[0.25].text() == "There are not yet two seeds of one loss to compare with."
    assert is_judged(by_width[0.125].verdicts) and not is_judged(by_width[0.25].verdicts)
    assert compare_by_width([]) == {}


def test_a_verdict_is_checked_without_the_loss_that_does_not_fit():
    """At a width where one loss's networks miss the terminal phase, the comparison is repeated on
    the losses that fit: here CE and LS agree like seeds once MSE, which disagrees with both, is
    left out."""
    base = np.arange(200) % 4

    def flip(n, offset):
        p = base.copy()
        p[offset:offset + n] = (p[offset:offset + n] + 1) % 4
        return p

    def fit(net, fitted):
        return {**net, "epochs": [{"epoch": 1, "clean_train_acc": 1.0 if fitted else 0.99}]}

    nets = [fit(_net(loss, s, np.eye(4), flip(10, 10 * s + (100 if loss == "ls" else 0))), True)
            for loss in ("ce", "ls") for s in range(3)]
    nets += [fit(_net("mse", s, np.eye(4), flip(80, 20 + 5 * s)), False) for s in range(3)]
    labels = {"ce": "CE", "ls": "LS", "mse": "MSE"}
    text = compare_fitted_losses(nets, labels)
    assert text.startswith("At width 1/8, MSE does not fit the training set; among the losses that do (CE and LS) "
                           "alone: in geometry, ")
    assert "in predictions, as close as seeds (" in text
    assert compare_with_seeds(network_pairs(nets, "agreement"), "agreement").verdict == "further apart than seeds"
    assert compare_fitted_losses([n for n in nets if n["config"]["loss"] != "mse"], labels) == ""
