import json
import math

import pytest
from _tiny_data import make_image_folder

from ncrepro import sweep
from ncrepro.results import (
    TERMINAL_PHASE_TRAIN_ACC,
    accuracy_grid,
    group_results,
    in_terminal_phase,
    load_results,
    result_set_summary,
    terminal_phase_onset,
    terminal_phase_share,
    training_seconds,
)


def _synthetic_result(arch, width, epochs, loss, seed, acc, test_size=10_000):
    return {"config": {"arch": arch, "width": width, "epochs": epochs, "loss": loss, "seed": seed},
            "summary": {"final_test_acc": acc, "test_acc_at_best_val": acc - 0.01},
            "provenance": {"dataset": {"test_size": test_size}}}


def test_accuracy_grid_on_a_multi_budget_multi_seed_grid():
    """Two widths, two epoch budgets, two losses, three seeds (one missing): every cell keeps its
    own values, means are over seeds, gaps are per seed, and nothing is repeated across epochs."""
    results = []
    for width in (0.5, 1.0):
        for epochs in (10, 40):
            for loss in ("ce", "mse"):
                for seed in (0, 1, 2):
                    if (width, epochs, loss, seed) == (1.0, 40, "mse", 2):
                        continue
                    acc = 0.5 + 0.1 * width + 0.001 * epochs + (0.02 if loss == "mse" else 0.0) + 0.005 * seed
                    results.append(_synthetic_result("resnet18", width, epochs, loss, seed, acc))
    grid = accuracy_grid(results)
    assert grid.cells == [("resnet18", 0.5, 10), ("resnet18", 0.5, 40), ("resnet18", 1.0, 10), ("resnet18", 1.0, 40)]
    assert grid.losses == ["ce", "mse"] and grid.test_images == 10_000
    assert grid.mean(("resnet18", 0.5, 10), "ce") == pytest.approx(0.5 + 0.05 + 0.01 + 0.005)
    assert grid.mean(("resnet18", 0.5, 40), "ce") == pytest.approx(0.5 + 0.05 + 0.04 + 0.005)
    mean, std, n = grid.gap_to(("resnet18", 1.0, 40), "mse")
    assert n == 2 and mean == pytest.approx(0.02) and std == pytest.approx(0.0, abs=1e-12)
    var, count = grid.variance_across_losses(("resnet18", 0.5, 10))
    assert count == 6 and var > 0
    assert grid.gap_to(("resnet18", 0.5, 10), "ls") is None
    # Seven groups of three seeds with sd 0.005 and one of two seeds (0, 1) with sd 0.005/sqrt(2),
    # pooled by degrees of freedom.
    noise = grid.seed_noise()
    assert noise.sd == pytest.approx(math.sqrt((14 * 0.005 ** 2 + 0.005 ** 2 / 2) / 15)) and noise.dof == 15
    # Every estimate uses the pooled noise, whatever its own seeds; it still reports its own sd.
    two = grid.estimate(("resnet18", 1.0, 40), "mse")
    assert two.n == 2 and two.sd == pytest.approx(0.005 / math.sqrt(2))
    assert two.se == pytest.approx(math.sqrt(noise.sd ** 2 / 2 + two.mean * (1 - two.mean) / 10_000))
    # The paper's metric can still be asked for.
    paper = accuracy_grid(results, metric=lambda r: r["summary"]["test_acc_at_best_val"])
    assert paper.mean(("resnet18", 0.5, 10), "ce") == pytest.approx(0.555)


def test_spread_and_its_changes_along_epochs_and_width():
    """The spread is max minus min of the per-loss means; changes pair neighbouring budgets at a
    fixed width and neighbouring widths at a fixed budget, skipping cells that miss a loss; a
    change is called a trend only when it passes the noise rule as a difference of two spreads."""
    acc = {  # (width, epochs) -> (ce, mse)
        (0.5, 10): (0.60, 0.66), (0.5, 20): (0.70, 0.72), (0.5, 40): (0.80, 0.805),
        (1.0, 10): (0.65, 0.68), (1.0, 20): (0.75, None),
    }
    results = [_synthetic_result("resnet18", w, e, loss, 0, a)
               for (w, e), pair in acc.items() for loss, a in zip(("ce", "mse"), pair) if a is not None]
    grid = accuracy_grid(results)
    s = grid.spread(("resnet18", 0.5, 10))
    assert s.value == pytest.approx(0.06) and (s.best, s.worst) == ("mse", "ce")
    # One seed: binomial noise only, sqrt(p(1-p)/T) per accuracy, sqrt(2) of it for the spread.
    se = lambda p: math.sqrt(p * (1 - p) / 10_000)  # noqa: E731
    assert s.se == pytest.approx(math.hypot(se(0.60), se(0.66)))
    assert grid.spread(("resnet18", 1.0, 20)) is None
    changes = grid.spread_changes()
    summary = [(c.along, c.cell_before[1:], c.cell_after[1:]) for c in changes]
    # (1.0, 20) misses MSE: neither its budget step nor its width step is paired.
    assert summary == [("epochs", (0.5, 10), (0.5, 20)), ("epochs", (0.5, 20), (0.5, 40)),
                       ("width", (0.5, 10), (1.0, 10))]
    first, second, third = changes
    # A change of spread adds the variances of all four accuracies.
    four = math.sqrt(se(0.60) ** 2 + se(0.66) ** 2 + se(0.70) ** 2 + se(0.72) ** 2)
    assert first.change.delta == pytest.approx(-0.04) and first.change.se == pytest.approx(four)
    assert first.direction() == "shrinks" and second.direction() == "within noise"  # 0.02 -> 0.005, se 0.009
    # 0.06 -> 0.03 with about 0.0095 of known noise, 3.2 standard errors: a trend at the 95%
    # level (1.96), not at 99.9% (3.29).
    assert third.change.delta == pytest.approx(-0.03) and third.change.dof == math.inf
    assert third.direction() == "shrinks" and third.direction(level=0.999) == "within noise"
    # A second seed elsewhere, 0.028 away from the first: every cell takes that seed noise (sd
    # 0.02 on 1 degree of freedom), and the same change becomes noise.
    noisy = accuracy_grid(results + [_synthetic_result("resnet18", 0.5, 40, "ce", 1, 0.80 + 0.02 * math.sqrt(2))])
    assert noisy.seed_noise().sd == pytest.approx(0.02) and noisy.seed_noise().dof == 1
    change = noisy.spread_changes()[2].change
    assert change.delta == pytest.approx(-0.03) and change.se == pytest.approx(math.hypot(four, 0.04), rel=0.01)
    assert 1 < change.dof < 1.2 and noisy.spread_changes()[2].direction() == "within noise"


def test_terminal_phase_onset_share_and_threshold():
    def result(*accs, epochs=None):
        return {"config": {"epochs": epochs or len(accs)},
                "epochs": [{"epoch": i + 1, "clean_train_acc": a} for i, a in enumerate(accs)]}

    assert TERMINAL_PHASE_TRAIN_ACC == 0.999
    assert in_terminal_phase(result(0.5, TERMINAL_PHASE_TRAIN_ACC))
    assert not in_terminal_phase(result(1.0, 0.998))
    fitted = result(0.5, 0.9995, 0.99, 1.0, 1.0, 1.0)
    assert terminal_phase_onset(fitted) == 4 and terminal_phase_share(fitted) == pytest.approx(2 / 6)
    assert terminal_phase_onset(result(1.0, 0.5)) is None and terminal_phase_share(result(1.0, 0.5)) == 0.0
    # Epochs without an evaluation (None) and results without clean accuracies are skipped.
    sparse = {"config": {"epochs": 4}, "epochs": [{"epoch": 1, "clean_train_acc": None},
                                                  {"epoch": 2, "clean_train_acc": 1.0},
                                                  {"epoch": 3}, {"epoch": 4, "clean_train_acc": 1.0}]}
    assert terminal_phase_onset(sparse) == 2 and in_terminal_phase(sparse)
    assert not in_terminal_phase({"epochs": [{"epoch": 1, "augmented_eval_train_acc": 1.0}]})


def test_training_seconds_leaves_pauses_out():
    """A run stopped for 20 minutes in one training epoch and 15 in one evaluated epoch counts as
    the run it would have been without them; its wall time counts both."""
    train = [{"seconds": 25.0 + 0.1 * i, "val_acc": None} for i in range(16)]
    evaluated = [{"seconds": 45.0, "val_acc": 0.7} for _ in range(4)]
    train[7]["seconds"] += 1200.0
    evaluated[2]["seconds"] += 900.0
    epochs = train + evaluated
    wall = sum(e["seconds"] for e in epochs)
    result = {"epochs": epochs, "provenance": {"wall_seconds": wall}}
    unpaused = 16 * 25.85 + 4 * 45.0   # 25.0 ... 26.5 with 25.7 paused into 1225.7: median 25.85
    assert training_seconds(result) == pytest.approx(unpaused)
    assert wall - training_seconds(result) == pytest.approx(2100.0, abs=2.0)   # the pauses, give or take the median
    # A run evaluated every epoch has no training-only epochs; one without per-epoch times (an
    # older result format) falls back to its recorded wall time.
    assert training_seconds({"epochs": evaluated, "provenance": {"wall_seconds": 1.0}}) == 180.0
    no_times = {"epochs": [{"val_acc": None}], "provenance": {"wall_seconds": 12.5}}
    assert training_seconds(no_times) == 12.5


def test_group_results_sorts_and_keeps_order():
    results = [_synthetic_result("resnet18", w, 10, "ce", s, 0.5) for w in (1.0, 0.25) for s in (1, 0)]
    groups = group_results(results, ("width",))
    assert list(groups) == [(0.25,), (1.0,)]
    assert [r["config"]["seed"] for r in groups[(0.25,)]] == [1, 0]


def test_load_results_names_the_grid(tmp_path):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = tmp_path / "g.json"
    proto.write_text(json.dumps({"name": "g", "base": {"data": str(tree), "arch": "resnet18", "width": 0.0625,
                                                       "batch_size": 16, "val_size": 8, "device": "cpu"},
                                 "grid": {"epochs": [1, 2], "loss": ["ce"]}}))
    out = tmp_path / "res"
    sweep.run_protocol(str(proto), results_dir=out, progress=False, log=lambda m: None)
    loaded = load_results(str(proto), results_dir=out)
    assert [(r["run"], r["grid"]) for r in loaded] == [("resnet18-w0.0625-e1-ce-s0", {"epochs": 1}),
                                                      ("resnet18-w0.0625-e2-ce-s0", {"epochs": 2})]


def test_result_set_summary_states_the_scale_and_the_machines():
    """The scale of a result set, as the chapters print it beside their numbers, and which
    processors trained it: each model once, across runs and the sessions of a resumed run; a run
    from before machines were recorded adds none."""
    def result(seed, machines):
        r = _synthetic_result("resnet18", 0.125, 100, "ce", seed, 0.77)
        r["config"].update(augment=False, loss_scale="mean")
        r["provenance"] = {"dataset": {"train_size": 45_000, "val_size": 5_000, "test_size": 10_000,
                                       "lossy_jpeg": True},
                           "device": "cpu (2 threads)", "git_commit": f"{seed}" * 40, "wall_seconds": 3600.0,
                           **({"machines": machines} if machines is not None else {})}
        r["epochs"] = [{"epoch": 1, "seconds": 1800.0}, {"epoch": 2, "seconds": 1800.0}]
        return r

    # One model name, two instruction sets: told apart where the record has them.
    results = [result(0, [{"model": "Intel Xeon"}, {"model": "AMD EPYC"}]), result(1, [{"model": "AMD EPYC"}]),
               result(2, None), result(3, [{"model": "AMD EPYC", "instruction_set": "AVX512-BF16"}])]
    s = result_set_summary({"name": "p", "_runs": [None] * 5}, results)
    assert s["machines"] == ["AMD EPYC", "AMD EPYC (AVX512-BF16)", "Intel Xeon"]
    assert s["devices"] == ["cpu (2 threads)"]
    assert (s["runs"], s["grid_runs"], s["seeds"]) == (4, 5, [0, 1, 2, 3])
    assert s["train_images"] == [45_000] and s["lossy_jpeg"]
    assert s["commits"] == ["0000000000", "1111111111", "2222222222", "3333333333"]
    assert s["wall_hours"] == pytest.approx(4.0)


def test_setting_of_is_the_key_results_are_grouped_by():
    from ncrepro.results import SETTING_KEYS, group_results, setting_of

    runs = [{"config": {"arch": "resnet18", "width": w, "epochs": 100, "loss": loss, "seed": 0}}
            for w in (0.25, 0.125) for loss in ("ce", "mse")]
    assert setting_of(runs[0]) == ("resnet18", 0.25, 100)
    assert list(group_results(runs, SETTING_KEYS)) == [("resnet18", 0.125, 100), ("resnet18", 0.25, 100)]
    assert all(setting_of(r) == key for key, group in group_results(runs, SETTING_KEYS).items() for r in group)
