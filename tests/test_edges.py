"""Edges of the library and the command lines (issue 20, items 5-8): every file read is checked
field by field, errors come early and in the user's words, and the library answers its edge
cases clearly."""

import json
import os
import re
import stat
import sys

import numpy as np
import pytest
import torch
from _tiny_data import make_image_folder

from ncrepro import UFMProblem, get_loss, nc_metrics, sweep, theory, ufm
from ncrepro.data import load_dataset, pack_dataset, pack_info, split_indices
from ncrepro.data import main as data_main
from ncrepro.protocol import load_protocol
from ncrepro.results import in_terminal_phase, load_results
from ncrepro.train import TrainConfig, check_result, checkpoint_path, train


@pytest.fixture
def tree(tmp_path):
    return make_image_folder(tmp_path / "tree", train_per_class=8, test_per_class=2)


def _tiny(tree, **over):
    return TrainConfig(**{"data": str(tree), "width": 0.0625, "epochs": 1, "batch_size": 16, "val_size": 8,
                          "device": "cpu", **over})


def test_a_result_is_checked_field_by_field(tree, tmp_path):
    result = train(_tiny(tree), None, progress=False, log=lambda m: None)
    check_result(result, "ok")
    for path, value, words in ((("summary", "final_test_acc"), "0.9", "summary.final_test_acc"),
                               (("epochs", 0, "nc1"), "x", "epochs[0].nc1"),
                               (("epochs", 0, "epoch"), 7, "epochs[0] must be the record of epoch 1"),
                               (("provenance", "dataset", "test_size"), -3, "provenance.dataset.test_size"),
                               (("config", "width"), "wide", "config.width")):
        bad = json.loads(json.dumps(result))
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(ValueError, match=re.escape(f"malformed result: {words}")):
            check_result(bad, "f.json")


def test_a_damaged_result_file_is_named_by_the_readers(tree, tmp_path):
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps({"name": "p", "base": {"data": str(tree), "width": 0.0625, "epochs": 1,
                                                     "batch_size": 16, "val_size": 8, "device": "cpu"},
                                "grid": {"loss": ["ce"]}}))
    out = tmp_path / "res"
    sweep.run_protocol(str(spec), results_dir=out, progress=False, log=lambda m: None)
    path = out / "resnet18-w0.0625-e1-ce-s0.json"
    result = json.loads(path.read_text())
    result["summary"]["final_test_acc"] = "high"
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=f"{path.name}.*summary.final_test_acc"):
        load_results(load_protocol(str(spec)), results_dir=out)


def test_augmented_nc_results_still_say_whether_the_network_is_fitted(tree):
    result = train(_tiny(tree, nc_features="augmented"), None, progress=False, log=lambda m: None)
    last = result["epochs"][-1]
    assert last["clean_train_acc"] is not None and last["augmented_eval_train_acc"] is not None
    assert result["summary"]["final_clean_train_acc"] == last["clean_train_acc"]
    assert in_terminal_phase(result) in (True, False)


def test_a_crafted_checkpoint_is_refused(tree, tmp_path):
    out = tmp_path / "r.json"
    config = _tiny(tree, epochs=2)
    with pytest.raises(Exception):  # noqa: B017 - DeadlineReached
        train(config, out, progress=False, log=lambda m: None, deadline=0.0)
    ckpt = checkpoint_path(out)
    state = torch.load(ckpt, weights_only=True)
    for bad in ({**state, "history": state["history"] * 3}, {**state, "history": [{"epoch": 5}]},
                {**state, "elapsed": float("nan")}, {**state, "config": "everything"}):
        torch.save(bad, ckpt)
        with pytest.raises(ValueError, match="ncrepro checkpoint|history|elapsed|malformed"):
            train(config, out, resume=True, progress=False, log=lambda m: None)


def test_pack_checksum_covers_the_classes_and_labels_are_checked(tree, tmp_path, capsys):
    dest = tmp_path / "p.npz"
    pack_dataset(tree, dest)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o666 & ~_umask()  # not private to its owner
    meta = pack_info(dest)
    assert len(meta["classes"]) == 4
    # Rename a class inside the pack: the checksum no longer matches.
    with np.load(dest) as z:
        arrays = dict(z)
    edited = dict(meta, classes=list(reversed(meta["classes"])))
    arrays["meta"] = np.frombuffer(json.dumps(edited).encode(), dtype=np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_dataset(str(bad), cache_dir=None)
    # The command refuses to overwrite without being told.
    assert data_main(["pack", str(tree), str(dest)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert data_main(["pack", str(tree), str(dest), "--overwrite"]) == 0


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_official_split_is_the_official_code():
    """np.random.seed(1); np.random.shuffle(range(50000)): validation is the first 5,000."""
    state = np.random.get_state()
    try:
        np.random.seed(1)
        order = list(range(50000))
        np.random.shuffle(order)
    finally:
        np.random.set_state(state)
    train_idx, val_idx = split_indices(50000, 5000, "official")
    assert val_idx.tolist() == sorted(order[:5000]) and train_idx.tolist() == sorted(order[5000:])
    ours_train, ours_val = split_indices(50000, 5000)
    assert len(ours_val) == 5000 and set(ours_val.tolist()) != set(val_idx.tolist())


def test_sweep_command_line_refuses_unclear_requests(tmp_path, capsys):
    assert sweep.main(["smoke", "--list", "--summary"]) == 2
    assert "each print one report" in capsys.readouterr().err
    assert sweep.main(["smoke", "--lock-expiry-hours", "0"]) == 2
    assert sweep.main(["smoke", "--executor", "slurm", "--dry-run", "--slurm-time", "0"]) == 2
    assert "--slurm-time must be a positive integer" in capsys.readouterr().err
    assert sweep.main(["smoke", "--executor", "slurm", "--dry-run", "--slurm-extra", "mail=x\nrm -rf"]) == 2
    assert "newline" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert sweep.main(["smoke", "--executor", "local", "--devices", "cuda:0"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_provenance_names_the_package_version(tree):
    from ncrepro import __version__

    result = train(_tiny(tree), None, progress=False, log=lambda m: None)
    assert result["provenance"]["ncrepro"] == __version__


def test_usage_names_the_console_command(monkeypatch):
    from ncrepro.train import build_parser

    monkeypatch.setattr(sys, "argv", ["/venv/bin/ncrepro-train"])
    assert build_parser().prog == "ncrepro-train"
    monkeypatch.setattr(sys, "argv", ["/x/ncrepro/train.py"])
    assert build_parser().prog == "python -m ncrepro.train"


@pytest.mark.parametrize("gamma", [1e-6, 0.001, 0.01, 0.02])
def test_focal_convexity_limit_for_tiny_gamma(gamma):
    """As gamma -> 0 focal loss tends to cross entropy, convex for every K."""
    q_star, k_max = theory.focal_convexity_limit(gamma)
    assert q_star <= 1.0 and k_max > 10 ** 15


def test_nc_metrics_edges():
    rng = np.random.default_rng(1)
    H, y, W, b = rng.normal(size=(40, 5)), np.repeat(np.arange(4), 10), rng.normal(size=(4, 5)), rng.normal(size=4)
    base = nc_metrics(H, y, W, b)
    for scale, dtype in ((1e200, np.float64), (1e-300, np.float64), (1e30, np.float32)):
        m = nc_metrics((H * scale).astype(dtype), y, W, b * scale)
        for key in ("nc1", "nc2", "nc3", "nc4"):
            assert m[key] == pytest.approx(base[key], rel=1e-5), (scale, key)
        assert m["bias_gap"] == pytest.approx(base["bias_gap"] * scale, rel=1e-5)
    # Identical class means: Sigma_B = 0, its pseudo-inverse 0, so NC1 = 0 by the definition.
    assert nc_metrics(np.ones((20, 5)), np.repeat(np.arange(4), 5), W)["nc1"] == 0.0


@pytest.mark.parametrize("K", [float("inf"), float("nan"), 2.5, "ten"])
def test_ufm_problem_refuses_what_is_not_a_class_count(K):
    with pytest.raises(ValueError, match="K must be an integer"):
        UFMProblem(K=K, n=2, lambda_W=1e-3, lambda_H=1e-3)


def test_ufm_subnormal_decays_and_a_start_at_the_origin():
    # The smallest decays float64 holds still give a finite optimum (its margin, about 740).
    tiny = theory.global_minimizer("ce", UFMProblem(K=10, n=2, lambda_W=5e-324, lambda_H=5e-324))
    assert 700 < tiny["margin"] < 800
    problem = UFMProblem(K=3, n=2, d=4, lambda_W=1e-3, lambda_H=1e-3)
    with pytest.raises(ValueError, match="W = H = 0 is a critical point"):
        ufm.solve("ce", problem, init=np.zeros(3 * 4 + 6 * 4 + 3))


def test_losses_take_numpy_targets():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    for name in ("ce", "ls", "fl", "mse"):
        loss = get_loss(name)
        expected = float(loss(logits, torch.tensor([0, 1, 2, 0])))
        assert float(loss(logits, np.array([0, 1, 2, 0]))) == pytest.approx(expected)
    with pytest.raises(ValueError, match="integer class indices"):
        get_loss("ce")(logits, np.array([0.5, 1, 2, 0]))
    with pytest.raises(ValueError, match="logits must be a torch tensor"):
        get_loss("ce")(logits.numpy(), np.array([0, 1, 2, 0]))


def test_a_network_too_big_for_memory_is_refused_before_data_loads(tmp_path, monkeypatch):
    from ncrepro import train as train_mod

    monkeypatch.setattr(train_mod, "_available_memory", lambda: 2.0 ** 30)  # 1 GiB free
    with pytest.raises(ValueError, match="needs about .* GiB .* 1.0 GiB free"):
        train(TrainConfig(data=str(tmp_path / "no-data-needed"), width=4.0, device="cpu"), None, progress=False)


def test_pure_loss_functions_take_array_like_targets():
    from ncrepro.losses import cross_entropy, focal, label_smoothing, mse

    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    for fn in (cross_entropy, focal, label_smoothing, mse):
        expected = fn(logits, torch.tensor([0, 1, 2, 0]))
        assert torch.allclose(fn(logits, np.array([0, 1, 2, 0])), expected)
        assert torch.allclose(fn(logits, [0, 1, 2, 0]), expected)
        with pytest.raises(ValueError, match="integer class indices"):
            fn(logits, np.array([0.5, 1.0, 2.0, 0.0]))
        with pytest.raises(ValueError, match="logits must be a torch tensor"):
            fn(logits.numpy(), [0, 1, 2, 0])
