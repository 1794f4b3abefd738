"""The chapters that read the terminal-phase set execute on the states the set reaches next.

Runs land one at a time over many sessions, and each new kind of state (the first run of a new
width, the first second seed of a loss) takes paths through the chapters that the committed
results do not: a width where some losses have no network yet once crashed the equivalence
chapter. Here the next runs in the protocol's priority order are made up from committed results
of the same loss (the numbers are not real; only the shapes of the set are), and the chapters
are executed on them, so such a state fails in CI before a real result brings it.
"""

import copy
import functools
import json
import shutil
from pathlib import Path

import papermill
import pytest

from ncrepro.protocol import load_protocol, ordered_runs
from ncrepro.report import read_glued
from ncrepro.results import load_results

ROOT = Path(__file__).resolve().parents[1]
# The sets still growing that the chapters read: the terminal-phase set (bfloat16) and the
# float32 set at width 1/4, whose seeds add a second judged width to the equivalence control.
PROTOCOLS = ("cifar10-tpt", "cifar10-tpt-fp32-wide")
CHAPTERS = ("real-networks", "equivalence")


def _made_up(template: dict, config) -> dict:
    """``template``'s result under another run's settings, its numbers nudged so that no two
    networks are identical."""
    result = copy.deepcopy(template)
    result["config"] = config.public()
    for epoch in result["epochs"]:
        if epoch.get("nc1") is not None:
            epoch["nc1"] *= 1.1
        if epoch.get("test_acc") is not None:
            epoch["test_acc"] = min(1.0, epoch["test_acc"] + 0.003)
    result["summary"]["final_test_acc"] = min(1.0, result["summary"]["final_test_acc"] + 0.003)
    return result


@functools.cache
def _terminal_phase_results() -> tuple[dict, ...]:
    """The terminal-phase set's committed results, read once for every made-up run (each
    template is deep-copied before it is changed)."""
    return tuple(load_results("cifar10-tpt"))


def _template(config, done: dict) -> dict:
    """A committed result to make ``config``'s up from: of the same loss, from this set where it
    has one, else from the terminal-phase set, at the same width where there is one."""
    for results in (list(done.values()), _terminal_phase_results()):
        same_loss = [r for r in results if r["config"]["loss"] == config.loss]
        if same_loss:
            return next((r for r in same_loss if r["config"]["width"] == config.width), same_loss[0])
    raise AssertionError(f"no committed result of loss {config.loss} to make a run from")


def _states(protocol: str):
    """The next pending run in priority order, the first pending run of a seed no finished run
    has, and every pending run: each added to the committed results."""
    proto = load_protocol(protocol)
    done = {r["run"]: r for r in load_results(proto)}
    pending = [(name, c) for name, c in ordered_runs(proto) if name not in done]
    seeds = {r["config"]["seed"] for r in done.values()}
    picks = {"next run": pending[:1],
             "a new seed": [(n, c) for n, c in pending if c.seed not in seeds][:1],
             # The state the chapters end in: what their text says of a finished set.
             "the whole grid": pending if len(pending) > 1 else []}
    return proto, done, {k: v for k, v in picks.items() if v}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_chapters_execute_on_the_next_states_of_the_set(protocol, tmp_path, monkeypatch):
    proto, done, states = _states(protocol)
    if not done or not states:
        pytest.skip("no finished run to make others from, or nothing left to run")
    for state, picks in states.items():
        # Every committed result (the chapters read other protocols too), without runs in progress.
        results = tmp_path / state.replace(" ", "-")
        shutil.copytree(ROOT / "data" / "results", results, ignore=shutil.ignore_patterns("in-progress", "*.lock"))
        folder = results / proto["name"]
        for name, config in picks:
            (folder / f"{name}.json").write_text(json.dumps(_made_up(_template(config, done), config)))
        monkeypatch.setenv("NCREPRO_RESULTS", str(results))
        monkeypatch.setenv("NCREPRO_STATIC", "1")
        assert len(load_results(proto, results_dir=results / proto["name"])) == len(done) + len(picks)
        executed = tmp_path / f"{state.replace(' ', '-')}-executed"
        executed.mkdir()
        for chapter in CHAPTERS:
            papermill.execute_notebook(ROOT / "book" / f"{chapter}.ipynb", executed / f"{chapter}.ipynb",
                                       cwd=str(ROOT / "book"), progress_bar=False, log_output=False)
        # The two chapters state the same spread of test accuracy across losses (the networks'
        # own classifiers) with the same standard error, one-seed losses borrowing seed noise alike.
        real, equivalence = read_glued("real-networks", executed), read_glued("equivalence", executed)
        for w, x in real["tpt_evidence"]["spreads"].items():   # in points
            assert f"At width {w}," in equivalence["eq_spreads"], (state, w)
            assert f"{x['spread']:.2f} ± {x['se']:.2f} points with the networks' own" in equivalence["eq_spreads"], (
                state, w, real["tpt_evidence"]["spreads"], equivalence["eq_spreads"])
        if state == "the whole grid" and protocol == "cifar10-tpt-fp32-wide":
            # With seeds at width 1/4 too, the control is judged at both widths, and the scorecard
            # reads the wider, where every loss fits the training set.
            runs = len(proto["_runs"])
            assert real["wide_done"].startswith(f"{runs} of {runs} runs"), real["wide_done"]
            assert "At width 1/8: " in equivalence["eq_control_reading"], equivalence["eq_control_reading"]
            assert "At width 1/4: " in equivalence["eq_control_reading"], equivalence["eq_control_reading"]
            assert "at width 1/4, the widest where they are judged" in equivalence["eq_control_use"]
            assert equivalence["eq_control_evidence"]["networks"].startswith("ResNet18 at width 1/4 (3 seeds)")
        if state == "the whole grid" and protocol == "cifar10-tpt":
            # A finished set is read as finished: every run counted, and the comparisons judged on
            # every seed the protocol has at the width with seeds.
            runs = len(proto["_runs"])
            assert real["tpt_done"].startswith(f"{runs} of {runs} runs"), real["tpt_done"]
            seeds = len({c.seed for _, c in proto["_runs"]})
            for key in ("eq_geometry_verdict", "eq_agreement_verdict"):
                assert f"over {seeds} seeds with every loss" in equivalence[key], equivalence[key]
