import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _tiny_data import make_image_folder

from ncrepro import train as train_mod
from ncrepro.train import TrainConfig, checkpoint_path, lr_at_epoch, main, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path):
    return make_image_folder(tmp_path / "tree", train_per_class=16, test_per_class=4)


def tiny_config(tree, **kw):
    base = dict(data=str(tree), arch="resnet18", width=0.0625, epochs=3, batch_size=16, val_size=8,
                device="cpu", loss="ls", alpha=0.1)
    return TrainConfig(**{**base, **kw})


def strip_times(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_lr_schedule_steps_after_the_milestones():
    cfg = TrainConfig(epochs=7, lr=0.1)
    lrs = [lr_at_epoch(e, cfg) for e in range(7)]
    # milestones 3 and 5: epochs 0-2 at 0.1, 3-4 at 0.01, 5-6 at 0.001 (the official code decays one epoch early)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_result_json_is_complete(tree, tmp_path):
    out = tmp_path / "run.json"
    result = train(tiny_config(tree), out, progress=False)
    saved = json.loads(out.read_text())
    assert saved["config"]["loss"] == "ls" and saved["config"]["alpha"] == 0.1 and saved["config"]["gamma"] is None
    for key in ("git_commit", "torch", "device", "started", "wall_seconds", "dataset"):
        assert key in saved["provenance"]
    assert len(saved["epochs"]) == 3
    for r in saved["epochs"]:
        for key in ("epoch", "lr", "train_loss", "train_acc", "val_acc", "test_acc", "nc1", "nc2", "nc3", "nc4",
                    "bias_gap", "seconds"):
            assert key in r
        for key in ("train_acc", "val_acc", "test_acc"):
            assert 0.0 <= r[key] <= 1.0
    assert result["summary"]["best_val_epoch"] in (1, 2, 3)
    assert checkpoint_path(out).exists() and not list(tmp_path.glob(".*tmp"))


def test_same_seed_same_numbers(tree, tmp_path):
    a = train(tiny_config(tree, epochs=2), tmp_path / "a.json", progress=False)
    b = train(tiny_config(tree, epochs=2), tmp_path / "b.json", progress=False)
    assert strip_times(a["epochs"]) == strip_times(b["epochs"])


def test_interrupted_run_resumes_to_identical_numbers(tree, tmp_path, monkeypatch):
    full = train(tiny_config(tree), tmp_path / "full.json", progress=False)
    out = tmp_path / "cut.json"
    original = train_mod._Trainer.train_epoch

    def dies_in_epoch_two(self, epoch, progress):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch, progress)

    monkeypatch.setattr(train_mod._Trainer, "train_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tree), out, progress=False)
    assert not out.exists() and checkpoint_path(out).exists()
    monkeypatch.setattr(train_mod._Trainer, "train_epoch", original)
    resumed = train(tiny_config(tree), out, resume=True, progress=False)
    assert strip_times(resumed["epochs"]) == strip_times(full["epochs"])


def test_sigkill_during_second_epoch_then_resume(tree, tmp_path):
    out = tmp_path / "killed.json"
    args = [sys.executable, "-m", "ncrepro.train", "--data", str(tree), "--arch", "resnet18", "--width", "0.0625",
            "--epochs", "3", "--batch-size", "8", "--val-size", "8", "--loss", "fl", "--device", "cpu",
            "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = checkpoint_path(out)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not out.exists()
    subprocess.run(args + ["--resume"], cwd=ROOT, env=env, check=True, capture_output=True)
    reference = tmp_path / "reference.json"
    subprocess.run([a if a != str(out) else str(reference) for a in args], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    resumed, full = json.loads(out.read_text()), json.loads(reference.read_text())
    assert strip_times(resumed["epochs"]) == strip_times(full["epochs"])


def test_resume_refuses_a_checkpoint_with_other_settings(tree, tmp_path):
    out = tmp_path / "run.json"
    train(tiny_config(tree, epochs=1), out, progress=False)
    with pytest.raises(ValueError, match="different settings"):
        train(tiny_config(tree, epochs=1, alpha=0.2), out, resume=True, progress=False)


@pytest.mark.parametrize("loss", ["ce", "fl", "mse"])
def test_every_loss_and_the_official_scale_train(tree, tmp_path, loss):
    result = train(tiny_config(tree, loss=loss, epochs=1, loss_scale="official"), None, progress=False)
    assert result["epochs"][0]["train_loss"] > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--loss", "hinge"], "invalid choice"),
        (["--loss", "ls", "--alpha", "1.0"], "[0, 1)"),
        (["--loss", "fl", "--gamma", "-1"], ">= 0"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--width", "0"], "width must be a positive number"),
        (["--width", "-2"], "width must be a positive number"),
        (["--mse-scale", "0"], "> 0"),
    ],
)
def test_cli_refuses_bad_arguments(tree, tmp_path, capsys, extra, message):
    out = tmp_path / "bad.json"
    try:
        code = main(["--data", str(tree), "--val-size", "8", "--out", str(out), "--no-progress", *extra])
    except SystemExit as exit_:  # argparse's own refusals (an unknown --loss choice)
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and len(err.splitlines()) == 1
    assert not out.exists() and not checkpoint_path(out).exists()


def test_cli_missing_dataset(tmp_path, capsys):
    out = tmp_path / "bad.json"
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1 and not out.exists()



def test_settings_added_later_count_at_their_default():
    from ncrepro.train import differing_settings

    cfg = TrainConfig(loss="ls", epochs=5)
    stored = cfg.public()
    del stored["val_size"]              # a run made before --val-size existed
    stored["device"] = "cuda"           # the device never makes a run different
    assert differing_settings(stored, cfg) == []
    assert differing_settings(stored, TrainConfig(loss="ls", epochs=5, val_size=100)) == ["val_size"]
    assert differing_settings(stored, TrainConfig(loss="ls", epochs=6)) == ["epochs"]


def test_every_option_shows_its_help_and_default(capsys):
    import dataclasses

    from ncrepro.train import build_parser

    text = " ".join(build_parser().format_help().split())   # lines wrap at the terminal width
    actions = {a.dest: a for a in build_parser()._actions}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert actions[f.name].help and actions[f.name].help == f.metadata["help"], f.name
        assert actions[f.name].default == f.default, f.name
    assert "(default: True)" in text and "--no-augment" in text   # a boolean shows both forms
    assert "(default: mean)" in text


def test_measure_throughput_times_the_training_loop_and_charges_compiling_to_setup(tree):
    from ncrepro.data import load_dataset, make_splits

    # 160 training images less 8 for validation: 152 = 9 batches of 16 and a short one of 8, so
    # the short batch is among the untimed steps.
    train_set, test_set, desc = load_dataset(str(tree))
    splits = make_splits(train_set, test_set, desc, val_size=8)
    assert len(splits.train) % 16 == 8
    rate = train_mod.measure_throughput(tiny_config(tree), splits, steps=2, warmup=1)
    assert rate.train_images_per_s > 0 and rate.eval_images_per_s > 0 and rate.setup_seconds >= 0
    assert rate.compiled == "off"
    with pytest.raises(ValueError, match="at least 1"):
        train_mod.measure_throughput(tiny_config(tree), splits, steps=0)


def test_compiling_on_the_cpu_below_eight_channels_trains_uncompiled_and_says_so(tree, tmp_path, capsys):
    # torch.compile of ResNet18 at width 1/16 (4-channel convolutions) crashes the process on the
    # CPU in the compiled backward: such a run trains eagerly, and its result records why.
    out = tmp_path / "r.json"
    result = train(tiny_config(tree, epochs=1, compile="default"), out, progress=False, log=lambda m: None)
    assert result["provenance"]["compiled"].startswith("off (not compiled: on the CPU the compiled step crashes")
    assert "narrowest has 4" in capsys.readouterr().err


def test_compiled_step_keeps_compiling_past_torchs_recompile_limit(monkeypatch):
    # Past torch's recompile limit dynamo runs a function eagerly without failing: one process that
    # trained a fifth kind of network would have trained it uncompiled while its result said compiled.
    import torch
    import torch._dynamo.utils as dynamo_utils

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    try:
        # A new static shape per call stands in for a new kind of network: a recompile each time.
        for wrapped in (False, True):
            torch._dynamo.reset()
            dynamo_utils.counters.clear()
            compiled = torch.compile(lambda x: x * 2, backend="eager", dynamic=False)
            step = train_mod._within_recompile_limit(compiled) if wrapped else compiled
            for n in range(1, 5):
                assert torch.equal(step(torch.ones(n)), torch.full((n,), 2.0))
            assert dynamo_utils.counters["stats"]["unique_graphs"] == (4 if wrapped else 1)
        assert torch._dynamo.config.recompile_limit == 1  # only raised during the call
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize(("flags", "native"), [("avx2 avx512f avx512_bf16", True), ("avx2 amx_bf16", True),
                                               ("avx2 avx512f", False)])
def test_without_torchs_bf16_checks_the_cpu_flags_decide(monkeypatch, flags, native):
    # An older torch lacks torch.cpu's checks; then the CPU's own flags say whether bf16 is native.
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    monkeypatch.setattr(train_mod._io, "read_cpuinfo", lambda: f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
    assert train_mod.cpu_has_native_bf16() is native
    config = TrainConfig(precision="bf16", device="cpu")
    if not native:
        with pytest.raises(ValueError, match="no native bfloat16"):
            train_mod.training_precision(config)
    else:
        assert train_mod.training_precision(config) == "bf16"
