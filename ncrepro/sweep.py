"""Run a protocol's grid: resumable, budgeted, one result JSON per run; move results between machines.

``python -m ncrepro.sweep cifar10-cpu`` trains every pending run of a protocol (see
:mod:`ncrepro.protocol`), writing ``data/results/<name>/<run>.json``; finished runs are skipped
and an interrupted run continues from its checkpoint (kept in the tracked ``in-progress`` folder
beside the results until the run finishes). ``--budget-minutes M`` starts a run only when its
estimated time, from the throughput measured on this device in this process, fits what is left.
``--list`` shows what is done; ``export`` and ``import`` move finished results between machines
with their checks. Runs are claimed through per-run locks (:mod:`ncrepro.cluster`), so several
sweeps, local workers or SLURM array tasks can share one protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import sys
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import _io
from ._cli import OneLineParser, program_name, run_guarded
from ._paths import resolve_data_path
from .cluster import RUN_FAILURES, failure_path, record_failure, run_checkpoint, run_states, train_run
from .data import DataSplits, load_dataset, make_splits
from .locks import DEFAULT_LOCK_EXPIRY_HOURS, LockHeld, RunLock, check_expiry
from .protocol import load_protocol, ordered_runs, protocol_runs, results_folder
from .results import finished_result, load_results, training_seconds
from .train import (
    DeadlineReached,
    Throughput,
    TrainConfig,
    check_result,
    differing_settings,
    measure_throughput,
    training_precision,
)

__all__ = [
    "run_protocol",
    "SweepReport",
    "estimate_seconds",
    "summary_table",
    "progress_summary",
    "run_states",
    "export_results",
    "import_results",
    "main",
]


# ---------------------------------------------------------------------------------------------
# Running, with a budget


@dataclass
class SweepReport:
    """What a sweep did: run names by outcome, and the finished results in priority order."""

    done: list[str] = field(default_factory=list)          # finished in this call
    earlier: list[str] = field(default_factory=list)       # finished before this call
    skipped: list[str] = field(default_factory=list)       # not started: would not fit the budget
    partial: list[str] = field(default_factory=list)       # stopped at an epoch boundary by the budget
    pending: list[str] = field(default_factory=list)       # not reached
    running: list[str] = field(default_factory=list)       # locked by another live process
    failed: dict[str, str] = field(default_factory=dict)   # run -> reason; the sweep went on
    results: list[dict] = field(default_factory=list)
    stopped_by_budget: bool = False

    def line(self) -> str:
        return (f"done {len(self.done)}, finished earlier {len(self.earlier)}, skipped (budget) "
                f"{len(self.skipped)}, partial {len(self.partial)}, running elsewhere {len(self.running)}, "
                f"failed {len(self.failed)}, pending {len(self.pending)}")


def _rate_key(config: TrainConfig) -> tuple:
    return (config.arch, config.width, config.batch_size, config.augment, config.device, config.compile)


#: What :func:`estimate_seconds` adds to the measured time of a run (10%).
_ESTIMATE_MARGIN = 1.1

#: After its first throughput measurement, a sweep with a budget measures another kind of run
#: only with at least this many seconds left and twice its longest measurement so far (each
#: compiles a model, tens of seconds on a GPU); with less, such runs are skipped unmeasured, so a
#: measurement cannot run past the deadline and delay the archive written after the sweep.
_MEASURE_FLOOR_SECONDS = 30.0


def estimate_seconds(config: TrainConfig, splits: DataSplits, rate: Throughput) -> float:
    """Estimated wall time of a whole run: its epochs, its evaluations, its setup, plus 10%."""
    evaluations = len({e for e in range(1, config.epochs + 1) if e % config.eval_every == 0 or e == config.epochs})
    eval_images = len(splits.train) + len(splits.val) + len(splits.test)
    seconds = (config.epochs * len(splits.train) / rate.train_images_per_s
               + evaluations * eval_images / rate.eval_images_per_s + rate.setup_seconds)
    return _ESTIMATE_MARGIN * seconds


class _SplitCache:
    """Datasets loaded once per process and shared by the runs that use the same data."""

    def __init__(self) -> None:
        self._cache: dict[tuple, DataSplits] = {}

    def get(self, config: TrainConfig) -> DataSplits:
        key = (config.data, config.download, config.val_size, config.train_subset, config.val_subset,
               config.test_subset, config.split)
        if key not in self._cache:
            train_set, test_set, desc = load_dataset(config.data, download=config.download)
            self._cache[key] = make_splits(train_set, test_set, desc, val_size=config.val_size,
                                           train_subset=config.train_subset, val_subset=config.val_subset,
                                           test_subset=config.test_subset, split=config.split)
        return self._cache[key]


def run_protocol(name_or_path: str, *, results_dir: Path | None = None, device: str | None = None,
                 compile: str | None = None, budget_minutes: float | None = None, progress: bool = True,
                 lock_expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS, log=print) -> SweepReport:
    """Run (or finish) the pending runs of a protocol in its priority order.

    With ``budget_minutes`` a run starts only when its estimated time fits what is left (runs
    that do not fit are skipped and later, cheaper ones are tried); a run that turns out slower
    than estimated stops at an epoch boundary at the deadline, its checkpoint kept. Results are
    only ever written whole.
    """
    proto = load_protocol(name_or_path)
    out_dir = results_folder(proto, results_dir)
    if budget_minutes is not None and not (budget_minutes > 0 and math.isfinite(budget_minutes)):
        raise ValueError(f"--budget-minutes must be a positive number, got {budget_minutes}")
    start = time.monotonic()
    deadline = None if budget_minutes is None else start + 60.0 * budget_minutes
    if proto.get("threads"):
        torch.set_num_threads(int(proto["threads"]))
    runs = ordered_runs(proto)
    _check_outputs(out_dir)
    for name, config in runs:
        if device:
            config.device = device
        # A run without a result file is pending (finished_result's own test): a machine that
        # cannot train it is refused before anything starts, not recorded as every run's failure.
        if not (out_dir / f"{name}.json").exists():
            _check_machine(proto, name, config)
    report = SweepReport()
    splits_cache = _SplitCache()
    rates: dict[tuple, Throughput] = {}
    observed: set[tuple] = set()  # rate keys whose rate comes from a run finished in this call
    # How much longer finished runs took than their measured estimate: a few timed steps miss
    # what a whole run pays (on a lent H200, epochs ran 1.1-1.4x slower than the steps timed
    # before them), so runs of kinds not yet observed on this device are estimated that much longer.
    slowdown = 1.0
    longest_measurement = 0.0  # seconds, of the throughput measurements made in this call
    for i, (name, config) in enumerate(runs, 1):
        if compile:
            config.compile = compile
        tag = f"[{i}/{len(runs)}] {name}"
        out = out_dir / f"{name}.json"
        try:
            done = finished_result(out, config)
        except ValueError as err:  # a damaged file, or another configuration's result, where this run's goes
            report.failed[name] = str(err)
            log(f"{tag}: failed: {err}")
            continue
        if done is not None:
            report.earlier.append(name)
            report.results.append(done)
            continue
        if report.stopped_by_budget:
            report.pending.append(name)
            continue
        splits = splits_cache.get(config)
        if deadline is not None:
            key = _rate_key(config)
            if key not in rates:
                left = deadline - time.monotonic()
                # A lent H200 spent up to 49 s measuring one kind: a measurement begun near the
                # deadline ran past it, and the command was stopped before it wrote its archive.
                if rates and left < max(_MEASURE_FLOOR_SECONDS, 2.0 * longest_measurement):
                    log(f"{tag}: skipped, {max(left, 0.0) / 60:.1f} min left is too little to measure "
                        f"{config.arch} width {config.width:g} on {config.device}")
                    report.skipped.append(name)
                    continue
                t_measure = time.monotonic()
                rates[key] = measure_throughput(config, splits)
                longest_measurement = max(longest_measurement, time.monotonic() - t_measure)
                r = rates[key]
                log(f"measured {config.arch} width {config.width:g} on {config.device}: "
                    f"{r.train_images_per_s:,.0f} training images/s, {r.eval_images_per_s:,.0f} evaluation "
                    f"images/s, setup {r.setup_seconds:.1f} s (compiled: {r.compiled})")
            measured = estimate_seconds(config, splits, rates[key])
            estimate = measured if key in observed else measured * slowdown
            left = deadline - time.monotonic()
            if estimate > left:
                log(f"{tag}: skipped, estimated {estimate / 60:.1f} min > {max(left, 0.0) / 60:.1f} min left")
                report.skipped.append(name)
                continue
        state = "resuming" if run_checkpoint(out).exists() else "starting"
        t0 = time.time()
        try:
            with RunLock(out, lock_expiry_hours):
                log(f"{tag}: {state}" + ("" if deadline is None else f" (estimated {estimate / 60:.1f} min)"))
                result = train_run(config, out, progress=progress, splits=splits, log=log, deadline=deadline)
        except LockHeld as held:
            log(f"{tag}: skipped, running elsewhere ({held.info.get('host')} pid {held.info.get('pid')} since "
                f"{held.info.get('started')})")
            report.running.append(name)
            continue
        except DeadlineReached as err:
            log(f"{tag}: {err}; the checkpoint is kept")
            report.partial.append(name)
            report.stopped_by_budget = True
            continue
        except RUN_FAILURES as err:
            info = record_failure(out, err)
            report.failed[name] = info["reason"]
            log(f"{tag}: failed: {info['reason']} (recorded in {failure_path(out).name}; the sweep goes on)")
            continue
        report.done.append(name)
        report.results.append(result)
        log(f"{tag}: done in {time.time() - t0:.0f}s -> {out}")
        if deadline is not None:
            # The finished run is the best measurement of its own kind of run: its training time
            # (training and evaluations, pauses left out) is charged to training images from now on.
            key = _rate_key(config)
            seconds = training_seconds(result)
            # The measured estimate without its margin, against what the run took.
            ratio = _ESTIMATE_MARGIN * seconds / measured if measured > 0 else 0.0
            if key not in observed and state == "starting" and ratio > slowdown:
                slowdown = ratio
                log(f"{name} took {slowdown:.2f}x its measured estimate: runs of kinds not yet finished "
                    f"here are estimated that much longer")
            per_image = seconds / max(1, config.epochs * len(splits.train))
            rates[key] = Throughput(1.0 / per_image, math.inf, 0.0, rates[key].compiled)
            observed.add(key)
    if report.results:
        log(summary_table(report.results))
    log(f"{proto['name']}: {report.line()}")
    for name, reason in report.failed.items():
        log(f"failed: {name}: {reason}")
    return report


def _check_outputs(out_dir: Path) -> None:
    """The results folder must exist or be creatable, and be writable, before anything trains."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: the results folder is a file")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}.tmp"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{out_dir}: cannot write results there ({err.strerror or err})") from None


def progress_summary(proto: dict, results_dir: Path | None = None) -> str:
    """The result table, then the accelerator- and CPU-hours spent, and an estimate of what the
    pending runs will take from the measured seconds per epoch of finished runs of the same
    network (architecture and width) on the same kind of device; both by
    :func:`~ncrepro.results.training_seconds`, so time a run stood paused is not counted."""
    results = load_results(proto, results_dir=results_dir)
    lines = [summary_table(results)] if results else ["no finished run yet"]
    spent = {"gpu": 0.0, "cpu": 0.0}
    per_epoch: dict[tuple, list[float]] = {}
    for r in results:
        kind = "gpu" if r["provenance"]["device"].startswith("cuda") else "cpu"
        trained = training_seconds(r)
        spent[kind] += trained / 3600
        key = (r["config"]["arch"], r["config"]["width"], kind)
        per_epoch.setdefault(key, []).append(trained / r["config"]["epochs"])
    todo = [config for name, config in protocol_runs(proto)
            if finished_result(results_folder(proto, results_dir) / f"{name}.json", config) is None]
    estimate = {"gpu": 0.0, "cpu": 0.0}
    unknown = 0
    for config in todo:
        kind = "cpu" if config.device == "cpu" else "gpu"
        seconds = per_epoch.get((config.arch, config.width, kind))
        if seconds:
            estimate[kind] += config.epochs * sum(seconds) / len(seconds) / 3600
        else:
            unknown += 1
    lines.append(f"spent: {spent['gpu']:.2f} GPU-hours, {spent['cpu']:.2f} CPU-hours on {len(results)} finished run(s)")
    lines.append(f"to finish {len(todo)} run(s): about {estimate['gpu']:.2f} GPU-hours and {estimate['cpu']:.2f} "
                 f"CPU-hours from measured epoch times" + (f"; {unknown} run(s) have no measured network yet"
                                                           if unknown else ""))
    return "\n".join(lines)


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


# ---------------------------------------------------------------------------------------------
# Moving results between machines


def export_results(protocol: str, archive: str | Path, *, results_dir: Path | None = None) -> list[str]:
    """Write every finished result of ``protocol`` into a ``.tar.gz`` with a manifest; returns
    the run names. The archive is written atomically."""
    proto = load_protocol(protocol)
    results = load_results(proto, results_dir=results_dir)
    manifest = {"protocol": proto["name"], "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "git_commit": _io.git_commit(), "runs": [r["run"] for r in results]}
    archive = Path(archive)
    if archive.is_dir():
        raise ValueError(f"{archive}: is a folder; give the archive's file name")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        members = [("manifest.json", manifest)] + [
            (f"{proto['name']}/{r['run']}.json", {k: v for k, v in r.items() if k not in ("run", "grid")})
            for r in results]
        for member, obj in members:
            data = (json.dumps(obj, indent=1) + "\n").encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    _io.atomic_write_bytes(archive, buffer.getvalue())
    return manifest["runs"]


def import_results(archive: str | Path, *, results_dir: Path | None = None, protocol: str | None = None,
                   log=print) -> dict[str, list[str]]:
    """Check every result in an archive made by :func:`export_results` and copy it in.

    A result is imported when it is a finished result with provenance whose config is exactly
    the config of the run of that name in the local protocol (the one the manifest names, or
    ``protocol``, a name or path, which must carry the same name). It never replaces a different
    finished result; an identical one is left alone. Returns run names by outcome
    (``imported``, ``identical``, ``refused``).

    Raises:
        ValueError: the archive is unreadable or has no manifest naming a known protocol.
    """
    archive = Path(archive)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"{archive}: not a readable results archive ({err})") from None
    if "manifest.json" not in members:
        raise ValueError(f"{archive}: no manifest.json; make archives with: python -m ncrepro.sweep export")
    protocol_arg = protocol
    try:
        manifest = json.loads(members.pop("manifest.json"))
        protocol = manifest["protocol"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{archive}: manifest.json is not a results manifest") from None
    local = load_protocol(protocol_arg or str(protocol))
    if local["name"] != protocol:
        raise ValueError(f"{archive}: holds results of protocol {protocol!r}, not {local['name']!r}")
    proto = local
    runs = dict(protocol_runs(proto))
    out_dir = results_folder(proto, results_dir)
    outcome: dict[str, list[str]] = {"imported": [], "identical": [], "refused": []}
    for member, data in sorted(members.items()):
        where = f"{archive}:{member}"
        folder, _, file = member.rpartition("/")
        name = file[:-5] if file.endswith(".json") else file
        try:
            if folder != proto["name"] or name not in runs:
                raise ValueError(f"{where}: not a run of protocol {proto['name']!r}")
            try:
                result = check_result(_io.strict_json_loads(data.decode("utf-8")), where,
                                      "not imported")
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"{where}: not a JSON result ({err})") from None
            diff = differing_settings(result["config"], runs[name])
            if diff:
                raise ValueError(f"{where}: config differs from the protocol's run ({', '.join(diff)})")
            target = out_dir / f"{name}.json"
            if target.exists():
                if target.read_bytes() == data or _same_result(target, result):
                    outcome["identical"].append(name)
                    continue
                raise ValueError(f"{where}: {target} already holds a different result; it is kept")
            _io.atomic_write_bytes(target, data)
            outcome["imported"].append(name)
            log(f"imported {target}")
        except ValueError as err:
            outcome["refused"].append(name)
            log(f"refused: {err}")
    log(f"{archive}: imported {len(outcome['imported'])}, identical {len(outcome['identical'])}, "
        f"refused {len(outcome['refused'])}")
    return outcome


def _same_result(path: Path, result: dict) -> bool:
    try:
        return json.loads(path.read_text()) == result
    except (ValueError, OSError):
        return False


# ---------------------------------------------------------------------------------------------
# Command line


def _import_main(argv: list[str]) -> int:
    p = OneLineParser(prog=program_name("ncrepro-sweep", "ncrepro.sweep") + " import",
                      description="Check the results in an archive and copy them into data/results/<protocol>/.")
    p.add_argument("archive", help="a .tar.gz written by `python -m ncrepro.sweep export` (or scripts/gpu-sweep.sh)")
    p.add_argument("--results-dir", type=Path, default=None, help="default: data/results/<protocol>/")
    p.add_argument("--protocol", default=None, help="the protocol file to check against (default: the one named "
                                                    "in the archive's manifest, from ncrepro/protocols/)")
    args, code = p.parse_or_code(argv)
    if args is None:
        return code

    def action():
        outcome = import_results(args.archive, results_dir=args.results_dir, protocol=args.protocol,
                                 log=lambda m: print(m, flush=True))
        return 2 if outcome["refused"] else 0

    return run_guarded(p.prog, action, "interrupted; files already imported are complete")


def _export_main(argv: list[str]) -> int:
    p = OneLineParser(prog=program_name("ncrepro-sweep", "ncrepro.sweep") + " export",
                      description="Write a protocol's finished results into one .tar.gz with a manifest.")
    p.add_argument("protocol")
    p.add_argument("archive", help="the .tar.gz to write")
    p.add_argument("--results-dir", type=Path, default=None, help="default: data/results/<protocol>/")
    args, code = p.parse_or_code(argv)
    if args is None:
        return code

    def action():
        names = export_results(args.protocol, args.archive, results_dir=args.results_dir)
        print(f"{args.archive}: {len(names)} finished result(s) of {args.protocol}")

    return run_guarded(p.prog, action, "interrupted; no archive was written")


def _check_machine(proto: dict, name: str, config: TrainConfig) -> None:
    """ValueError naming the protocol and run when this machine cannot train ``config`` (its
    precision: bf16 on a CPU without native bfloat16)."""
    try:
        training_precision(config)
    except ValueError as err:
        raise ValueError(f"{proto['name']}: this machine cannot train {name}: {err}") from None


def _check_environment(proto: dict, device: str | None, results_dir: str | Path | None = None) -> str:
    """One line on what this machine offers the protocol; ValueError when it cannot run it,
    naming the first run it would train next (runs without a result first, in priority order)."""
    name, config = protocol_runs(proto)[0]
    dev = device or config.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {dev!r} requested but torch {torch.__version__} sees no CUDA device")
    datasets = sorted({c.data for _, c in protocol_runs(proto)})
    for data in datasets:
        if data.startswith(("cifar10:", "cifar100:")):
            continue
        path = resolve_data_path(data)
        if not path.exists():
            raise ValueError(f"dataset {data!r} not found (a pack is made with: python -m ncrepro.data pack SRC DEST)")
    out_dir = results_folder(proto, results_dir)
    runs = sorted(ordered_runs(proto), key=lambda run: (out_dir / f"{run[0]}.json").exists())   # stable
    for name, config in runs:
        _check_machine(proto, name, dataclasses.replace(config, device=dev))
    where = torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    return (f"ok: torch {torch.__version__}, {where}; protocol {proto['name']} ({len(protocol_runs(proto))} runs); "
            f"data {', '.join(datasets)}")


def _expiry(text: str) -> float:
    try:
        return check_expiry(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["import"]:
        return _import_main(argv[1:])
    if argv[:1] == ["export"]:
        return _export_main(argv[1:])
    p = OneLineParser(prog=program_name("ncrepro-sweep", "ncrepro.sweep"), description=__doc__.split("\n\n")[0],
                      epilog="Also: `python -m ncrepro.sweep export PROTOCOL ARCHIVE` and "
                             "`python -m ncrepro.sweep import ARCHIVE`.")
    p.add_argument("protocol", help="a protocol's name (cifar10-cpu, book-gpu, paper-cifar10, smoke, ...: the "
                                    "files in ncrepro/protocols/) or the path of a protocol file")
    p.add_argument("--results-dir", type=Path, default=None, help="default: data/results/<protocol name>/")
    p.add_argument("--device", default=None, help="override the protocol's device (auto, cpu, cuda)")
    p.add_argument("--compile", default=None, choices=["auto", "off", "default", "reduce-overhead", "max-autotune",
                                                        "max-autotune-no-cudagraphs"],
                   help="override the torch.compile mode of the training step")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="start a run only if its measured-throughput estimate fits the minutes left")
    p.add_argument("--list", action="store_true",
                   help="show each run as done, running (where, since when), partial (epoch k of n) or pending")
    p.add_argument("--summary", action="store_true",
                   help="print the result table and the GPU/CPU-hours spent and estimated to finish, then exit")
    p.add_argument("--check", action="store_true",
                   help="check in seconds that this machine can run the protocol (device, data), then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--executor", choices=["inline", "local", "slurm"], default="inline",
                   help="inline: this process; local: one process per --devices entry; slurm: one job array "
                        "(both through submitit)")
    p.add_argument("--devices", default="cpu", help="local executor: comma-separated devices, one worker each "
                                                    "(cuda:0,cuda:1 or cpu,cpu)")
    p.add_argument("--slurm-partition", default=None, help="slurm executor: the partition")
    p.add_argument("--slurm-time", type=int, default=24 * 60, help="slurm executor: minutes per task")
    p.add_argument("--slurm-gpus-per-task", type=int, default=1, help="slurm executor: GPUs per task")
    p.add_argument("--slurm-array-parallelism", type=int, default=64, help="slurm executor: tasks running at once")
    p.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="slurm executor: any other sbatch option, passed through (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="slurm executor: print the job script, submit nothing")
    p.add_argument("--lock-expiry-hours", type=_expiry, default=DEFAULT_LOCK_EXPIRY_HOURS,
                   help="a run's lock counts as stale after this long (hours, positive)")
    args, code = p.parse_or_code(argv)
    if args is None:
        return code

    def action():
        asked = [flag for flag, on in (("--list", args.list), ("--summary", args.summary), ("--check", args.check))
                 if on]
        if len(asked) > 1:
            raise ValueError(f"{' and '.join(asked)} each print one report and exit: ask for one")
        if args.list or args.check or args.summary:
            proto = load_protocol(args.protocol)
            if args.check:
                print(_check_environment(proto, args.device, args.results_dir))
            elif args.summary:
                print(progress_summary(proto, args.results_dir))
            else:
                for name, state in run_states(proto, args.results_dir, args.lock_expiry_hours):
                    print(f"{state:24} {name}")
            return 0
        if args.executor == "local":
            from .cluster import submit_local

            devices = [d.strip() for d in args.devices.split(",") if d.strip()]
            jobs = submit_local(args.protocol, devices, results_dir=args.results_dir,
                                lock_expiry_hours=args.lock_expiry_hours)
            print(f"{len(jobs)} local worker(s) on {', '.join(devices)}; logs in {jobs[0].paths.folder}", flush=True)
            trained = [name for job in jobs for name in job.result()]
            print(f"trained {len(trained)} run(s): {', '.join(trained) or 'none'}")
            return 0
        if args.executor == "slurm":
            from .cluster import squeue_hint, submit_slurm

            out = submit_slurm(args.protocol, results_dir=args.results_dir, partition=args.slurm_partition,
                               time_min=args.slurm_time, gpus_per_task=args.slurm_gpus_per_task,
                               array_parallelism=args.slurm_array_parallelism, extra=args.slurm_extra,
                               dry_run=args.dry_run, lock_expiry_hours=args.lock_expiry_hours)
            if not out["runs"]:
                print("nothing to submit: every run is done or running")
            elif args.dry_run:
                print(f"dry run: one array of {len(out['runs'])} task(s) would be submitted with this script:")
                print(out["script"])
            else:
                print(f"submitted job array {out['job_id']} with {len(out['runs'])} task(s); logs in {out['logs']}")
                print(squeue_hint(out["job_id"]))
            return 0
        report = run_protocol(args.protocol, results_dir=args.results_dir, device=args.device, compile=args.compile,
                              budget_minutes=args.budget_minutes, progress=not args.no_progress,
                              lock_expiry_hours=args.lock_expiry_hours, log=lambda m: print(m, flush=True))
        if report.failed:
            print(f"{p.prog}: {len(report.failed)} run(s) failed; their reasons are above and in "
                  f"<run>.failed.json; run the command again to retry them", file=sys.stderr)
            return 1
        return 0

    return run_guarded(p.prog, action, "interrupted; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
