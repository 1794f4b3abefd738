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
    report = sweep.run_protocol(str(proto), results_dir=out, progress=False, log=logs.append)
    results = report.results
    assert report.done == ["resnet18-w0.0625-e2-ce-s0", "resnet18-w0.0625-e2-mse-M15-s0"]
    assert [r["config"]["loss"] for r in results] == ["ce", "mse"]
    assert sorted(p.name for p in out.glob("*.json")) == ["resnet18-w0.0625-e2-ce-s0.json", "resnet18-w0.0625-e2-mse-M15-s0.json"]
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
