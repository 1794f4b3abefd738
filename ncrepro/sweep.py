"""Run a named protocol: a grid of training runs, resumable, one result JSON per run.

A protocol is a JSON file in ``protocols/`` (or any path)::

    {"name": "book-cpu",
     "description": "...",
     "base": {... TrainConfig fields shared by every run ...},
     "grid": {"loss": ["ce", "ls", "fl", "mse"], "width": [0.125, 0.25], "epochs": [30], "seed": [0]}}

``python -m ncrepro.sweep book-cpu`` trains every grid point in order, writing
``data/results/<name>/<run>.json``. Finished runs (a result whose config matches) are skipped;
an interrupted run continues from its checkpoint. A summary table is printed at the end.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import torch

from ._cli import OneLineParser, run_guarded
from ._io import REPO_ROOT
from .train import TrainConfig, checkpoint_path, differing_settings, train

__all__ = ["load_protocol", "protocol_runs", "run_protocol", "summary_table", "PROTOCOL_DIR", "RESULTS_DIR"]

PROTOCOL_DIR = REPO_ROOT / "protocols"
RESULTS_DIR = REPO_ROOT / "data" / "results"
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_TOP_KEYS = {"name", "description", "base", "grid", "threads", "notes"}


def _protocol_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return path
    return PROTOCOL_DIR / f"{name_or_path}.json"


def load_protocol(name_or_path: str) -> dict:
    """Read and check a protocol file; every grid point is validated before anything runs."""
    path = _protocol_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in PROTOCOL_DIR.glob("*.json"))
        raise ValueError(f"no protocol {name_or_path!r} (looked for {path}); known protocols: {', '.join(known)}")
    try:
        proto = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(proto, dict):
        raise ValueError(f"{path}: a protocol must be a JSON object")
    unknown = set(proto) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (allowed: {sorted(_TOP_KEYS)})")
    for key in ("name", "base", "grid"):
        if key not in proto:
            raise ValueError(f"{path}: missing required key {key!r}")
    if not isinstance(proto["base"], dict) or not isinstance(proto["grid"], dict):
        raise ValueError(f"{path}: 'base' and 'grid' must be objects")
    for section in ("base", "grid"):
        bad = set(proto[section]) - _FIELDS
        if bad:
            raise ValueError(f"{path}: unknown setting(s) {sorted(bad)} in {section!r}")
    for key, values in proto["grid"].items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: grid entry {key!r} must be a non-empty list")
    if str(proto["name"]) != path.stem and path.parent == PROTOCOL_DIR:
        raise ValueError(f"{path}: name {proto['name']!r} does not match the file name")
    proto["_path"] = str(path)
    for _, config in protocol_runs(proto):
        try:
            config.validate()
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return proto


def run_name(config: TrainConfig) -> str:
    hyper = {"ce": "", "ls": f"-a{config.alpha:g}", "fl": f"-g{config.gamma:g}", "mse": f"-M{config.mse_scale:g}"}
    return f"{config.arch}-w{config.width:g}-e{config.epochs}-{config.loss}{hyper[config.loss]}-s{config.seed}"


def protocol_runs(proto: dict) -> list[tuple[str, TrainConfig]]:
    keys = list(proto["grid"])
    runs = []
    for values in itertools.product(*(proto["grid"][k] for k in keys)):
        settings = {**proto["base"], **dict(zip(keys, values))}
        try:
            config = TrainConfig(**settings)
        except TypeError as err:
            raise ValueError(f"protocol {proto['name']!r}: {err}") from None
        runs.append((run_name(config), config))
    return runs


def _finished(path: Path, config: TrainConfig) -> dict | None:
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return None if differing_settings(result.get("config", {}), config) else result


def run_protocol(name_or_path: str, *, results_dir: Path | None = None, device: str | None = None,
                 progress: bool = True, log=print) -> list[dict]:
    """Run (or finish) every run of a protocol; return the results in grid order."""
    proto = load_protocol(name_or_path)
    out_dir = Path(results_dir) if results_dir else RESULTS_DIR / proto["name"]
    if proto.get("threads"):
        torch.set_num_threads(int(proto["threads"]))
    runs = protocol_runs(proto)
    results = []
    for i, (name, config) in enumerate(runs, 1):
        if device:
            config.device = device
        out = out_dir / f"{name}.json"
        done = _finished(out, config)
        if done is not None:
            log(f"[{i}/{len(runs)}] {name}: finished earlier, skipped")
            results.append(done)
            continue
        state = "resuming" if checkpoint_path(out).exists() else "starting"
        log(f"[{i}/{len(runs)}] {name}: {state}")
        t0 = time.time()
        results.append(train(config, out, resume=True, progress=progress, log=log))
        log(f"[{i}/{len(runs)}] {name}: done in {time.time() - t0:.0f}s -> {out}")
    log(summary_table(results))
    return results


def summary_table(results: list[dict]) -> str:
    header = (f"{'arch':8} {'width':>6} {'epochs':>6} {'loss':5} {'seed':>4} {'train':>6} {'clean':>6} "
              f"{'test@bv':>7} {'NC1':>9} {'NC2':>7} {'NC3':>7} {'NC4':>6}")
    lines = [header, "-" * len(header)]
    for r in results:
        c, s = r["config"], r["summary"]
        nc = s["final_nc"]
        clean = s.get("final_clean_train_acc")
        lines.append(f"{c['arch']:8} {c['width']:>6g} {c['epochs']:>6} {c['loss']:5} {c['seed']:>4} "
                     f"{s['final_train_acc']:>6.3f} {clean if clean is None else f'{clean:.3f}':>6} "
                     f"{s['test_acc_at_best_val']:>7.3f} {nc['nc1']:>9.3g} {nc['nc2']:>7.3f} {nc['nc3']:>7.3f} "
                     f"{nc['nc4']:>6.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m ncrepro.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("protocol", help="a name in protocols/ (book-cpu, book-gpu, paper-cifar10, smoke) or a path")
    p.add_argument("--results-dir", type=Path, default=None, help="default: data/results/<protocol name>/")
    p.add_argument("--device", default=None, help="override the protocol's device (auto, cpu, cuda)")
    p.add_argument("--list", action="store_true", help="list the runs and whether each is done, then exit")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    def action():
        if args.list:
            proto = load_protocol(args.protocol)
            out_dir = args.results_dir or RESULTS_DIR / proto["name"]
            for name, config in protocol_runs(proto):
                out = out_dir / f"{name}.json"
                state = ("done" if _finished(out, config) else
                         "partial" if checkpoint_path(out).exists() else "todo")
                print(f"{state:8} {name}")
            return 0
        run_protocol(args.protocol, results_dir=args.results_dir, device=args.device,
                     progress=not args.no_progress, log=lambda m: print(m, flush=True))

    return run_guarded(p.prog, action, "interrupted; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
