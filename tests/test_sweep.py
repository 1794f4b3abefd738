import json

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
    results = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append)
    assert [r["config"]["loss"] for r in results] == ["ce", "mse"]
    assert sorted(p.name for p in out.glob("*.json")) == ["resnet18-w0.0625-e2-ce-s0.json", "resnet18-w0.0625-e2-mse-M15-s0.json"]
    assert "summary" in results[0] and "NC1" in logs[-1]
    # A second run skips both; an interrupted run (result gone, checkpoint kept) resumes.
    (out / "resnet18-w0.0625-e2-mse-M15-s0.json").unlink()
    logs.clear()
    again = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append)
    assert "finished earlier, skipped" in logs[0] and "resuming" in logs[1]
    assert again[1]["epochs"][-1]["train_loss"] == results[1]["epochs"][-1]["train_loss"]
    assert checkpoint_path(out / "resnet18-w0.0625-e2-mse-M15-s0.json").exists()


def test_shipped_protocols_load():
    for name in ("book-cpu", "book-gpu", "paper-cifar10", "smoke"):
        proto = sweep.load_protocol(name)
        assert sweep.protocol_runs(proto)
    assert len(sweep.protocol_runs(sweep.load_protocol("paper-cifar10"))) == 4 * 4 * 4 * 3


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.write_text("{not json"), "not valid JSON"),
    (lambda p: p.write_text(json.dumps({"name": "x", "base": {}, "grid": {}, "extra": 1})), "unknown keys"),
    (lambda p: p.write_text(json.dumps({"name": "x", "grid": {}})), "missing required key 'base'"),
    (lambda p: p.write_text(json.dumps({"name": "x", "base": {"lossy": 1}, "grid": {}})), "unknown setting"),
    (lambda p: p.write_text(json.dumps({"name": "x", "base": {}, "grid": {"loss": "ce"}})), "non-empty list"),
    (lambda p: p.write_text(json.dumps({"name": "x", "base": {"alpha": 2.0}, "grid": {"loss": ["ls"]}})), r"\[0, 1\)"),
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
