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
    # A child process that blocks inside the chosen write, so the test can kill it there.
    script = f"""
import sys, time
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
    assert tiny["margin"] == pytest.approx(__import__("math").log(9 / (9 * 5 ** 0.5 * 1e-320)), rel=1e-6)
    # A ratio c = sqrt(lambda_W / (n lambda_H)) beyond float64 is refused.
    with pytest.raises(ValueError, match="not representable"):
        theory.global_minimizer("ce", UFMProblem(K=10, n=5, lambda_W=1e300, lambda_H=5e-324))
