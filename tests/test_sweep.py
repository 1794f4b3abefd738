import json
import sys
import time
from pathlib import Path

import pytest
from _tiny_data import make_image_folder

from ncrepro import cluster, protocol, sweep
from ncrepro.train import DeadlineReached, checkpoint_path, train


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
    # A finished run's checkpoint is gone from the tracked in-progress folder.
    assert not list((out / "in-progress").glob("*.ckpt.pt"))
    # A second run skips both; an interrupted run (result gone, one epoch in its checkpoint) resumes
    # and ends where the uninterrupted one did.
    mse = out / "resnet18-w0.0625-e2-mse-M15-s0.json"
    mse.unlink()
    config = dict(protocol.protocol_runs(protocol.load_protocol(str(proto))))["resnet18-w0.0625-e2-mse-M15-s0"]
    with pytest.raises(DeadlineReached):
        train(config, mse, checkpoint=checkpoint_path(mse, in_progress=True), progress=False, log=lambda m: None,
              deadline=time.monotonic())
    assert checkpoint_path(mse, in_progress=True).exists() and not mse.exists()
    states = dict(cluster.run_states(protocol.load_protocol(str(proto)), out))
    assert states["resnet18-w0.0625-e2-mse-M15-s0"] == "partial (epoch 1 of 2)"
    logs.clear()
    again = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append)
    assert again.earlier == ["resnet18-w0.0625-e2-ce-s0"] and "resuming" in logs[0]
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(again.results[1]["epochs"]) == strip(results[1]["epochs"])
    assert not checkpoint_path(mse, in_progress=True).exists()


def test_sweep_never_replaces_another_configs_result(tmp_path):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"loss": ["ce"]})
    out = tmp_path / "results"
    out.mkdir()
    other = {"config": {"loss": "mse"}, "provenance": {"git_commit": "x", "device": "cpu", "torch": "t",
                                                        "dataset": {}}, "summary": {}, "epochs": [{"epoch": 1}]}
    (out / "resnet18-w0.0625-e2-ce-s0.json").write_text(json.dumps(other))
    # The run is reported as failed, with the reason, and its file is left alone.
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=lambda m: None)
    assert "holds a result with other settings" in report.failed["resnet18-w0.0625-e2-ce-s0"]
    assert json.loads((out / "resnet18-w0.0625-e2-ce-s0.json").read_text()) == other
    (out / "resnet18-w0.0625-e2-ce-s0.json").write_bytes(b"\xff\xfe not utf-8")
    assert sweep.main([str(proto), "--results-dir", str(out), "--no-progress"]) == 1
    assert (out / "resnet18-w0.0625-e2-ce-s0.json").read_bytes() == b"\xff\xfe not utf-8"


def test_results_folder_is_checked_before_training(tmp_path, capsys):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert sweep.main([str(proto), "--results-dir", str(blocker), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sweep.main([str(proto), "--results-dir", str(blocker / "sub"), "--no-progress"]) == 2
    assert "cannot write results" in capsys.readouterr().err


def test_a_cpu_without_bf16_is_refused_before_anything_trains(tmp_path, monkeypatch, capsys):
    """A bf16 protocol on a CPU without native bfloat16: --check and the sweep each say so in one
    line and exit non-zero, and nothing is trained or recorded as a run's failure; once the pending
    runs are done elsewhere, the same machine can still list and import them."""
    import ncrepro.train as train_mod

    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"loss": ["ce"]})
    data = json.loads(proto.read_text())
    data["base"]["precision"] = "bf16"
    proto.write_text(json.dumps(data))
    out = tmp_path / "results"
    monkeypatch.setattr(train_mod, "cpu_has_native_bf16", lambda: False)
    assert sweep.main([str(proto), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no native bfloat16" in err and "precision fp32" in err and len(err.splitlines()) == 1
    assert sweep.main([str(proto), "--results-dir", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot train resnet18-w0.0625-e2-ce-s0" in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.rglob("*"))
    # Once a run has its result, --check names the run this machine would train next.
    data["grid"]["seed"] = [0, 1]
    proto.write_text(json.dumps(data))
    out.mkdir(exist_ok=True)
    (out / "resnet18-w0.0625-e2-ce-s0.json").write_text("{}")
    assert sweep.main([str(proto), "--check", "--results-dir", str(out)]) == 2
    assert "cannot train resnet18-w0.0625-e2-ce-s1: " in capsys.readouterr().err
    # fp32 on the same machine is not affected.
    data["base"]["precision"] = "fp32"
    proto.write_text(json.dumps(data))
    assert sweep.main([str(proto), "--check"]) == 0


def measured_as(monkeypatch, train_images_per_s: float) -> None:
    """Every throughput measurement of the sweep returns this training speed (evaluation free)."""
    rate = sweep.Throughput(train_images_per_s=train_images_per_s, eval_images_per_s=1e9, setup_seconds=0.0,
                            compiled="off")
    monkeypatch.setattr(sweep, "measure_throughput", lambda config, splits: rate)


def test_budget_skips_what_does_not_fit_and_stops_at_epoch_boundaries(tmp_path, monkeypatch):
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"epochs": [6, 1], "loss": ["ce"]})
    out = tmp_path / "results"
    measured_as(monkeypatch, 1.0)
    logs = []
    # 24 training images at 1 image/s: the 6-epoch run needs ~160 s, the 1-epoch run ~26 s.
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append, budget_minutes=1.0)
    assert report.skipped == ["resnet18-w0.0625-e6-ce-s0"] and report.done == ["resnet18-w0.0625-e1-ce-s0"]
    assert not report.stopped_by_budget and "skipped, estimated" in "\n".join(logs)
    assert sorted(p.name for p in out.glob("*.json")) == ["resnet18-w0.0625-e1-ce-s0.json"]
    # A run slower than its estimate stops at an epoch boundary when the deadline comes.
    measured_as(monkeypatch, 1e9)
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
    assert checkpoint_path(out / "resnet18-w0.0625-e6-ce-s0.json", in_progress=True).exists()
    states = dict(cluster.run_states(protocol.load_protocol(str(proto)), out))
    assert states == {"resnet18-w0.0625-e6-ce-s0": "partial (epoch 2 of 6)", "resnet18-w0.0625-e1-ce-s0": "done"}


def test_budget_estimates_new_kinds_of_run_as_slow_as_finished_runs_were(tmp_path, monkeypatch):
    # A lent H200 ran whole epochs 1.1-1.4x slower than the steps timed before them, and two runs
    # that the measurement said would fit were stopped by the deadline, their work lost with the
    # machine. Once a run has finished, runs of kinds not yet finished are estimated that much longer.
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"width": [0.0625, 0.125], "loss": ["ce"]})
    out = tmp_path / "results"
    measured_as(monkeypatch, 1e4)
    # Each finished run reports 60 s of training, thousands of times its measured estimate: the
    # second kind, measured as fast, is estimated at 1.1 x 60 s and no longer fits the minute.
    monkeypatch.setattr(sweep, "training_seconds", lambda result: 60.0)
    logs = []
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append, budget_minutes=1.0)
    assert report.done == ["resnet18-w0.0625-e2-ce-s0"] and report.skipped == ["resnet18-w0.125-e2-ce-s0"]
    text = "\n".join(logs)
    assert "resnet18-w0.0625-e2-ce-s0 took" in text and "its measured estimate" in text
    assert "resnet18-w0.125-e2-ce-s0: skipped, estimated" in text
    # Without the slow finished run, the same measurement lets the second kind start.
    (out / "resnet18-w0.0625-e2-ce-s0.json").unlink()
    monkeypatch.setattr(sweep, "training_seconds", lambda result: 1e-3)
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append, budget_minutes=1.0)
    assert report.done == ["resnet18-w0.0625-e2-ce-s0", "resnet18-w0.125-e2-ce-s0"] and not report.skipped


def test_budget_does_not_measure_a_new_kind_too_near_the_deadline(tmp_path, monkeypatch):
    # On a lent H200 a sweep measured a new kind of run with 12 s of its budget left; the
    # measurement ran past the deadline and the command was stopped before it wrote its archive.
    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    proto = write_protocol(tmp_path / "tiny.json", tree, grid={"width": [0.0625, 0.125], "loss": ["ce"]})
    import ncrepro.train as train_mod

    for seconds_per_measurement, measured_kinds in [(25.0, 1), (10.0, 2)]:
        clock = {"t": 0.0}
        monkeypatch.setattr(sweep.time, "monotonic", lambda: clock["t"])
        monkeypatch.setattr(train_mod.time, "monotonic", lambda: clock["t"])
        rate = sweep.Throughput(train_images_per_s=1e6, eval_images_per_s=1e9, setup_seconds=0.0, compiled="off")

        def measure(config, splits, seconds=seconds_per_measurement):
            clock["t"] += seconds
            return rate

        monkeypatch.setattr(sweep, "measure_throughput", measure)
        out = tmp_path / f"results-{measured_kinds}"
        logs = []
        report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append, budget_minutes=1.0)
        text = "\n".join(logs)
        assert text.count("measured resnet18") == measured_kinds
        if measured_kinds == 1:
            # 35 s left, under twice the 25 s the first measurement took: skipped unmeasured.
            assert report.done == ["resnet18-w0.0625-e2-ce-s0"] and report.skipped == ["resnet18-w0.125-e2-ce-s0"]
            assert "0.6 min left is too little to measure resnet18 width 0.125" in text
        else:
            assert len(report.done) == 2 and not report.skipped


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
               PYTHON=sys.executable, COMPILE="off")
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
    # A bad COMPILE is refused by the environment check, before anything trains.
    bad = subprocess.run(["bash", "scripts/gpu-sweep.sh", str(proto), "1", "cpu"], cwd=root,
                         env=dict(env, COMPILE="bogus"), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice: 'bogus'" in bad.stdout
    assert "nothing was run" in bad.stderr and "starting" not in bad.stdout
    (tmp_path / "tree.npz").unlink()
    missing = subprocess.run(["bash", "scripts/gpu-sweep.sh", str(proto), "1", "cpu"], cwd=root, env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not found" in missing.stdout + missing.stderr




def test_committed_checkpoint_resumes_in_a_fresh_clone(tmp_path):
    """An unfinished run's checkpoint sits in the tracked in-progress folder (the project's
    .gitignore does not hide it): committed on one machine, cloned on another, the sweep there
    resumes it and ends bit for bit where an uninterrupted run does, recording both segments."""
    import shutil
    import subprocess

    tree = make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)
    spec = write_protocol(tmp_path / "moving.json", tree, grid={"loss": ["ls"]}, base={
        "data": str(tree), "arch": "resnet18", "width": 0.0625, "epochs": 3, "batch_size": 16, "val_size": 8,
        "device": "cpu"})
    reference = sweep.run_protocol(str(spec), results_dir=tmp_path / "straight", progress=False,
                                   log=lambda m: None).results[0]
    here = tmp_path / "here"
    here.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / ".gitignore", here / ".gitignore")
    out = here / "data" / "results" / "moving"
    name = "resnet18-w0.0625-e3-ls-a0.1-s0"
    config = dict(protocol.protocol_runs(protocol.load_protocol(str(spec))))[name]
    with pytest.raises(DeadlineReached):
        train(config, out / f"{name}.json", checkpoint=checkpoint_path(out / f"{name}.json", in_progress=True),
              progress=False, log=lambda m: None, deadline=time.monotonic())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(here)], check=True)
    subprocess.run([*git, "-C", str(here), "add", "."], check=True)
    subprocess.run([*git, "-C", str(here), "commit", "-qm", "partial"], check=True)
    tracked = subprocess.run(["git", "-C", str(here), "ls-files"], capture_output=True, text=True).stdout.split()
    assert f"data/results/moving/in-progress/{name}.ckpt.pt" in tracked
    there = tmp_path / "there"
    subprocess.run(["git", "clone", "-q", str(here), str(there)], check=True)
    logs = []
    report = sweep.run_protocol(str(spec), results_dir=there / "data" / "results" / "moving", progress=False,
                                log=logs.append)
    assert any("resuming" in line for line in logs)
    result = report.results[0]
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(result["epochs"]) == strip(reference["epochs"])
    machines = result["provenance"]["machines"]
    assert [(m["first_epoch"], m["last_epoch"]) for m in machines] == [(1, 1), (2, 3)]
    # Each session names its CPU's instruction set, where the CPU lists its flags (Linux).
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "flags" in cpuinfo.read_text():
        assert all(m["instruction_set"] for m in machines)
    assert not (there / "data" / "results" / "moving" / "in-progress" / f"{name}.ckpt.pt").exists()
