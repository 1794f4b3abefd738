import pytest

from ncrepro.terminal_phase import first_epoch_below, summarise_terminal_phase


def _run(width, loss, seed, accs, nc1s, test_acc, nc2=0.1, nc3=0.1):
    epochs = [{"epoch": i + 1, "clean_train_acc": a, "nc1": n, "nc2": nc2, "nc3": nc3, "nc4": 0.0,
               "test_acc": test_acc} for i, (a, n) in enumerate(zip(accs, nc1s))]
    return {"run": f"w{width}-{loss}-s{seed}",
            "config": {"arch": "resnet18", "width": width, "epochs": len(epochs), "loss": loss, "seed": seed,
                       "augment": False, "device": "cpu"},
            "summary": {"final_test_acc": test_acc},
            "provenance": {"dataset": {"train_size": 45_000, "test_size": 10_000}},
            "epochs": epochs}


def test_a_summary_of_a_small_terminal_phase_set():
    fit = [0.9, 0.999, 1.0, 1.0, 1.0, 1.0]
    results = []
    for seed in (0, 1, 2):
        results.append(_run(0.125, "ce", seed, fit, [5, 2, 0.9, 0.5, 0.3, 0.2 + 0.01 * seed], 0.78 + 0.002 * seed))
        results.append(_run(0.125, "ls", seed, fit, [4, 0.8, 0.4, 0.2, 0.1, 0.05 + 0.001 * seed], 0.79 + 0.002 * seed))
    results.append(_run(0.25, "ce", 0, fit, [5, 2, 1.5, 0.9, 0.5, 0.25], 0.80))
    results.append(_run(0.25, "ls", 0, [0.9, 0.95, 0.99, 0.995, 0.998, 0.998], [4, 1, 0.5, 0.4, 0.3, 0.2], 0.81,
                        nc2=0.9))
    baselines = {0.125: {"nc2": 0.5, "nc3": 0.6}, 0.25: {"nc2": 0.5, "nc3": 0.6}}
    s = summarise_terminal_phase(results, baselines)
    assert s.widths == [0.125, 0.25] and s.seeds(0.125) == 3 and s.seeds(0.25) == 1
    assert s.onsets["w0.125-ce-s0"] == 2 and s.onsets["w0.25-ls-s0"] is None
    assert s.unfitted_text({"ls": "LS"}) == "LS at width 1/4 with seed 0 (99.80%, 90 training images wrong)"
    assert len(s.fitted) == 7 and len(s.long_enough) == 7  # onset at epoch 2 of 6: 4/6 in the phase
    assert s.mean_onsets(0.125) == {"ce": 2.0, "ls": 2.0} and s.mean_onsets(0.25) == {"ce": 2.0}
    assert [r["run"] for r in s.nc2_above_random] == ["w0.25-ls-s0"]
    assert s.nc1_drop_min == pytest.approx(4 / 0.2)
    order = s.nc1_orderings({"ce": "CE", "ls": "LS"})
    assert order[0] == "LS < CE at width 1/8 (3 seeds)"
    # The one-seed width borrows the seed spread of the three-seed width (pooled on the log scale).
    assert s.nc["nc1"][(0.25, "ce")].se > 0
    assert s.ls_ce == {"networks": "ResNet18 at widths 1/8 (3 seeds) and 1/4 (1 seed), CIFAR-10, CPU",
                       "threshold": 1.0, "settings": 4, "ls_first": 4, "ties": 0, "ce_first": 0, "early_ls_lower": 4}
    e = s.evidence({"ce": "CE", "ls": "LS"})
    assert e["runs"] == 8 and e["fitted"] == 7 and set(e["spreads"]) == {"1/8", "1/4"}
    assert e["spread_change"]["from"] == "1/8" and e["spread_change"]["direction"] in ("grows", "shrinks",
                                                                                       "within noise")
    assert e["scale"] == ("ResNet18 at widths 1/8 (3 seeds) and 1/4 (1 seed), 45,000 CIFAR-10 training images "
                          "without augmentation, 6 epochs, CPU")
    assert e["networks"] == "ResNet18 at widths 1/8 (3 seeds) and 1/4 (1 seed), CIFAR-10, CPU"


def test_an_empty_set_summarises_to_nothing():
    s = summarise_terminal_phase([], {})
    assert s.widths == [] and s.evidence({})["runs"] == 0 and s.scale() == "no terminal-phase run yet"
    assert s.ls_ce["settings"] == 0


def test_first_epoch_below():
    run = _run(0.125, "ce", 0, [1.0] * 3, [2.0, 0.9, 0.5], 0.8)
    assert first_epoch_below(run, "nc1", 1.0) == 2 and first_epoch_below(run, "nc1", 0.1) is None


def test_a_set_in_progress_says_what_it_has_and_judges_nothing_it_cannot():
    fit = [0.9, 0.999, 1.0, 1.0]
    one_seed = [_run(0.125, "ce", 0, fit, [5, 2, 1, 0.23], 0.775), _run(0.125, "fl", 0, fit, [5, 3, 2, 0.51], 0.779),
                _run(0.125, "mse", 0, fit, [1, 0.1, 0.01, 0.0069], 0.774)]
    s = summarise_terminal_phase(one_seed, {0.125: {"nc2": 0.5, "nc3": 0.6}})
    assert s.nc1_orderings({"ce": "CE", "fl": "FL", "mse": "MSE"}) == [
        "MSE, CE, FL from lowest (noise not measured) at width 1/8 (1 seed)"]
    assert s.nc1_closest_steps({}) == []
    e = s.evidence({})
    assert e["losses"] == 3 and e["seed_noise_dof"] == 0 and "ResNet18 at width 1/8 (1 seed)," in e["scale"]
    # A second seed of one loss: a noise level exists (borrowed by the others), the seed count is a range.
    s = summarise_terminal_phase(one_seed + [_run(0.125, "ce", 1, fit, [5, 2, 1, 0.25], 0.771)],
                                 {0.125: {"nc2": 0.5, "nc3": 0.6}})
    assert s.seeds_text(0.125) == "1–2 seeds" and s.evidence({})["seed_noise_dof"] == 1
    assert s.evidence({})["networks"] == "ResNet18 at width 1/8 (1–2 seeds), CIFAR-10, CPU"
    # That noise rests on 1 degree of freedom, so a step must exceed 12.7 standard errors: CE to FL
    # (log10 0.51/0.24 = 0.33, about 10 of them) is not yet a trend, MSE to CE (about 50) is.
    assert s.nc1_orderings({"ce": "CE", "fl": "FL", "mse": "MSE"}) == ["MSE < CE ≈ FL at width 1/8 (1–2 seeds)"]
    # sd log10(0.25/0.23)/sqrt(2) = 0.0256; step se sqrt(1/2 + 1) * 0.0256 = 0.0314; 12.71 of them.
    assert s.nc1_closest_steps({"ce": "CE", "fl": "FL", "mse": "MSE"}) == [
        "at width 1/8, CE to FL, 0.328 in log₁₀ NC1 (a trend needs more than 0.398, 12.71 standard errors by "
        "Student’s t on 1 degree of freedom)"]
    # A wider network of one loss alone: it counts for collapse, but not for the spread across
    # losses or for LS against CE, so their scales leave it out.
    s = summarise_terminal_phase(one_seed + [_run(0.25, "mse", 0, fit, [1, 0.1, 0.01, 0.0037], 0.803)],
                                 {w: {"nc2": 0.5, "nc3": 0.6} for w in (0.125, 0.25)})
    e = s.evidence({})
    assert e["networks"] == "ResNet18 at widths 1/8 (1 seed) and 1/4 (1 seed), CIFAR-10, CPU"
    assert e["spread_networks"] == "ResNet18 at width 1/8 (1 seed), CIFAR-10, CPU"
    assert s.ls_ce["networks"] == "no width with both CE and LS finished yet"
    # Two of the three losses at the wider width: still no spread there, since one over CE and MSE
    # alone would not compare with the one over all three at width 1/8.
    s = summarise_terminal_phase(one_seed + [_run(0.25, loss, 0, fit, [1, 0.1, 0.01, 0.004], 0.80)
                                             for loss in ("mse", "ce")],
                                 {w: {"nc2": 0.5, "nc3": 0.6} for w in (0.125, 0.25)})
    assert s.evidence({})["spread_networks"] == "ResNet18 at width 1/8 (1 seed), CIFAR-10, CPU"
    assert list(s.evidence({})["spreads"]) == ["1/8"]


def test_losses_follow_the_books_order_whatever_order_results_come_in():
    # Tables, legends and lists read summary.settings; alphabetical grouping put FL before LS.
    fit = [0.9, 0.999, 1.0, 1.0]
    runs = [_run(0.125, loss, 0, fit, [2, 1, 0.5, 0.2], 0.78) for loss in ("mse", "fl", "ls", "ce")]
    assert list(summarise_terminal_phase(runs, {0.125: {"nc2": 0.5, "nc3": 0.6}}).settings[0.125]) == [
        "ce", "ls", "fl", "mse"]


def test_the_seed_noise_says_where_it_was_measured_and_how_well_it_is_known():
    labels = {"ce": "CE", "ls": "LS"}
    fit = [1.0] * 3
    one_pair = [_run(0.125, "ce", s, fit, [1, 0.5, 0.2], acc) for s, acc in ((0, 0.775), (1, 0.779))]
    one_pair.append(_run(0.125, "ls", 0, fit, [1, 0.5, 0.1], 0.78))
    s = summarise_terminal_phase(one_pair, {0.125: {"nc2": 0.5, "nc3": 0.6}})
    # One pair: sd = 0.004 / sqrt(2); with 1 degree of freedom its 95% interval is 0.45x to 31.9x.
    assert s.seed_noise_text(labels) == ("0.28 points, pooled over CE at width 1/8 (2 seeds): with 1 degree of "
                                         "freedom, its 95% interval runs from 0.13 to 9.03 points")
    mixed = one_pair + [_run(0.125, "ce", 2, fit, [1, 0.5, 0.2], 0.777),
                        _run(0.125, "ls", 1, fit, [1, 0.5, 0.1], 0.784)]
    text = summarise_terminal_phase(mixed, {0.125: {"nc2": 0.5, "nc3": 0.6}}).seed_noise_text(labels)
    assert text == ("0.23 points, pooled over CE (3 seeds) and LS (2 seeds) at width 1/8: with 3 degrees of "
                    "freedom, its 95% interval runs from 0.13 to 0.86 points")  # sd sqrt(16e-6 / 3)
    even = mixed + [_run(0.125, "ls", 2, fit, [1, 0.5, 0.1], 0.781)]
    text = summarise_terminal_phase(even, {0.125: {"nc2": 0.5, "nc3": 0.6}}).seed_noise_text(labels)
    assert "pooled over CE and LS at width 1/8 (3 seeds each): with 4 degrees of freedom" in text
    one_seed = summarise_terminal_phase(one_pair[2:], {0.125: {"nc2": 0.5, "nc3": 0.6}})
    assert one_seed.seed_noise_text(labels) is None


def test_the_nc_table_summarises_seeds_on_a_log_scale_and_adds_the_random_baselines():
    labels = {"ce": "CE", "ls": "LS"}
    fit = [1.0] * 3
    baselines = {0.125: {"nc2": 0.5, "nc3": 0.6}, 0.25: {"nc2": 0.4, "nc3": 0.45}}
    # CE's two seeds end at NC1 0.1 and 0.4: geometric mean 0.2, one sd of log10 is a factor 2.67.
    runs = [_run(0.125, "ce", 0, fit, [1, 0.5, 0.1], 0.775), _run(0.125, "ce", 1, fit, [1, 0.5, 0.4], 0.779),
            _run(0.125, "ls", 0, fit, [1, 0.5, 0.05], 0.78)]
    columns, rows = summarise_terminal_phase(runs, baselines).nc_table(labels, baselines)
    assert columns == ["width", "loss", "seeds", "NC1", "NC2", "NC3", "NC4"]
    assert [r[:3] for r in rows] == [["1/8", "CE", 2], ["1/8", "LS", 1], ["1/8", "random geometry", "–"]]
    assert rows[0][3] == "0.2 ×÷ 2.67" and rows[1][3] == "0.05"
    assert rows[2][3:] == ["–", "0.500", "0.600", "–"]  # only the widths of the set


def test_the_accuracy_table_has_a_row_per_width_and_a_spread_only_where_every_loss_ran():
    labels = {"ce": "CE", "ls": "LS"}
    fit = [1.0] * 3
    baselines = {w: {"nc2": 0.5, "nc3": 0.6} for w in (0.125, 0.25)}
    runs = [_run(0.125, "ce", 0, fit, [1, 0.5, 0.2], 0.775), _run(0.125, "ce", 1, fit, [1, 0.5, 0.2], 0.779),
            _run(0.125, "ls", 0, fit, [1, 0.5, 0.2], 0.78), _run(0.25, "ls", 0, fit, [1, 0.5, 0.2], 0.79)]
    s = summarise_terminal_phase(runs, baselines)
    columns, rows = s.accuracy_table(labels)
    assert columns == ["width", "CE", "LS", "spread (points)", "best / worst"]
    se = 100 * s.grid.spread(s.grid.cells[0]).se
    # CE: mean 77.7 over two seeds, sd 0.28 points; LS one seed (no sd of its own).
    assert rows == [["1/8", "77.7 ± 0.3", "78.0", f"0.30 ± {se:.2f}", "LS / CE"],
                    ["1/4", "–", "79.0", "–", "–"]]


def test_the_accuracy_reading_gives_every_number_its_noise():
    labels = {"ce": "CE", "ls": "LS"}
    fit = [1.0] * 3
    baselines = {w: {"nc2": 0.5, "nc3": 0.6} for w in (0.125, 0.25)}
    one_seed = [_run(0.125, loss, 0, fit, [1, 0.5, 0.2], acc) for loss, acc in (("ce", 0.775), ("ls", 0.78))]
    s = summarise_terminal_phase(one_seed, baselines)
    assert s.accuracy_text(labels) == (
        "No loss has two seeds yet, so the seed-to-seed noise is not measured yet; until it is, only the test "
        "set's sampling noise enters the standard errors. The spread across the 2 losses finished so far is "
        f"0.50 ± {100 * s.grid.spread(s.grid.cells[0]).se:.2f} points at width 1/8 (within noise: a trend needs "
        "more than 1.15 points, 1.96 standard errors by Tukey’s studentized range of 2 means, all of its noise "
        "known).")
    seeded = one_seed + [_run(0.125, "ce", 1, fit, [1, 0.5, 0.2], 0.779),
                         _run(0.25, "ce", 0, fit, [1, 0.5, 0.2], 0.80), _run(0.25, "ls", 0, fit, [1, 0.5, 0.2], 0.79)]
    s = summarise_terminal_phase(seeded, baselines)
    text = s.accuracy_text(labels)
    assert text.startswith(f"The seed-to-seed standard deviation of one network's test accuracy is "
                           f"{s.seed_noise_text(labels)}. The spread across the 2 losses finished so far is ")
    # Width 1/8: CE's mean 77.7% against LS 78.0%; width 1/4: 80% against 79%. The change of spread
    # is judged by the trend rule and says so.
    assert "freedom) and 1.00 ± " in text and "From width 1/8 to 1/4 it changes by +0.70 ± " in text
    assert text.endswith("degree of freedom.") or text.endswith("degrees of freedom.")
    assert ", within noise: a trend needs more than " in text
    assert summarise_terminal_phase([], {}).accuracy_text(labels).endswith(
        "No width has all four losses finished yet, so there is no spread to read.")
