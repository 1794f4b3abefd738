"""Fault injection: a careless or hostile user gets one clear line, a non-zero exit, and never a
lost or half-written result (issue: nothing silently wrong, nothing lost)."""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny_data import make_image_folder

from ncrepro import UFMProblem, _io, theory, ufm
from ncrepro import train as train_mod
from ncrepro.train import TrainConfig, checkpoint_path, main, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path):
    return make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)


def args(tree, out, *extra):
    return ["--data", str(tree), "--width", "0.0625", "--epochs", "2", "--batch-size", "16", "--val-size", "8",
            "--device", "cpu", "--no-progress", "--out", str(out), *extra]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


# ---------------------------------------------------------------------------------------------
# Outputs are checked before any training


def test_out_is_a_folder(tree, tmp_path, capsys, monkeypatch):
    trained = []
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: trained.append(1))
    (tmp_path / "dir.json").mkdir()
    assert main(args(tree, tmp_path / "dir.json")) == 2
    assert "is a folder" in one_line_error(capsys) and not trained


def test_out_parent_is_a_file(tree, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(args(tree, tmp_path / "file" / "run.json")) == 2
    assert "is a file" in one_line_error(capsys)


def test_out_folder_not_writable(tree, capsys):
    # /proc refuses new folders even to root (chmod would not stop root).
    assert main(args(tree, "/proc/ncrepro-test/run.json")) == 2
    assert "cannot write the result there" in one_line_error(capsys)


def test_out_of_another_config_is_never_overwritten(tree, tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main(args(tree, out)) == 0
    first = out.read_text()
    capsys.readouterr()
    assert main(args(tree, out, "--lr", "0.05")) == 2
    err = one_line_error(capsys)
    assert "another configuration (lr)" in err and "--overwrite" in err and out.read_text() == first
    # The same configuration is already finished: nothing to do.
    assert main(args(tree, out)) == 0
    assert "already finished" in capsys.readouterr().out and out.read_text() == first
    # --overwrite is the explicit way to replace it.
    assert main(args(tree, out, "--lr", "0.05", "--overwrite")) == 0
    assert json.loads(out.read_text())["config"]["lr"] == 0.05


@pytest.mark.parametrize("content", [b"[]", b'{"config": {}}', b"\xff\xfe\x00", b"{truncated"])
def test_out_holding_something_else_is_refused(tree, tmp_path, capsys, content):
    out = tmp_path / "run.json"
    out.write_bytes(content)
    assert main(args(tree, out)) == 2
    err = one_line_error(capsys)
    assert str(out) in err and "--overwrite" in err and out.read_bytes() == content


# ---------------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.parametrize("extra, message", [
    (["--device", "foo"], "device must be auto, cpu, cuda or cuda:N"),
    (["--lr", "inf"], "lr must be a finite number"),
    (["--weight-decay", "inf"], "weight-decay must be a finite number"),
    (["--momentum", "nan"], "momentum"),
    (["--train-subset", "0"], "expected a positive integer or 'all'"),
    (["--loss", "hinge"], "invalid choice"),
    (["--device", "meta"], "device must be auto, cpu, cuda or cuda:N"),
    (["--device", "mps"], "device must be auto, cpu, cuda or cuda:N"),
    (["--width", "1e308"], "width must be at most"),
    (["--width", "64"], "width must be at most"),
    (["--width", "0.001"], "width must be at least 1/128"),
    (["--seed", str(2 ** 63)], "seed must be an integer in [0, 2^63)"),
    (["--val-size", "31"], "--val-size 31 leaves no training image of class"),
    (["--val-size", "100000"], "--val-size must lie in"),
    (["--split", "official"], "--split official needs a torchvision CIFAR root"),
])
def test_bad_arguments_one_line(tree, tmp_path, capsys, extra, message):
    out = tmp_path / "run.json"
    code = main(args(tree, out, *extra))
    assert code == 2 and message in one_line_error(capsys) and not out.exists()


def test_download_without_network(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", offline)
    out = tmp_path / "run.json"
    code = main(["--data", f"cifar10:{tmp_path / 'cifar'}", "--download", "--device", "cpu", "--out", str(out)])
    err = one_line_error(capsys)
    assert code == 2 and "could not download cifar10" in err and "offline" in err


# ---------------------------------------------------------------------------------------------
# Unreadable checkpoints


@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "wrong-shape", "not-a-checkpoint"])
def test_bad_checkpoint_on_resume(tree, tmp_path, capsys, damage):
    out = tmp_path / "run.json"
    cfg = dict(data=str(tree), width=0.0625, epochs=2, batch_size=16, val_size=8, device="cpu")
    ckpt = checkpoint_path(out)
    if damage in ("truncated", "wrong-shape"):
        train(TrainConfig(**{**cfg, "epochs": 1}), out, progress=False)
        out.unlink()
        if damage == "truncated":
            ckpt.write_bytes(ckpt.read_bytes()[:1000])
        else:
            state = torch.load(ckpt, weights_only=True)
            state["config"]["epochs"] = 2
            state["model"]["classifier.weight"] = torch.zeros(3, 3)
            torch.save(state, ckpt)
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "random":
        ckpt.write_bytes(os.urandom(4096))
    else:
        torch.save({"weights": torch.zeros(2)}, ckpt)
    assert main(args(tree, out, "--resume")) == 2
    err = one_line_error(capsys)
    assert str(ckpt) in err and ("delete it" in err) and not out.exists()


# ---------------------------------------------------------------------------------------------
# Writes that fail, and writes that were killed


def test_disk_full_keeps_the_last_good_checkpoint(tree, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run.json"
    real_save = _io.atomic_torch_save
    calls = {"n": 0}

    def full_disk(obj, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path)

    monkeypatch.setattr(_io, "atomic_torch_save", full_disk)
    assert main(args(tree, out)) == 2
    err = one_line_error(capsys)
    assert "could not write the checkpoint (No space left on device)" in err and "kept" in err
    assert not out.exists() and no_temporaries(tmp_path)
    state = torch.load(checkpoint_path(out), weights_only=True)
    assert len(state["history"]) == 1  # epoch 1 survives; --resume continues from it
    monkeypatch.setattr(_io, "atomic_torch_save", real_save)
    assert main(args(tree, out, "--resume")) == 0 and out.exists()


def test_leftover_temporaries_are_removed(tree, tmp_path):
    out = tmp_path / "run.json"
    stale = [tmp_path / ".run.json.abc123.tmp", tmp_path / ".run.ckpt.pt.xyz789.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    keep = tmp_path / ".other.json.abc.tmp"
    keep.write_bytes(b"someone else's")
    assert main(args(tree, out)) == 0
    assert not any(p.exists() for p in stale) and keep.exists()


@pytest.mark.parametrize("target", ["checkpoint", "result"])
def test_kill_during_a_write_then_resume_is_exact(tree, tmp_path, target):
    """SIGKILL while the checkpoint or the result is being written: the resumed run ends with the
    numbers of an uninterrupted one, and no temporary file is left."""
    full = tmp_path / "full.json"
    assert main(args(tree, full)) == 0
    out = tmp_path / "cut.json"
    # A child process that blocks inside the chosen write, so the test can kill it there. It
    # trains on this process's thread count: CPU sums depend on it, and OMP_NUM_THREADS in the
    # environment would otherwise give the child another one than conftest gives this process.
    script = f"""
import sys, time
import torch
torch.set_num_threads({torch.get_num_threads()})
from ncrepro import _io
from ncrepro.train import main
real = _io.atomic_torch_save if {target!r} == "checkpoint" else _io.atomic_write_bytes
calls = {{"n": 0}}
def stall(*a, **k):
    calls["n"] += 1
    if calls["n"] == (2 if {target!r} == "checkpoint" else 1):
        import pathlib
        path = pathlib.Path(a[1] if {target!r} == "checkpoint" else a[0])
        tmp = path.parent / f".{{path.name}}.killed.tmp"
        tmp.write_bytes(b"half")
        print("IN-WRITE", flush=True)
        time.sleep(600)
    return real(*a, **k)
if {target!r} == "checkpoint":
    _io.atomic_torch_save = stall
else:
    _io.atomic_write_bytes = stall
sys.exit(main({args(tree, out)!r}))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        while line and "IN-WRITE" not in line:
            line = proc.stdout.readline()
        assert "IN-WRITE" in line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert list(tmp_path.glob(".*killed.tmp"))
    assert main(args(tree, out, "--resume")) == 0
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(json.loads(out.read_text())["epochs"]) == strip(json.loads(full.read_text())["epochs"])
    assert no_temporaries(tmp_path)


# ---------------------------------------------------------------------------------------------
# Library edges


SMALL = UFMProblem(K=3, n=2, d=3, lambda_W=1e-2, lambda_H=1e-2)


def test_ufm_refuses_a_start_at_the_origin():
    with pytest.raises(ValueError, match="init_scale must be a finite number > 0"):
        ufm.solve("ce", SMALL, init_scale=0)


def test_gradient_descent_refuses_infinite_steps_and_reports_divergence():
    with pytest.raises(ValueError, match="finite lr"):
        ufm.gradient_descent("ce", SMALL, lr=float("inf"))
    with pytest.raises(ValueError, match="diverged"):
        ufm.gradient_descent("mse", SMALL, lr=50.0, steps=200)


def test_tiny_weight_decays_give_the_right_optimum():
    # c0 = 9 * sqrt(5) * 1e-300: the CE margin is log((K-1)(1 - c0)/c0), about 690.
    opt = theory.global_minimizer("ce", UFMProblem(K=10, n=5, lambda_W=1e-300, lambda_H=1e-300))
    c0 = 9 * 5 ** 0.5 * 1e-300
    assert opt["c0"] == pytest.approx(c0, rel=1e-14)
    assert opt["margin"] == pytest.approx(float(__import__("math").log(9 * (1 - c0) / c0)), rel=1e-14)
    # Subnormal decays still give the optimum (to the precision subnormals carry).
    tiny = theory.global_minimizer("ce", UFMProblem(K=10, n=5, lambda_W=1e-320, lambda_H=1e-320))
    math = __import__("math")
    assert tiny["margin"] == pytest.approx(math.log(9) - math.log(9 * 5 ** 0.5 * 1e-320), rel=1e-6)
    # A ratio c = sqrt(lambda_W / (n lambda_H)) beyond float64 is refused.
    with pytest.raises(ValueError, match="not representable"):
        theory.global_minimizer("ce", UFMProblem(K=10, n=5, lambda_W=1e300, lambda_H=5e-324))


# --- one writer per result, nothing silently dropped (issue 20, items 1-3) --------------------


def test_a_second_trainer_of_the_same_out_is_refused(tree, tmp_path, capsys):
    from ncrepro.locks import RunLock

    out = tmp_path / "r.json"
    with RunLock(out):  # another process training this run holds its lock
        assert main(args(tree, out)) == 2
    err = one_line_error(capsys)
    assert "another process is training this run" in err and str(os.getpid()) in err
    assert not out.exists()


def test_rerun_without_resume_never_discards_a_checkpoint(tree, tmp_path, capsys):
    out = tmp_path / "r.json"
    config = TrainConfig(data=str(tree), width=0.0625, epochs=3, batch_size=16, val_size=8, device="cpu")
    with pytest.raises(train_mod.DeadlineReached):
        train(config, out, progress=False, log=lambda m: None, deadline=0.0)
    ckpt = checkpoint_path(out)
    before = ckpt.read_bytes()
    assert main(args(tree, out, "--epochs", "3")) == 2
    err = one_line_error(capsys)
    assert "--resume" in err and "--overwrite" in err
    assert ckpt.read_bytes() == before  # untouched
    assert main(args(tree, out, "--epochs", "3", "--overwrite")) == 0  # explicitly: start over
    assert json.loads(out.read_text())["epochs"][-1]["epoch"] == 3


def test_a_result_that_appears_while_training_is_not_replaced(tree, tmp_path):
    out = tmp_path / "r.json"
    config = TrainConfig(data=str(tree), width=0.0625, epochs=2, batch_size=16, val_size=8, device="cpu")
    intruder = {"written": "by another process"}

    def log(message):  # after the first epoch, someone else writes a result where ours goes
        if not out.exists():
            out.write_text(json.dumps(intruder))

    with pytest.raises(ValueError, match="another result was written there while this run trained"):
        train(config, out, progress=False, log=log)
    assert json.loads(out.read_text()) == intruder
    assert checkpoint_path(out).exists()  # the run's work is kept


def test_a_failed_checkpoint_write_is_one_line(tree, tmp_path, monkeypatch, capsys):
    """torch.save reports a full disk as a RuntimeError, not an OSError."""
    def full(obj, path):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(_io, "atomic_torch_save", full)
    assert main(args(tree, tmp_path / "r.json")) == 2
    assert "could not write the checkpoint" in one_line_error(capsys)


def test_ignored_hyperparameters_are_named(tree, tmp_path, capsys):
    assert main(args(tree, tmp_path / "r.json", "--epochs", "1", "--loss", "ce", "--alpha", "0.3")) == 0
    assert "--alpha is ignored with --loss ce" in capsys.readouterr().err


def test_a_sweep_survives_a_diverging_run(tree, tmp_path, capsys):
    from ncrepro import cluster, protocol, sweep

    spec = tmp_path / "mixed.json"
    spec.write_text(json.dumps({
        "name": "mixed", "base": {"data": str(tree), "width": 0.0625, "epochs": 2, "batch_size": 16, "val_size": 8,
                                  "device": "cpu", "loss": "mse"},
        "grid": {"mse_scale": [1e30, 1.0]}}))
    out = tmp_path / "res"
    assert sweep.main([str(spec), "--results-dir", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "diverged in epoch 1" in captured.out and "1 run(s) failed" in captured.err
    states = dict(cluster.run_states(protocol.load_protocol(str(spec)), out))
    bad = [s for s in states.values() if s.startswith("failed")]
    assert len(bad) == 1 and "diverged" in bad[0] and list(states.values()).count("done") == 1
    assert sweep.main([str(spec), "--results-dir", str(out), "--list"]) == 0
    assert "failed (training diverged" in capsys.readouterr().out


def test_a_closed_pipe_is_not_a_traceback():
    from ncrepro._cli import run_guarded

    def action():
        raise BrokenPipeError(32, "Broken pipe")

    assert run_guarded("prog", action, "interrupted") == 0
