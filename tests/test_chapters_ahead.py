"""The chapters that read the terminal-phase set execute on the states the set reaches next.

Runs land one at a time over many sessions, and each new kind of state (the first run of a new
width, the first second seed of a loss) takes paths through the chapters that the committed
results do not: a width where some losses have no network yet once crashed the equivalence
chapter. Here the next runs in the protocol's priority order are made up from committed results
of the same loss (the numbers are not real; only the shapes of the set are), and the chapters
are executed on them, so such a state fails in CI before a real result brings it.
"""

import copy
import json
import shutil
from pathlib import Path

import papermill
import pytest

from ncrepro.protocol import load_protocol, ordered_runs
from ncrepro.report import read_glued
from ncrepro.results import load_results

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = "cifar10-tpt"
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


def _states():
    """The next pending run in priority order, the first pending run of a seed no finished run
    has, and every pending run: each added to the committed results."""
    proto = load_protocol(PROTOCOL)
    done = {r["run"]: r for r in load_results(proto)}
    pending = [(name, c) for name, c in ordered_runs(proto) if name not in done]
    seeds = {r["config"]["seed"] for r in done.values()}
    picks = {"next run": pending[:1],
             "a new seed": [(n, c) for n, c in pending if c.seed not in seeds][:1],
             # The state the chapters end in: what their text says of a finished set.
             "the whole grid": pending if len(pending) > 1 else []}
    return proto, done, {k: v for k, v in picks.items() if v}


def test_the_chapters_execute_on_the_next_states_of_the_set(tmp_path, monkeypatch):
    proto, done, states = _states()
    if not done or not states:
        pytest.skip("no finished run to make others from, or nothing left to run")
    for state, picks in states.items():
        # Every committed result (the chapters read other protocols too), without runs in progress.
        results = tmp_path / state.replace(" ", "-")
        shutil.copytree(ROOT / "data" / "results", results, ignore=shutil.ignore_patterns("in-progress", "*.lock"))
        folder = results / proto["name"]
        for name, config in picks:
            template = next(r for r in done.values() if r["config"]["loss"] == config.loss)
            (folder / f"{name}.json").write_text(json.dumps(_made_up(template, config)))
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
        if state == "the whole grid":
            # A finished set is read as finished: every run counted, and the comparisons judged on
            # every seed the protocol has at the width with seeds.
            runs = len(proto["_runs"])
            assert real["tpt_done"].startswith(f"{runs} of {runs} runs"), real["tpt_done"]
            seeds = len({c.seed for _, c in proto["_runs"]})
            for key in ("eq_geometry_verdict", "eq_agreement_verdict"):
                assert f"over {seeds} seeds with every loss" in equivalence[key], equivalence[key]
