import json
import re
import sys
from pathlib import Path

import pytest
from _tiny_data import make_image_folder

from ncrepro import sweep
from ncrepro.train import checkpoint_path


def write_protocol(path, tree, **over):
    proto = {"name": path.stem, "base": {"data": str(tree), "arch": "resnet18", "width": 0.0625, "epochs": 2,
                                          "batch_size": 16, "val_size": 8, "device": "cpu"},
             "grid": {"loss": ["ce", "mse"]}}
    proto.update(over)
    path.write_text(json.dumps(proto))
    return path


def test_sweep_runs_skips_and_resumes(tmp_path):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree)
    out = tmp_path / "results"
    logs = []
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append)
    results = report.results
    assert report.done == ["resnet18-w0.0625-e2-ce-s0", "resnet18-w0.0625-e2-mse-M15-s0"]
    assert [r["config"]["loss"] for r in results] == ["ce", "mse"]
    assert sorted(p.name for p in out.glob("*.json")) == ["resnet18-w0.0625-e2-ce-s0.json",
                                                         "resnet18-w0.0625-e2-mse-M15-s0.json"]
    assert "summary" in results[0] and "NC1" in logs[-2] and "done 2" in logs[-1]
    # A second run skips both; an interrupted run (result gone, checkpoint kept) resumes.
    (out / "resnet18-w0.0625-e2-mse-M15-s0.json").unlink()
    logs.clear()
    again = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append)
    assert again.earlier == ["resnet18-w0.0625-e2-ce-s0"] and "resuming" in logs[0]
    assert again.results[1]["epochs"][-1]["train_loss"] == results[1]["epochs"][-1]["train_loss"]
    assert checkpoint_path(out / "resnet18-w0.0625-e2-mse-M15-s0.json").exists()


def test_shipped_protocols_load():
    for name in ("book-cpu", "book-cpu-narrow", "cifar10-cpu", "book-gpu", "paper-cifar10", "smoke"):
        proto = sweep.load_protocol(name)
        assert sweep.protocol_runs(proto)
    assert len(sweep.protocol_runs(sweep.load_protocol("paper-cifar10"))) == 4 * 4 * 4 * 3


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.write_text("{not json"), "not valid JSON"),
    (lambda p: p.write_text(json.dumps({"name": "bad", "base": {}, "grid": {"seed": [0]}, "extra": 1})), "unknown key"),
    (lambda p: p.write_text(json.dumps({"name": "bad", "grid": {"seed": [0]}})), "'base' is a required property"),
    (lambda p: p.write_text(json.dumps({"name": "bad", "base": {"lossy": 1}, "grid": {"seed": [0]}})), "unknown key"),
    (lambda p: p.write_text(json.dumps({"name": "bad", "base": {}, "grid": {"loss": "ce"}})), "not of type 'array'"),
    (lambda p: p.write_text(json.dumps({"name": "bad", "base": {"alpha": 2.0}, "grid": {"loss": ["ls"]}})), "2.0"),
])
def test_bad_protocol_files(tmp_path, mutate, message):
    path = tmp_path / "bad.json"
    mutate(path)
    with pytest.raises(ValueError, match=message):
        sweep.load_protocol(str(path))


def test_unknown_protocol_name_and_cli(capsys):
    with pytest.raises(ValueError, match="known protocols"):
        sweep.load_protocol("no-such-protocol")
    assert sweep.main(["no-such-protocol"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no protocol" in err


@pytest.mark.parametrize("field, value, message", [
    ("lr", "0.1", "'0.1' is not of type 'number'"),
    ("epochs", "2", "'2' is not of type 'integer'"),
    ("epochs", 2.5, "2.5 is not of type 'integer'"),
    ("width", None, "None is not of type 'number'"),
    ("augment", "no", "'no' is not of type 'boolean'"),
    ("train_subset", 0, "0 is less than the minimum of 1"),
])
def test_protocol_types_are_checked(tmp_path, field, value, message):
    path = tmp_path / "typed.json"
    path.write_text(json.dumps({"name": "typed", "base": {field: value}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match=re.escape(message)):
        sweep.load_protocol(str(path))


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", ""])
def test_protocol_names_are_plain(tmp_path, name):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": name, "base": {}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match=r"\$\.name"):
        sweep.load_protocol(str(path))


def test_protocol_name_matches_its_file_anywhere(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "other", "base": {}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match="does not match the file name"):
        sweep.load_protocol(str(path))


def test_threads_and_non_numbers(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"name": "t", "threads": -1, "base": {}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match="-1 is less than the minimum of 1"):
        sweep.load_protocol(str(path))
    path.write_text('{"name": "t", "base": {"lr": Infinity}, "grid": {"loss": ["ce"]}}')
    with pytest.raises(ValueError, match="Infinity is not a number JSON allows"):
        sweep.load_protocol(str(path))


def test_schema_lists_every_train_setting():
    import dataclasses

    from ncrepro.train import TrainConfig
    schema = json.loads(sweep.SCHEMA_PATH.read_text())
    assert set(schema["$defs"]["settings"]["properties"]) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_fastjsonschema_fallback_checks_the_same(tmp_path, monkeypatch):
    """Where jsonschema is missing (the GPU machine), fastjsonschema checks the protocol."""
    import builtins

    pytest.importorskip("fastjsonschema")

    real_import = builtins.__import__

    def no_jsonschema(name, *args, **kwargs):
        if name == "jsonschema":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jsonschema)
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"name": "f", "base": {"epochs": "2"}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match="epochs"):
        sweep.load_protocol(str(path))
    assert sweep.load_protocol("cifar10-cpu")["name"] == "cifar10-cpu"


def test_run_names_cover_every_varying_setting(tmp_path):
    path = tmp_path / "wd.json"
    path.write_text(json.dumps({"name": "wd", "base": {"arch": "resnet18"},
                                "grid": {"weight_decay": [5e-4, 1e-4], "augment": [True, False], "loss": ["ce"]}}))
    names = [n for n, _ in sweep.protocol_runs(sweep.load_protocol(str(path)))]
    assert names == ["resnet18-w1-e10-ce-s0-noaug-wd0.0005"[:0] + "resnet18-w1-e10-ce-s0-aug-wd0.0005",
                     "resnet18-w1-e10-ce-s0-noaug-wd0.0005", "resnet18-w1-e10-ce-s0-aug-wd0.0001",
                     "resnet18-w1-e10-ce-s0-noaug-wd0.0001"]
    # Values that print alike get a hash of the whole configuration as tie breaker.
    path.write_text(json.dumps({"name": "wd", "base": {}, "grid": {"lr": [0.1, 0.1000000001]}}))
    names = [n for n, _ in sweep.protocol_runs(sweep.load_protocol(str(path)))]
    assert len(set(names)) == 2 and all(re.search(r"-lr0\.1-h[0-9a-f]{8}$", n) for n in names)
    # Two grid points that are the same run are refused when the protocol loads.
    path.write_text(json.dumps({"name": "wd", "base": {}, "grid": [{"lr": [0.1]}, {"lr": [0.1]}]}))
    with pytest.raises(ValueError, match="grid points 1 and 2 are the same run"):
        sweep.load_protocol(str(path))


def test_coupled_axes_blocks_and_order(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({
        "name": "c", "base": {},
        "grid": [{"width": [0.5, 1.0], "budget": [{"epochs": 2, "eval_every": 1}, {"epochs": 4, "eval_every": 2}]},
                 {"arch": ["wrn50"], "epochs": [4]}],
        "order": [{"epochs": 4, "width": 1.0}, {"arch": "wrn50"}]}))
    proto = sweep.load_protocol(str(path))
    grid = [(c.arch, c.width, c.epochs, c.eval_every) for _, c in sweep.protocol_runs(proto)]
    assert grid == [("resnet18", 0.5, 2, 1), ("resnet18", 0.5, 4, 2), ("resnet18", 1.0, 2, 1),
                    ("resnet18", 1.0, 4, 2), ("wrn50", 1.0, 4, 1)]
    ordered = [(c.arch, c.width, c.epochs) for _, c in sweep.ordered_runs(proto)]
    assert ordered == [("resnet18", 1.0, 4), ("wrn50", 1.0, 4), ("resnet18", 0.5, 2), ("resnet18", 0.5, 4),
                       ("resnet18", 1.0, 2)]
    path.write_text(json.dumps({"name": "c", "base": {}, "grid": {"epochs": [1], "b": [{"epochs": 2}]}}))
    with pytest.raises(ValueError, match="given by two grid axes"):
        sweep.load_protocol(str(path))


def test_sweep_never_replaces_another_configs_result(tmp_path):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"loss": ["ce"]})
    out = tmp_path / "results"
    out.mkdir()
    other = {"config": {"loss": "mse"}, "provenance": {"git_commit": "x", "device": "cpu", "torch": "t",
                                                        "dataset": {}}, "summary": {}, "epochs": [{}]}
    (out / "resnet18-w0.0625-e2-ce-s0.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="holds a result with other settings"):
        sweep.run_protocol(str(proto), results_dir=out, progress=False, log=lambda m: None)
    assert json.loads((out / "resnet18-w0.0625-e2-ce-s0.json").read_text()) == other
    (out / "resnet18-w0.0625-e2-ce-s0.json").write_bytes(b"\xff\xfe not utf-8")
    assert sweep.main([str(proto), "--results-dir", str(out), "--no-progress"]) == 2


def test_results_folder_is_checked_before_training(tmp_path, capsys):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert sweep.main([str(proto), "--results-dir", str(blocker), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sweep.main([str(proto), "--results-dir", str(blocker / "sub"), "--no-progress"]) == 2
    assert "cannot write results" in capsys.readouterr().err


def test_budget_skips_what_does_not_fit_and_stops_at_epoch_boundaries(tmp_path, monkeypatch):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"epochs": [6, 1], "loss": ["ce"]})
    out = tmp_path / "results"
    slow = sweep.Throughput(train_images_per_s=1.0, eval_images_per_s=1e9, setup_seconds=0.0, compiled="off")
    monkeypatch.setattr(sweep, "measure_throughput", lambda config, splits: slow)
    logs = []
    # 24 training images at 1 image/s: the 6-epoch run needs ~160 s, the 1-epoch run ~26 s.
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append, budget_minutes=1.0)
    assert report.skipped == ["resnet18-w0.0625-e6-ce-s0"] and report.done == ["resnet18-w0.0625-e1-ce-s0"]
    assert not report.stopped_by_budget and "skipped, estimated" in "\n".join(logs)
    assert sorted(p.name for p in out.glob("*.json")) == ["resnet18-w0.0625-e1-ce-s0.json"]
    # A run slower than its estimate stops at an epoch boundary when the deadline comes.
    fast = sweep.Throughput(train_images_per_s=1e9, eval_images_per_s=1e9, setup_seconds=0.0, compiled="off")
    monkeypatch.setattr(sweep, "measure_throughput", lambda config, splits: fast)
    clock = {"t": 0.0}
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock["t"])
    import ncrepro.train as train_mod
    original = train_mod._Trainer.train_epoch

    def slow_epoch(self, epoch, progress):
        clock["t"] += 25.0  # each epoch takes 25 s of the 60 s budget
        return original(self, epoch, progress)

    monkeypatch.setattr(train_mod.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(train_mod._Trainer, "train_epoch", slow_epoch)
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append, budget_minutes=1.0)
    assert report.partial == ["resnet18-w0.0625-e6-ce-s0"] and report.stopped_by_budget
    assert not (out / "resnet18-w0.0625-e6-ce-s0.json").exists()
    assert checkpoint_path(out / "resnet18-w0.0625-e6-ce-s0.json").exists()
    states = dict(sweep.run_states(sweep.load_protocol(str(proto)), out))
    assert states == {"resnet18-w0.0625-e6-ce-s0": "partial (epoch 2 of 6)", "resnet18-w0.0625-e1-ce-s0": "done"}


def test_export_and_import(tmp_path, capsys):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"loss": ["ce", "mse"]})
    there = tmp_path / "there"
    sweep.run_protocol(str(proto), results_dir=there, progress=False, log=lambda m: None)
    archive = tmp_path / "out" / "results.tar.gz"
    assert sweep.main(["export", str(proto), str(archive), "--results-dir", str(there)]) == 0
    here = tmp_path / "here"
    # A different finished result already here is kept, and the archive's copy refused.
    here.mkdir()
    mine = json.loads((there / "resnet18-w0.0625-e2-mse-M15-s0.json").read_text())
    mine["provenance"]["device"] = "another machine"
    (here / "resnet18-w0.0625-e2-mse-M15-s0.json").write_text(json.dumps(mine))
    capsys.readouterr()
    code = sweep.main(["import", str(archive), "--results-dir", str(here), "--protocol", str(proto)])
    out = capsys.readouterr().out
    assert code == 2 and "imported 1, identical 0, refused 1" in out and "already holds a different result" in out
    assert json.loads((here / "resnet18-w0.0625-e2-mse-M15-s0.json").read_text()) == mine
    name = "resnet18-w0.0625-e2-ce-s0.json"
    assert (here / name).read_bytes() == (there / name).read_bytes()
    (here / "resnet18-w0.0625-e2-mse-M15-s0.json").unlink()
    assert sweep.main(["import", str(archive), "--results-dir", str(here), "--protocol", str(proto)]) == 0
    assert "imported 1, identical 1, refused 0" in capsys.readouterr().out


def _archive(path, members):
    import io
    import tarfile
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_import_refuses_what_does_not_match(tmp_path, capsys):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"loss": ["ce"]})
    there = tmp_path / "there"
    sweep.run_protocol(str(proto), results_dir=there, progress=False, log=lambda m: None)
    good = json.loads((there / "resnet18-w0.0625-e2-ce-s0.json").read_text())
    tampered = dict(good, config=dict(good["config"], lr=0.5))
    no_prov = {k: v for k, v in good.items() if k != "provenance"}
    manifest = json.dumps({"protocol": "tiny"}).encode()
    archive = tmp_path / "a.tar.gz"
    for member, data, message in [
        ("tiny/resnet18-w0.0625-e2-ce-s0.json", json.dumps(tampered).encode(), "config differs"),
        ("tiny/resnet18-w0.0625-e2-ce-s0.json", json.dumps(no_prov).encode(), "missing provenance"),
        ("tiny/resnet18-w0.0625-e2-ce-s0.json", b"[]", "must be a JSON object"),
        ("tiny/resnet18-w0.0625-e2-ce-s0.json", b"\xff\xfe", "not a JSON result"),
        ("tiny/unknown-run.json", json.dumps(good).encode(), "not a run of protocol"),
        ("../escape.json", json.dumps(good).encode(), "not a run of protocol"),
    ]:
        _archive(archive, {"manifest.json": manifest, member: data})
        assert sweep.main(["import", str(archive), "--results-dir", str(tmp_path / "here"),
                           "--protocol", str(proto)]) == 2
        assert message in capsys.readouterr().out
    assert not (tmp_path / "here").exists() or not list((tmp_path / "here").iterdir())
    assert not (tmp_path / "escape.json").exists()
    _archive(archive, {"tiny/x.json": b"{}"})
    assert sweep.main(["import", str(archive)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    archive.write_bytes(b"not a tar")
    assert sweep.main(["import", str(archive)]) == 2
    assert "not a readable results archive" in capsys.readouterr().err


def test_gpu_sweep_script_rehearsal(tmp_path):
    """scripts/gpu-sweep.sh end to end on the CPU: check, budgeted sweep, archive; then import."""
    import os
    import subprocess

    from ncrepro.data import pack_dataset

    root = Path(__file__).resolve().parents[1]
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    pack_dataset(tree, tmp_path / "tree.npz")
    proto = write_protocol(tmp_path / "rehearsal.json", tree, grid={"epochs": [1, 2], "loss": ["ce", "mse"]},
                           order=[{"epochs": 2}])
    data = json.loads(proto.read_text())
    data["base"]["data"] = str(tmp_path / "tree.npz")
    proto.write_text(json.dumps(data))
    env = dict(os.environ, OUT=str(tmp_path / "out"), NCREPRO_RESULTS=str(tmp_path / "device-results"),
               PYTHON=sys.executable)
    run = subprocess.run(["bash", "scripts/gpu-sweep.sh", str(proto), "2", "cpu"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr + run.stdout
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["environment.txt", "results.tar.gz", "sweep.log"] and len(files) <= 8
    assert "done 4" in (tmp_path / "out" / "sweep.log").read_text()
    here = tmp_path / "here"
    assert sweep.main(["import", str(tmp_path / "out" / "results.tar.gz"), "--results-dir", str(here),
                       "--protocol", str(proto)]) == 0
    assert len(list(here.glob("*.json"))) == 4
    # Bad arguments and a missing dataset: one line, non-zero, nothing run.
    for args, message in [([str(proto)], "usage"), ([str(proto), "soon", "cpu"], "MINUTES"),
                          ([str(proto), "1", "tpu"], "DEVICE")]:
        bad = subprocess.run(["bash", "scripts/gpu-sweep.sh", *args], cwd=root, env=env, capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    (tmp_path / "tree.npz").unlink()
    missing = subprocess.run(["bash", "scripts/gpu-sweep.sh", str(proto), "1", "cpu"], cwd=root, env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not found" in missing.stdout + missing.stderr


def _synthetic_result(arch, width, epochs, loss, seed, acc):
    return {"config": {"arch": arch, "width": width, "epochs": epochs, "loss": loss, "seed": seed},
            "summary": {"test_acc_at_best_val": acc}}


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
    grid = sweep.accuracy_grid(results)
    assert grid.cells == [("resnet18", 0.5, 10), ("resnet18", 0.5, 40), ("resnet18", 1.0, 10), ("resnet18", 1.0, 40)]
    assert grid.losses == ["ce", "mse"]
    assert grid.mean(("resnet18", 0.5, 10), "ce") == pytest.approx(0.5 + 0.05 + 0.01 + 0.005)
    assert grid.mean(("resnet18", 0.5, 40), "ce") == pytest.approx(0.5 + 0.05 + 0.04 + 0.005)
    mean, std, n = grid.gap_to(("resnet18", 1.0, 40), "mse")
    assert n == 2 and mean == pytest.approx(0.02) and std == pytest.approx(0.0, abs=1e-12)
    var, count = grid.variance_across_losses(("resnet18", 0.5, 10))
    assert count == 6 and var > 0
    assert grid.gap_to(("resnet18", 0.5, 10), "ls") is None


def test_spread_and_its_changes_along_epochs_and_width():
    """The spread is max minus min of the per-loss means; changes pair neighbouring budgets at a
    fixed width and neighbouring widths at a fixed budget, skipping cells that miss a loss."""
    acc = {  # (width, epochs) -> (ce, mse)
        (0.5, 10): (0.60, 0.66), (0.5, 20): (0.70, 0.72), (0.5, 40): (0.80, 0.805),
        (1.0, 10): (0.65, 0.68), (1.0, 20): (0.75, None),
    }
    results = [_synthetic_result("resnet18", w, e, loss, 0, a)
               for (w, e), pair in acc.items() for loss, a in zip(("ce", "mse"), pair) if a is not None]
    grid = sweep.accuracy_grid(results)
    assert grid.spread(("resnet18", 0.5, 10)) == pytest.approx(0.06)
    assert grid.spread(("resnet18", 1.0, 20)) is None
    changes = grid.spread_changes()
    summary = [(c.along, c.cell_before[1:], c.cell_after[1:]) for c in changes]
    # (1.0, 20) misses MSE: neither its budget step nor its width step is paired.
    assert summary == [("epochs", (0.5, 10), (0.5, 20)), ("epochs", (0.5, 20), (0.5, 40)),
                       ("width", (0.5, 10), (1.0, 10))]
    first, second, _ = changes
    assert (first.before, first.after) == (pytest.approx(0.06), pytest.approx(0.02))
    assert first.direction() == "shrinks" and first.direction(noise=0.05) == "unchanged within noise"
    assert changes[2].direction() == "shrinks" and second.direction() == "shrinks"
    grows = sweep.SpreadChange("width", ("a", 1, 1), ("a", 2, 1), 0.01, 0.03)
    assert grows.direction(noise=0.01) == "grows"
    with pytest.raises(ValueError, match="non-negative"):
        grows.direction(noise=-1)


def test_in_terminal_phase_reads_the_last_clean_training_accuracy():
    def result(*accs):
        return {"epochs": [{"clean_train_acc": a} for a in accs]}

    assert sweep.in_terminal_phase(result(0.5, sweep.TERMINAL_PHASE_TRAIN_ACC))
    assert not sweep.in_terminal_phase(result(1.0, 0.994))


def test_group_results_sorts_and_keeps_order():
    results = [_synthetic_result("resnet18", w, 10, "ce", s, 0.5) for w in (1.0, 0.25) for s in (1, 0)]
    groups = sweep.group_results(results, ("width",))
    assert list(groups) == [(0.25,), (1.0,)]
    assert [r["config"]["seed"] for r in groups[(0.25,)]] == [1, 0]


def test_load_results_names_the_grid(tmp_path):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "g.json", tree, grid={"epochs": [1, 2], "loss": ["ce"]})
    out = tmp_path / "res"
    sweep.run_protocol(str(proto), results_dir=out, progress=False, log=lambda m: None)
    loaded = sweep.load_results(str(proto), results_dir=out)
    assert [(r["run"], r["grid"]) for r in loaded] == [("resnet18-w0.0625-e1-ce-s0", {"epochs": 1}),
                                                      ("resnet18-w0.0625-e2-ce-s0", {"epochs": 2})]
