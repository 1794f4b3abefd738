import dataclasses
import json
import re

import pytest

from ncrepro import protocol, sweep


def test_shipped_protocols_load():
    for name in ("book-cpu", "book-cpu-narrow", "cifar10-cpu", "cifar10-tpt", "cifar10-tpt-fp32",
                 "cifar10-tpt-fp32-wide", "book-gpu",
                 "paper-cifar10", "smoke"):
        proto = protocol.load_protocol(name)
        assert protocol.protocol_runs(proto)
    assert len(protocol.protocol_runs(protocol.load_protocol("paper-cifar10"))) == 4 * 4 * 4 * 3


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
        protocol.load_protocol(str(path))


def test_unknown_protocol_name_and_cli(capsys):
    with pytest.raises(ValueError, match="known protocols"):
        protocol.load_protocol("no-such-protocol")
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
        protocol.load_protocol(str(path))


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", ""])
def test_protocol_names_are_plain(tmp_path, name):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": name, "base": {}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match=r"\$\.name"):
        protocol.load_protocol(str(path))


def test_protocol_name_matches_its_file_anywhere(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "other", "base": {}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match="does not match the file name"):
        protocol.load_protocol(str(path))


def test_threads_and_non_numbers(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"name": "t", "threads": -1, "base": {}, "grid": {"loss": ["ce"]}}))
    with pytest.raises(ValueError, match="-1 is less than the minimum of 1"):
        protocol.load_protocol(str(path))
    path.write_text('{"name": "t", "base": {"lr": Infinity}, "grid": {"loss": ["ce"]}}')
    with pytest.raises(ValueError, match="Infinity is not a number JSON allows"):
        protocol.load_protocol(str(path))


def test_schema_lists_every_train_setting():
    import dataclasses

    from ncrepro.train import TrainConfig
    schema = json.loads(protocol.SCHEMA_PATH.read_text())
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
        protocol.load_protocol(str(path))
    assert protocol.load_protocol("cifar10-cpu")["name"] == "cifar10-cpu"


def test_run_names_cover_every_varying_setting(tmp_path):
    path = tmp_path / "wd.json"
    path.write_text(json.dumps({"name": "wd", "base": {"arch": "resnet18"},
                                "grid": {"weight_decay": [5e-4, 1e-4], "augment": [True, False], "loss": ["ce"]}}))
    names = [n for n, _ in protocol.protocol_runs(protocol.load_protocol(str(path)))]
    assert names == ["resnet18-w1-e10-ce-s0-noaug-wd0.0005"[:0] + "resnet18-w1-e10-ce-s0-aug-wd0.0005",
                     "resnet18-w1-e10-ce-s0-noaug-wd0.0005", "resnet18-w1-e10-ce-s0-aug-wd0.0001",
                     "resnet18-w1-e10-ce-s0-noaug-wd0.0001"]
    # Values that print alike get a hash of the whole configuration as tie breaker.
    path.write_text(json.dumps({"name": "wd", "base": {}, "grid": {"lr": [0.1, 0.1000000001]}}))
    names = [n for n, _ in protocol.protocol_runs(protocol.load_protocol(str(path)))]
    assert len(set(names)) == 2 and all(re.search(r"-lr0\.1-h[0-9a-f]{8}$", n) for n in names)
    # Two grid points that are the same run are refused when the protocol loads.
    path.write_text(json.dumps({"name": "wd", "base": {}, "grid": [{"lr": [0.1]}, {"lr": [0.1]}]}))
    with pytest.raises(ValueError, match="grid points 1 and 2 are the same run"):
        protocol.load_protocol(str(path))


def test_coupled_axes_blocks_and_order(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({
        "name": "c", "base": {},
        "grid": [{"width": [0.5, 1.0], "budget": [{"epochs": 2, "eval_every": 1}, {"epochs": 4, "eval_every": 2}]},
                 {"arch": ["wrn50"], "epochs": [4]}],
        "order": [{"epochs": 4, "width": 1.0}, {"arch": "wrn50"}]}))
    proto = protocol.load_protocol(str(path))
    grid = [(c.arch, c.width, c.epochs, c.eval_every) for _, c in protocol.protocol_runs(proto)]
    assert grid == [("resnet18", 0.5, 2, 1), ("resnet18", 0.5, 4, 2), ("resnet18", 1.0, 2, 1),
                    ("resnet18", 1.0, 4, 2), ("wrn50", 1.0, 4, 1)]
    ordered = [(c.arch, c.width, c.epochs) for _, c in protocol.ordered_runs(proto)]
    assert ordered == [("resnet18", 1.0, 4), ("wrn50", 1.0, 4), ("resnet18", 0.5, 2), ("resnet18", 0.5, 4),
                       ("resnet18", 1.0, 2)]
    path.write_text(json.dumps({"name": "c", "base": {}, "grid": {"epochs": [1], "b": [{"epochs": 2}]}}))
    with pytest.raises(ValueError, match="given by two grid axes"):
        protocol.load_protocol(str(path))




def test_terminal_phase_protocol_is_the_issue_grid():
    """cifar10-tpt: the full 45k split without augmentation, the paper's optimiser, four losses,
    width 1/8 with seeds 0-2 and width 1/4 with seed 0 (16 runs), at least ten evaluations per
    run, in the priority order the book needs (width 1/8 seed 0, then width 1/4, then seeds)."""
    proto = protocol.load_protocol("cifar10-tpt")
    runs = protocol.ordered_runs(proto)
    configs = [c for _, c in runs]
    assert len(runs) == 16
    assert all(not c.augment and c.train_subset is None and c.val_size == 5000 for c in configs)
    assert all((c.lr, c.momentum, c.weight_decay, c.batch_size) == (0.1, 0.9, 5e-4, 128) for c in configs)
    assert all(c.epochs // c.eval_every >= 10 for c in configs)
    assert sorted({(c.width, c.seed) for c in configs}) == [(0.125, 0), (0.125, 1), (0.125, 2), (0.25, 0)]
    assert {c.loss for c in configs} == {"ce", "ls", "fl", "mse"}
    assert [(c.width, c.seed) for c in configs[:8]] == [(0.125, 0)] * 4 + [(0.25, 0)] * 4


def test_the_precision_control_twins_the_terminal_phase_runs_at_width_one_eighth():
    """cifar10-tpt-fp32 holds the runs of cifar10-tpt at width 1/8 with seeds 0, 1 and 2, equal
    in every setting but the precision (so that an edit of one protocol and not the other fails
    here), MSE first: the loss whose bfloat16 runs do not fit; then MSE with seed 1 before the
    other losses, MSE's only pair of seeds at one precision; seed 2 last, in the same order."""
    control = protocol.ordered_runs(protocol.load_protocol("cifar10-tpt-fp32"))
    main = {(c.loss, c.seed): c for _, c in protocol.protocol_runs(protocol.load_protocol("cifar10-tpt"))
            if c.width == 0.125}
    assert [(c.loss, c.seed) for _, c in control] == [("mse", 0), ("ce", 0), ("fl", 0), ("ls", 0),
                                                   ("mse", 1), ("ce", 1), ("ls", 1), ("fl", 1),
                                                   ("mse", 2), ("ce", 2), ("ls", 2), ("fl", 2)]
    for _, config in control:
        assert config.precision == "fp32" and main[config.loss, config.seed].precision == "bf16"
        twin = dataclasses.replace(config, precision="bf16")
        assert protocol.run_identity(twin) == protocol.run_identity(main[config.loss, config.seed])


def test_the_wide_float32_set_gives_width_one_quarter_seeds_seed_by_seed():
    """cifar10-tpt-fp32-wide: the four losses at width 1/4 with seeds 0, 1 and 2 in float32, seed
    by seed with MSE (the loss that does not fit at width 1/8) first at each, so that two seeds of
    every loss, what the width's comparisons need, come after eight runs; its seed 0 runs are the
    float32 twins of cifar10-tpt's width-1/4 runs, equal in every other setting."""
    wide = protocol.ordered_runs(protocol.load_protocol("cifar10-tpt-fp32-wide"))
    assert [(c.loss, c.seed) for _, c in wide] == [("mse", 0), ("ce", 0), ("ls", 0), ("fl", 0),
                                                ("mse", 1), ("ce", 1), ("ls", 1), ("fl", 1),
                                                ("mse", 2), ("ce", 2), ("ls", 2), ("fl", 2)]
    main = {c.loss: c for _, c in protocol.protocol_runs(protocol.load_protocol("cifar10-tpt"))
            if c.width == 0.25}
    for _, config in wide:
        assert config.width == 0.25 and config.precision == "fp32"
        twin = dataclasses.replace(config, precision="bf16", seed=0)
        assert protocol.run_identity(twin) == protocol.run_identity(main[config.loss])


def test_grid_text_describes_the_terminal_phase_grid_by_width():
    # The real-networks chapter says what the terminal-phase set holds once finished from this.
    text = protocol.grid_text(protocol.load_protocol("cifar10-tpt"))
    assert text == "the four losses at width 1/8 with seeds 0, 1 and 2, and at width 1/4 with seed 0"
    assert protocol.grid_text(protocol.load_protocol("gpu-smoke")) == "CE and MSE at width 1/16 with seed 0"
