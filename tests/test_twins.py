import math

import pytest
from scipy.stats import t as student_t

from ncrepro.noise import pooled_seed_noise
from ncrepro.twins import compare_twins, twin_pairs, twins_against_seeds


def _run(loss, seed, test_acc, nc1, precision="bf16", fit=(0.9, 1.0, 1.0), device="cpu"):
    epochs = [{"epoch": i + 1, "clean_train_acc": a, "nc1": nc1, "test_acc": test_acc} for i, a in enumerate(fit)]
    return {"run": f"{loss}-s{seed}-{precision}",
            "config": {"arch": "resnet18", "width": 0.125, "epochs": len(fit), "loss": loss, "seed": seed,
                       "precision": precision, "device": device, "compile": "default"},
            "summary": {"final_test_acc": test_acc},
            "provenance": {"dataset": {"train_size": 45_000, "test_size": 10_000}},
            "epochs": epochs}


REFERENCE = [_run("ce", 0, 0.775, 0.23), _run("ce", 1, 0.777, 0.22), _run("mse", 0, 0.774, 0.007),
             _run("mse", 1, 0.780, 0.008, fit=(0.9, 0.99, 0.997))]


def test_twins_pair_on_everything_but_the_setting_and_the_machine():
    twin = _run("mse", 0, 0.779, 0.006, precision="fp32", device="cuda")
    stranger = _run("fl", 0, 0.77, 0.5, precision="fp32")
    assert twin_pairs(REFERENCE, [twin, stranger], "precision") == [(REFERENCE[2], twin)]
    with pytest.raises(ValueError, match="same precision"):
        twin_pairs(REFERENCE, [_run("mse", 0, 0.77, 0.006)], "precision")
    with pytest.raises(ValueError, match="matches 2 reference runs"):
        twin_pairs(REFERENCE + [_run("ce", 0, 0.7, 0.2, precision="fp16")], [_run("ce", 0, 0.7, 0.2, "fp32")],
                   "precision")
    # A reference made before a setting existed lacks it in its config: it counts as the default
    # (the focal-loss run of cifar10-tpt with seed 0 has no "split"; its twin was missed once).
    legacy = {**REFERENCE[2], "config": {k: v for k, v in REFERENCE[2]["config"].items()}}
    twin = {**twin, "config": {**twin["config"], "split": "ncrepro"}}
    assert twin_pairs([legacy], [twin], "precision") == [(legacy, twin)]
    other_split = {**twin, "config": {**twin["config"], "split": "official"}}
    assert twin_pairs([legacy], [other_split], "precision") == []


def test_a_twin_difference_has_the_noise_of_two_seeds():
    twin = _run("mse", 0, 0.785, 0.004, precision="fp32")
    comparison = compare_twins(REFERENCE, [twin], "precision")
    (pair,) = comparison.twins
    assert pair.loss == "mse" and pair.onsets == (2, 2)
    noise = pooled_seed_noise([[0.775, 0.777], [0.774, 0.780]])
    binomial = 0.774 * 0.226 / 10_000 + 0.785 * 0.215 / 10_000
    assert pair.accuracy.delta == pytest.approx(0.011)
    assert pair.accuracy.se == pytest.approx(math.sqrt(2 * noise.sd ** 2 + binomial))
    # Welch-Satterthwaite: the seed part (2 sd^2, one estimate on 2 dof) against the known binomial.
    assert pair.accuracy.dof == pytest.approx(pair.accuracy.se ** 4 * noise.dof / (2 * noise.sd ** 2) ** 2)
    k = student_t.ppf(0.975, pair.accuracy.dof)
    assert pair.accuracy.threshold() == pytest.approx(k * pair.accuracy.se) and 0.011 < k * pair.accuracy.se
    log_noise = pooled_seed_noise([[math.log10(0.23), math.log10(0.22)], [math.log10(0.007), math.log10(0.008)]])
    assert pair.nc1.delta == pytest.approx(math.log10(0.004 / 0.007))
    assert pair.nc1.se == pytest.approx(math.sqrt(2) * log_noise.sd) and pair.nc1.dof == pytest.approx(2)
    # A factor of 1.75 in NC1 is beyond two seeds' noise; 1.1 points of accuracy are not.
    assert pair.nc1.is_trend() and not pair.accuracy.is_trend()


def test_the_mean_over_twins_is_one_test():
    twins = [_run("ce", 0, 0.780, 0.2, precision="fp32"), _run("mse", 0, 0.776, 0.007, precision="fp32")]
    comparison = compare_twins(REFERENCE, twins, "precision")
    a, b = (t.accuracy for t in comparison.twins)
    assert comparison.mean_accuracy.delta == pytest.approx((a.delta + b.delta) / 2)
    assert comparison.mean_accuracy.se == pytest.approx(math.hypot(a.se, b.se) / 2)
    # The seed parts, one estimate, count once: (2 sd^2 + 2 sd^2) / 4 on the pooled 2 dof.
    noise = pooled_seed_noise([[0.775, 0.777], [0.774, 0.780]])
    assert comparison.mean_accuracy.dof == pytest.approx(comparison.mean_accuracy.se ** 4 * 2 / noise.sd ** 4)


def test_without_seed_noise_no_twin_difference_is_judged():
    one_seed = [REFERENCE[0], REFERENCE[2]]
    comparison = compare_twins(one_seed, [_run("ce", 0, 0.80, 0.01, precision="fp32")], "precision")
    (pair,) = comparison.twins
    assert not pair.accuracy.measured and not pair.nc1.measured and not pair.accuracy.is_trend()
    empty = compare_twins(REFERENCE, [], "precision")
    assert empty.twins == [] and empty.mean_accuracy is None and empty.mean_nc1 is None


def test_a_twin_reads_as_a_sentence():
    twin = _run("mse", 1, 0.785, 0.004, precision="fp32")
    (pair,) = compare_twins(REFERENCE, [twin], "precision").twins
    text = pair.text({"mse": "MSE"}, {"bf16": "bfloat16", "fp32": "float32"})
    assert text.startswith("MSE with seed 1: float32 fitted from epoch 2, bfloat16 not fitted (99.70% at the end); "
                           "final test accuracy float32 minus bfloat16 +0.50 ± ")
    assert "points (within the noise of two seeds; a trend needs more than " in text
    assert "final NC1 2.00 times lower in float32, −0.301 ± " in text and text.endswith("degrees of freedom)")
    one_seed = compare_twins([REFERENCE[0]], [_run("ce", 0, 0.80, 0.01, precision="fp32")], "precision")
    assert "(noise not measured)" in one_seed.twins[0].text({}, {})


def test_a_comparison_reads_one_twin_in_full_and_several_in_summary():
    """One twin reads in full; several in one summary that does not grow with their number (the
    table has each): onsets alike, each difference's range with the rule's reading, then the
    mean, judged as a mean."""
    names = {"bf16": "bfloat16", "fp32": "float32"}
    labels = {"ce": "CE", "mse": "MSE"}
    twins = [_run("ce", 0, 0.780, 0.2, precision="fp32"), _run("mse", 0, 0.776, 0.007, precision="fp32")]
    text = compare_twins(REFERENCE, twins, "precision").text(labels, names)
    assert text.startswith("The twins reach the terminal phase at the same evaluation, or both miss it, in 2 of 2 "
                           "pairs. Final test accuracy, float32 minus bfloat16, from +0.20 to +0.50 points: each "
                           "within the noise of two seeds (a trend needs more than ")
    assert "Final NC1 is 0.87 to 1.00 times as high in float32; in log₁₀ NC1, from −0.061 to +0.000: each " in text
    assert ". Over the 2 twins, float32 minus bfloat16 on average: final test accuracy +0.35 ± " in text
    assert "points (within noise; a trend needs more than" in text and text.endswith(" degrees of freedom).")
    single = compare_twins(REFERENCE, twins[:1], "precision").text(labels, names)
    assert single.startswith("CE with seed 0: float32 fitted from epoch 2") and single.endswith(".")
    assert "Over the" not in single
    assert compare_twins(REFERENCE, [], "precision").text({}, names) == ""


def test_a_summary_names_the_twins_beyond_the_noise_and_those_that_fit_apart():
    names = {"bf16": "bfloat16", "fp32": "float32"}
    twins = [_run("ce", 0, 0.780, 0.02, precision="fp32", fit=(0.9, 0.95, 1.0)),
             _run("mse", 0, 0.776, 0.007, precision="fp32")]
    text = compare_twins(REFERENCE, twins, "precision").text({"ce": "CE", "mse": "MSE"}, names)
    assert text.startswith("The twins reach the terminal phase at the same evaluation, or both miss it, in 1 of 2 "
                           "pairs (not: CE with seed 0, float32 fitted from epoch 3 and bfloat16 fitted from epoch "
                           "2). ")
    assert "in log₁₀ NC1, from −1.061 to +0.000: further apart than two seeds for CE with seed 0, −1.061 ± " in text
    assert ", within it for the other 1 twin (a trend needs more than " in text
    # Two twins judged at once: chance alone puts 0.10 beyond the rule, at least one in 1 - 0.95² of cases.
    assert ("; were chance all that set twins apart, the rule (at its 5% level) would find 0.10 of 2 twins further "
            "apart than two seeds on average, and at least 1 in 10% of cases (twins taken as independent)") in text
    unjudged = compare_twins([REFERENCE[0], REFERENCE[2]], twins, "precision").text({}, names)
    assert "from +0.20 to +0.50 points (noise not measured)" in unjudged


def test_twins_at_two_widths_are_named_with_their_width():
    """Loss and seed name a twin only within one width: across two, both MSE twins with seed 0
    would read alike, and the range of the differences would keep one of them."""
    def wide(run):
        return {**run, "run": run["run"] + "-w4", "config": {**run["config"], "width": 0.25}}

    reference = REFERENCE + [wide(_run("mse", 0, 0.790, 0.004))]
    twins = [_run("mse", 0, 0.776, 0.007, precision="fp32"), wide(_run("mse", 0, 0.760, 0.004, precision="fp32"))]
    text = compare_twins(reference, twins, "precision").text({"mse": "MSE"}, {"bf16": "bfloat16", "fp32": "float32"})
    assert "from −3.00 to +0.20 points: further apart than two seeds for MSE at width 1/4 with seed 0, " in text
    assert "within it for the other 1 twin" in text
    single = compare_twins(REFERENCE, twins[:1], "precision").text({"mse": "MSE"}, {})
    assert single.startswith("MSE with seed 0: ")


def _with_analysis(run, predictions, means):
    return {**run, "analysis": {"test_predictions": list(predictions), "geometry": {"means": means}}}


def test_twins_are_set_beside_two_seeds_in_predictions_and_geometry():
    """Where twins end against two seeds of one loss: each measure's values and the seeds' range,
    how many twins fall on each side, and only when every twin is closer than every pair of seeds
    in both measures, the warning that the seed noise could hide an effect."""
    import numpy as np

    from ncrepro.metrics import simplex_etf

    etf = simplex_etf(4)
    G = etf @ etf.T
    truth = [0, 1, 2, 3] * 25

    def bent(t):    # class means a distance that grows with t from the simplex ETF's
        return (G + t * np.diag([1.0, 0.0, 0.0, -1.0])).tolist()

    def flip(n):    # predictions that differ from truth's on the first n of 100 images
        return [(c + 1) % 4 if i < n else c for i, c in enumerate(truth)]

    reference = [_with_analysis(_run("ce", 0, 0.775, 0.23), truth, bent(0.0)),
                 _with_analysis(_run("ce", 1, 0.777, 0.22), flip(20), bent(0.2)),
                 _with_analysis(_run("mse", 0, 0.774, 0.007), truth, bent(0.0)),
                 _with_analysis(_run("mse", 1, 0.780, 0.008, fit=(0.9, 0.99, 0.997)), flip(30), bent(0.3))]
    names, labels = {"bf16": "bfloat16", "fp32": "float32"}, {"ce": "CE", "mse": "MSE"}
    # Seeds agree on 80% and 70% of the images; one twin on 75% (within), one on 99% (closer).
    parted = [_with_analysis(_run("ce", 0, 0.780, 0.2, precision="fp32"), flip(25), bent(0.25)),
              _with_analysis(_run("mse", 0, 0.776, 0.007, precision="fp32"), flip(1), bent(0.01))]
    text = twins_against_seeds(compare_twins(reference, parted, "precision"), reference, labels, names)
    assert text.startswith("How far apart the twins end: the float32 and bfloat16 networks of CE with seed 0 and "
                           "MSE with seed 0 predict the same class on 75.0% and 99.0% of the test images, against "
                           "70.0% to 80.0% for two networks of one loss from different seeds (2 pairs: CE and MSE); ")
    assert ("Of the 2 twins: in predictions, 1 closer than every pair of seeds and 1 within the seeds' range; "
            "in geometry, 1 closer than every pair of seeds and 1 within the seeds' range.") in text
    assert text.endswith("Changing only the precision parts the twins about as far as a change of seed, so the "
                         "noise of two seeds is the yardstick they are judged by above.")
    close = [_with_analysis(_run("ce", 0, 0.780, 0.2, precision="fp32"), flip(1), bent(0.01)),
             _with_analysis(_run("mse", 0, 0.776, 0.007, precision="fp32"), flip(2), bent(0.02))]
    text = twins_against_seeds(compare_twins(reference, close, "precision"), reference, labels, names)
    assert text.endswith("The twins stay closer than two seeds, so the noise of two seeds, by which they are "
                         "judged above, could hide an effect of the setting smaller than it.")
    # Seeds of the twins' own set join the yardstick, each pair at one precision: two MSE
    # networks in float32 (the twin, wrong on image 0, and seed 1, wrong on the first 40) agree
    # on 61%; an MSE network in float32 and another seed's in bfloat16 are no pair.
    mse_fp32 = [_with_analysis(_run("mse", 1, 0.772, 0.008, precision="fp32"), flip(40), bent(0.4))]
    text = twins_against_seeds(compare_twins(reference, parted, "precision"), reference, labels, names,
                               others=parted + mse_fp32)
    assert ("against 61.0% to 80.0% for two networks of one loss from different seeds (3 pairs: CE and MSE in "
            "bfloat16; MSE in float32); ") in text
    assert "Of the 2 twins: in predictions, 1 closer than every pair of seeds and 1 within the seeds' range;" in text
    # No second seed to set them beside, or no twin: nothing to say.
    one_seed = [reference[0], reference[2]]
    assert twins_against_seeds(compare_twins(one_seed, close, "precision"), one_seed, labels, names) == ""
    assert twins_against_seeds(compare_twins(reference, [], "precision"), reference, labels, names) == ""


def test_a_twin_is_set_beside_seeds_of_its_own_width_only():
    # A wider network is more accurate, so two of them agree more whatever parts them: a width-1/4
    # twin (agreeing on 99%) was once counted "closer than every pair of seeds" against the seeds
    # of width 1/8 (70-80%). Without two seeds at its own width it is counted apart.
    import numpy as np

    from ncrepro.metrics import simplex_etf

    etf = simplex_etf(4)
    G = etf @ etf.T
    truth = [0, 1, 2, 3] * 25
    bent = lambda t: (G + t * np.diag([1.0, 0.0, 0.0, -1.0])).tolist()  # noqa: E731
    flip = lambda n: [(c + 1) % 4 if i < n else c for i, c in enumerate(truth)]  # noqa: E731
    wide = lambda run: {**run, "config": {**run["config"], "width": 0.25}}  # noqa: E731
    reference = [_with_analysis(_run("ce", 0, 0.775, 0.23), truth, bent(0.0)),
                 _with_analysis(_run("ce", 1, 0.777, 0.22), flip(20), bent(0.2)),
                 _with_analysis(_run("mse", 0, 0.774, 0.007), truth, bent(0.0)),
                 _with_analysis(_run("mse", 1, 0.780, 0.008), flip(30), bent(0.3)),
                 _with_analysis(wide(_run("mse", 0, 0.80, 0.004)), truth, bent(0.0))]
    twins = [_with_analysis(_run("ce", 0, 0.780, 0.2, precision="fp32"), flip(25), bent(0.25)),
             _with_analysis(wide(_run("mse", 0, 0.81, 0.004, precision="fp32")), flip(1), bent(0.01))]
    names, labels = {"bf16": "bfloat16", "fp32": "float32"}, {"ce": "CE", "mse": "MSE"}
    text = twins_against_seeds(compare_twins(reference, twins, "precision"), reference, labels, names)
    assert ("networks of CE at width 1/8 with seed 0 and MSE at width 1/4 with seed 0 predict the same class on "
            "75.0% and 99.0% of the test images, against 70.0% to 80.0% for two networks of one loss from "
            "different seeds at width 1/8 (2 pairs: CE and MSE) and no two networks of one loss from different "
            "seeds at width 1/4 yet; ") in text
    assert "against 0.043 to 0.064 at width 1/8 and none yet at width 1/4." in text
    assert ("Of the 2 twins: in predictions, 1 within the seeds' range and 1 with no two seeds of one loss to set "
            "beside; in geometry, 1 within the seeds' range and 1 with no two seeds of one loss to set beside.") in text
    # With no seeds at either twin's width there is nothing to set them beside.
    assert twins_against_seeds(compare_twins(reference[4:], twins[1:], "precision"), reference[4:], labels,
                               names) == ""
