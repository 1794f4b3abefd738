"""Run a named protocol: a grid of training runs, resumable, budgeted, one result JSON per run.

A protocol is a JSON file in ``ncrepro/protocols/`` (shipped with the package) or any path, checked against
``ncrepro/protocols/protocol.schema.json``::

    {"name": "cifar10-cpu",
     "description": "...",
     "base": {... TrainConfig fields shared by every run ...},
     "grid": {"width": [0.0625, 0.125],
              "budget": [{"epochs": 10, "eval_every": 1}, {"epochs": 20, "eval_every": 2}],
              "loss": ["ce", "ls", "fl", "mse"]},
     "order": [{"epochs": 20}, {}]}

An axis named after a setting lists its values; any other axis lists objects of settings that
vary together. ``grid`` may also be a list of such blocks (a grid that is not one product), and
``order`` gives the priority of a budgeted sweep: runs matching the first selector first.

``python -m ncrepro.sweep cifar10-cpu`` trains every pending run, writing
``data/results/<name>/<run>.json``; finished runs are skipped and an interrupted run continues
from its checkpoint. ``--budget-minutes M`` starts a run only when its estimated time, from the
throughput measured on this device in this process, fits what is left. ``--list`` shows what is
done; ``export`` and ``import`` move finished results between machines with their checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import _io
from ._cli import OneLineParser, run_guarded
from ._paths import PROTOCOL_DIR, resolve_data_path, results_root
from .cluster import DEFAULT_LOCK_EXPIRY_HOURS, LockHeld, RunLock, lock_path, lock_state
from .data import DataSplits, load_dataset, make_splits
from .losses import LOSSES, loss_spec
from .train import (
    EXECUTION_SETTINGS,
    DeadlineReached,
    Throughput,
    TrainConfig,
    check_result,
    checkpoint_path,
    differing_settings,
    measure_throughput,
    read_result,
    train,
)

__all__ = [
    "load_protocol",
    "protocol_runs",
    "ordered_runs",
    "run_name",
    "run_protocol",
    "train_run",
    "SweepReport",
    "summary_table",
    "progress_summary",
    "export_results",
    "import_results",
    "load_results",
    "finished_result",
    "run_states",
    "group_results",
    "result_set_summary",
    "accuracy_grid",
    "AccuracyGrid",
    "in_terminal_phase",
    "TERMINAL_PHASE_TRAIN_ACC",
    "SpreadChange",
    "PROTOCOL_DIR",
    "results_root",
    "SCHEMA_PATH",
]

SCHEMA_PATH = PROTOCOL_DIR / "protocol.schema.json"
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_INT_FIELDS = {"epochs", "batch_size", "seed", "val_size", "eval_every", "train_subset", "val_subset",
               "test_subset"}


# ---------------------------------------------------------------------------------------------
# Protocol files


def _protocol_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return path
    return PROTOCOL_DIR / f"{name_or_path}.json"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None


def _schema_errors(proto) -> list[str]:
    """Messages for every place ``proto`` breaks the schema (jsonschema, or fastjsonschema
    where jsonschema is not installed, as on the GPU machine)."""
    schema = json.loads(SCHEMA_PATH.read_text())
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(proto), key=lambda e: list(e.absolute_path))
        return [f"{e.json_path}: {_short(e)}" for e in errors]
    try:
        import fastjsonschema
    except ImportError:
        raise ValueError("checking a protocol needs the package jsonschema (or fastjsonschema)") from None
    try:
        fastjsonschema.compile(schema)(proto)
    except fastjsonschema.JsonSchemaValueException as err:
        return [f"{err.name}: {err.message}"]
    return []


def _short(error) -> str:
    if error.validator == "oneOf" and error.context:
        best = min(error.context, key=lambda e: len(list(e.absolute_path)))
        return best.message
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key(s)")
    return error.message


def _coerce(settings: dict) -> dict:
    # JSON Schema counts 2.0 as an integer; the config gets a Python int.
    return {k: (int(v) if k in _INT_FIELDS and isinstance(v, float) else v) for k, v in settings.items()}


def _expand_block(block: dict, where: str) -> list[dict]:
    keys = list(block)
    points = []
    for values in itertools.product(*(block[k] for k in keys)):
        settings: dict = {}
        for key, value in zip(keys, values):
            items = {key: value} if key in _FIELDS else value
            clash = set(items) & set(settings)
            if clash:
                raise ValueError(f"{where}: setting(s) {sorted(clash)} are given by two grid axes")
            settings.update(items)
        points.append(_coerce(settings))
    return points


def _identity(config: TrainConfig) -> dict:
    return {k: v for k, v in config.public().items() if k not in EXECUTION_SETTINGS}


def _config_hash(config: TrainConfig) -> str:
    return hashlib.sha256(json.dumps(_identity(config), sort_keys=True).encode()).hexdigest()[:8]


def _token(key: str, value) -> str:
    short = {"eval_every": "ev", "lr": "lr", "weight_decay": "wd", "batch_size": "bs", "momentum": "mom",
             "grad_clip": "clip", "train_subset": "n", "val_subset": "nv", "test_subset": "nt", "val_size": "val"}
    if key == "augment":
        return "aug" if value else "noaug"
    if key == "loss_scale":
        return "sum" if value == "official" else "mean"
    if key == "nc_features":
        return f"nc{value}"
    if key == "download":
        return "dl" if value else "nodl"
    if key == "data":
        value = Path(str(value).split(":")[-1]).name or str(value)
        return re.sub(r"[^A-Za-z0-9.+-]", "_", f"data-{value}")
    text = "all" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return re.sub(r"[^A-Za-z0-9.+-]", "_", f"{short.get(key, key)}{text}")


def run_name(config: TrainConfig, varying: tuple[str, ...] = ()) -> str:
    """A readable file name: architecture, width, epochs, loss (with its hyperparameter) and
    seed, then a token for every other setting named in ``varying``."""
    spec = loss_spec(config.loss)
    params = config.loss_params()
    hyper = f"-{spec.token}{params[spec.param]:g}" if params else ""
    stem = f"{config.arch}-w{config.width:g}-e{config.epochs}-{config.loss}{hyper}-s{config.seed}"
    named = {"arch", "width", "epochs", "loss", "seed"} | {s.config_field for s in LOSSES.values() if s.config_field}
    extra = [_token(k, getattr(config, k)) for k in sorted(varying) if k not in named]
    return "-".join([stem, *extra])


def _name_runs(configs: list[TrainConfig], where: str) -> list[str]:
    identities = [_identity(c) for c in configs]
    seen: dict[str, int] = {}
    for i, ident in enumerate(identities):
        key = json.dumps(ident, sort_keys=True)
        if key in seen:
            raise ValueError(f"{where}: grid points {seen[key] + 1} and {i + 1} are the same run")
        seen[key] = i
    varying = tuple(sorted(k for k in identities[0] if len({json.dumps(x[k]) for x in identities}) > 1))
    names = [run_name(c, varying) for c in configs]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    # Values that print alike (0.1 and 0.10000001) still name different runs: a hash of the
    # whole configuration breaks the tie.
    return [f"{n}-h{_config_hash(c)}" if counts[n] > 1 else n for n, c in zip(names, configs)]


def load_protocol(name_or_path: str) -> dict:
    """Read and check a protocol file; every run is built and validated before anything trains.

    The returned dict is the file's content plus ``_path`` and ``_runs`` (the ``(name, config)``
    pairs in grid order).

    Raises:
        ValueError: no such protocol, a schema violation, a name that does not match the file,
            an invalid setting, or two grid points that are the same run.
    """
    path = _protocol_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in PROTOCOL_DIR.glob("*.json") if p != SCHEMA_PATH)
        raise ValueError(f"no protocol {name_or_path!r} (looked for {path}); known protocols: {', '.join(known)}")
    proto = _read_json(path, "the protocol")
    errors = _schema_errors(proto)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValueError(f"{path}: {errors[0]}{more}")
    if proto["name"] != path.stem:
        raise ValueError(f"{path}: name {proto['name']!r} does not match the file name {path.stem!r}")
    blocks = proto["grid"] if isinstance(proto["grid"], list) else [proto["grid"]]
    base = _coerce(proto["base"])
    configs = []
    for block in blocks:
        for point in _expand_block(block, str(path)):
            config = TrainConfig(**{**base, **point})
            try:
                config.validate()
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
            configs.append(config)
    names = _name_runs(configs, str(path))
    proto = dict(proto, _path=str(path), _runs=list(zip(names, configs)))
    return proto


def protocol_runs(proto: dict) -> list[tuple[str, TrainConfig]]:
    """``(run name, config)`` for every grid point, in grid order (fresh config copies)."""
    return [(name, dataclasses.replace(config)) for name, config in proto["_runs"]]


def _matches(config: TrainConfig, selector: dict) -> bool:
    return all(getattr(config, k) == v for k, v in _coerce(selector).items())


def ordered_runs(proto: dict) -> list[tuple[str, TrainConfig]]:
    """The runs in the protocol's priority order (its ``order`` selectors, then grid order)."""
    runs = protocol_runs(proto)
    taken: set[str] = set()
    ordered = []
    for selector in proto.get("order", []) + [{}]:
        for name, config in runs:
            if name not in taken and _matches(config, selector):
                ordered.append((name, config))
                taken.add(name)
    return ordered


# ---------------------------------------------------------------------------------------------
# Results


def finished_result(path: Path, config: TrainConfig) -> dict | None:
    """The finished result at ``path`` for ``config``; None if there is none.

    Raises ValueError when ``path`` holds something else (a damaged file, or a result of
    another configuration): that is never silently replaced.
    """
    if not path.exists():
        return None
    result = read_result(path, hint="move it away first")
    diff = differing_settings(result["config"], config)
    if diff:
        raise ValueError(f"{path}: holds a result with other settings ({', '.join(diff)}); move it away first")
    return result


def _results_dir(proto: dict, results_dir) -> Path:
    return Path(results_dir) if results_dir else results_root() / proto["name"]


def load_results(protocol: str | dict, *, results_dir: Path | None = None) -> list[dict]:
    """Every finished result of a protocol, in grid order, each with ``run`` (its file name)
    and ``grid`` (its settings that vary across the protocol: loss, width, epochs, seed, ...).

    Missing runs are left out; a result file that is damaged or belongs to another
    configuration raises ValueError naming it.
    """
    proto = load_protocol(protocol) if isinstance(protocol, str) else protocol
    folder = _results_dir(proto, results_dir)
    runs = protocol_runs(proto)
    identities = [_identity(c) for _, c in runs]
    varying = sorted(k for k in identities[0] if len({json.dumps(x[k]) for x in identities}) > 1)
    out = []
    for (name, config), ident in zip(runs, identities):
        result = finished_result(folder / f"{name}.json", config)
        if result is not None:
            out.append(dict(result, run=name, grid={k: ident[k] for k in varying}))
    return out


def _sort_key(value):
    return (value is None, str(type(value)), value if value is not None else 0)


def group_results(results: list[dict], by: tuple[str, ...]) -> dict[tuple, list[dict]]:
    """Results grouped by the config settings ``by`` (e.g. ``("width", "epochs", "loss")``), the
    groups sorted by those settings; within a group, results keep their order (seeds)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(tuple(r["config"].get(k) for k in by), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: tuple(_sort_key(v) for v in kv[0])))


def result_set_summary(proto: dict, results: list[dict]) -> dict:
    """The scale of a protocol's finished results, for stating next to every number from them:
    runs done of the grid, training/validation/test images, augmentation, loss scale,
    architectures, widths, epoch budgets, seeds, devices, dataset note and wall hours."""
    configs = [r["config"] for r in results]
    provs = [r["provenance"] for r in results]

    def values(key):
        return sorted({c.get(key) for c in configs}, key=_sort_key)

    datasets = [p["dataset"] for p in provs]
    return {
        "protocol": proto["name"],
        "runs": len(results),
        "grid_runs": len(proto["_runs"]),
        "train_images": sorted({d.get("train_size") for d in datasets}, key=_sort_key),
        "val_images": sorted({d.get("val_size") for d in datasets}, key=_sort_key),
        "test_images": sorted({d.get("test_size") for d in datasets}, key=_sort_key),
        "augment": values("augment"),
        "loss_scale": values("loss_scale"),
        "archs": values("arch"),
        "widths": values("width"),
        "epochs": values("epochs"),
        "seeds": values("seed"),
        "losses": [name for name in LOSSES if name in values("loss")],
        "devices": sorted({p["device"] for p in provs}),
        "lossy_jpeg": any(d.get("lossy_jpeg") for d in datasets),
        "wall_hours": sum(p.get("wall_seconds", 0.0) for p in provs) / 3600.0,
        "commits": sorted({p["git_commit"][:10] for p in provs}),
    }


TERMINAL_PHASE_TRAIN_ACC = 0.995
"""Final clean training accuracy from which a run counts as in the terminal phase."""


def in_terminal_phase(result: dict) -> bool:
    """Whether a training result ends in the terminal phase: its last epoch's accuracy on the clean
    (unaugmented) training images is at least :data:`TERMINAL_PHASE_TRAIN_ACC`."""
    return result["epochs"][-1]["clean_train_acc"] >= TERMINAL_PHASE_TRAIN_ACC


@dataclass
class AccuracyGrid:
    """Accuracies of a results grid, per cell ``(arch, width, epochs)`` and loss, over seeds.

    ``values[(cell, loss)]`` lists one accuracy per seed (in ``seeds[(cell, loss)]`` order).
    """

    cells: list[tuple]
    losses: list[str]
    values: dict[tuple, list[float]]
    seeds: dict[tuple, list[int]]

    def mean(self, cell, loss) -> float | None:
        v = self.values.get((cell, loss))
        return float(sum(v) / len(v)) if v else None

    def gap_to(self, cell, loss, reference: str = "ce") -> tuple[float, float, int] | None:
        """``|acc_ref - acc_loss|`` per seed both have: (mean, standard deviation, seeds)."""
        a = dict(zip(self.seeds.get((cell, reference), []), self.values.get((cell, reference), [])))
        b = dict(zip(self.seeds.get((cell, loss), []), self.values.get((cell, loss), [])))
        common = sorted(set(a) & set(b))
        if not common:
            return None
        gaps = [abs(a[s] - b[s]) for s in common]
        mean = sum(gaps) / len(gaps)
        std = (sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1)) ** 0.5 if len(gaps) > 1 else 0.0
        return mean, std, len(gaps)

    def variance_across_losses(self, cell) -> tuple[float, int] | None:
        """Variance of every (loss, seed) accuracy in the cell, with the number of values; None
        unless every loss of the grid has a value there."""
        if any((cell, loss) not in self.values for loss in self.losses):
            return None
        values = [v for loss in self.losses for v in self.values[(cell, loss)]]
        mean = sum(values) / len(values)
        return sum((v - mean) ** 2 for v in values) / len(values), len(values)

    def spread(self, cell) -> float | None:
        """Largest minus smallest of the per-loss means (over seeds) in a cell; None unless every
        loss of the grid has a value there."""
        means = [self.mean(cell, loss) for loss in self.losses]
        return None if None in means else max(means) - min(means)

    def spread_changes(self) -> list[SpreadChange]:
        """How the spread across losses changes between neighbouring settings: from each epoch
        budget to the next longer one at a fixed (arch, width), then from each width to the next
        wider one at a fixed (arch, epochs). Only pairs where both cells have every loss count."""
        changes = []
        for along, fixed_of, step_of in (("epochs", lambda c: (c[0], c[1]), lambda c: c[2]),
                                         ("width", lambda c: (c[0], c[2]), lambda c: c[1])):
            rows: dict[tuple, list[tuple]] = {}
            for cell in self.cells:
                if self.spread(cell) is not None:
                    rows.setdefault(fixed_of(cell), []).append(cell)
            for cells in rows.values():
                cells.sort(key=step_of)
                for lo, hi in zip(cells, cells[1:]):
                    changes.append(SpreadChange(along, lo, hi, self.spread(lo), self.spread(hi)))
        return changes


@dataclass(frozen=True)
class SpreadChange:
    """The spread across losses at two neighbouring cells of a grid that differ in ``along``
    (``"epochs"`` or ``"width"``): ``before`` at the smaller value, ``after`` at the larger."""

    along: str
    cell_before: tuple
    cell_after: tuple
    before: float
    after: float

    def direction(self, noise: float = 0.0) -> str:
        """``"shrinks"``, ``"grows"``, or ``"unchanged within noise"`` when the change is at most
        ``noise`` (same units as the spreads)."""
        if noise < 0:
            raise ValueError(f"noise must be non-negative, got {noise}")
        delta = self.after - self.before
        if abs(delta) <= noise:
            return "unchanged within noise"
        return "shrinks" if delta < 0 else "grows"


def accuracy_grid(results: list[dict], metric=lambda r: r["summary"]["test_acc_at_best_val"]) -> AccuracyGrid:
    """Organise results by cell ``(arch, width, epochs)`` and loss, one value per seed."""
    values: dict[tuple, list[float]] = {}
    seeds: dict[tuple, list[int]] = {}
    losses: list[str] = []
    for (arch, width, epochs, loss), group in group_results(results, ("arch", "width", "epochs", "loss")).items():
        cell = (arch, width, epochs)
        values[(cell, loss)] = [float(metric(r)) for r in group]
        seeds[(cell, loss)] = [r["config"]["seed"] for r in group]
        if loss not in losses:
            losses.append(loss)
    order = list(LOSSES)
    losses.sort(key=lambda name: order.index(name) if name in order else len(order))
    cells = sorted({cell for cell, _ in values}, key=lambda c: tuple(_sort_key(v) for v in c))
    return AccuracyGrid(cells, losses, values, seeds)


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
    results: list[dict] = field(default_factory=list)
    stopped_by_budget: bool = False

    def line(self) -> str:
        return (f"done {len(self.done)}, finished earlier {len(self.earlier)}, skipped (budget) "
                f"{len(self.skipped)}, partial {len(self.partial)}, running elsewhere {len(self.running)}, "
                f"pending {len(self.pending)}")


def _rate_key(config: TrainConfig) -> tuple:
    return (config.arch, config.width, config.batch_size, config.augment, config.device, config.compile)


def estimate_seconds(config: TrainConfig, splits: DataSplits, rate: Throughput) -> float:
    """Estimated wall time of a whole run: its epochs, its evaluations, its setup, plus 10%."""
    evaluations = len({e for e in range(1, config.epochs + 1) if e % config.eval_every == 0 or e == config.epochs})
    eval_images = len(splits.train) + len(splits.val) + len(splits.test)
    seconds = (config.epochs * len(splits.train) / rate.train_images_per_s
               + evaluations * eval_images / rate.eval_images_per_s + rate.setup_seconds)
    return 1.1 * seconds


class _SplitCache:
    """Datasets loaded once per process and shared by the runs that use the same data."""

    def __init__(self) -> None:
        self._cache: dict[tuple, DataSplits] = {}

    def get(self, config: TrainConfig) -> DataSplits:
        key = (config.data, config.download, config.val_size, config.train_subset, config.val_subset,
               config.test_subset)
        if key not in self._cache:
            train_set, test_set, desc = load_dataset(config.data, download=config.download)
            self._cache[key] = make_splits(train_set, test_set, desc, val_size=config.val_size,
                                           train_subset=config.train_subset, val_subset=config.val_subset,
                                           test_subset=config.test_subset)
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
    out_dir = _results_dir(proto, results_dir)
    if budget_minutes is not None and not (budget_minutes > 0 and math.isfinite(budget_minutes)):
        raise ValueError(f"--budget-minutes must be a positive number, got {budget_minutes}")
    start = time.monotonic()
    deadline = None if budget_minutes is None else start + 60.0 * budget_minutes
    if proto.get("threads"):
        torch.set_num_threads(int(proto["threads"]))
    runs = ordered_runs(proto)
    _check_outputs(out_dir)
    report = SweepReport()
    splits_cache = _SplitCache()
    rates: dict[tuple, Throughput] = {}
    for i, (name, config) in enumerate(runs, 1):
        if device:
            config.device = device
        if compile:
            config.compile = compile
        tag = f"[{i}/{len(runs)}] {name}"
        out = out_dir / f"{name}.json"
        done = finished_result(out, config)
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
                rates[key] = measure_throughput(config, splits)
                r = rates[key]
                log(f"measured {config.arch} width {config.width:g} on {config.device}: "
                    f"{r.train_images_per_s:,.0f} training images/s, {r.eval_images_per_s:,.0f} evaluation "
                    f"images/s, setup {r.setup_seconds:.1f} s (compiled: {r.compiled})")
            estimate = estimate_seconds(config, splits, rates[key])
            left = deadline - time.monotonic()
            if estimate > left:
                log(f"{tag}: skipped, estimated {estimate / 60:.1f} min > {left / 60:.1f} min left")
                report.skipped.append(name)
                continue
        state = "resuming" if _run_checkpoint(out).exists() else "starting"
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
        report.done.append(name)
        report.results.append(result)
        log(f"{tag}: done in {time.time() - t0:.0f}s -> {out}")
        if deadline is not None:
            # The finished run is the best measurement of its own kind of run: its whole wall time
            # (training and evaluations) is charged to training images from now on.
            per_image = result["provenance"]["wall_seconds"] / max(1, config.epochs * len(splits.train))
            rates[_rate_key(config)] = Throughput(1.0 / per_image, math.inf, 0.0, rates[_rate_key(config)].compiled)
    if report.results:
        log(summary_table(report.results))
    log(f"{proto['name']}: {report.line()}")
    return report


def _run_checkpoint(out: Path) -> Path:
    """A sweep run's checkpoint, in the tracked in-progress folder; one left beside the result
    by an older version is moved there first."""
    ckpt = checkpoint_path(out, in_progress=True)
    old = checkpoint_path(out)
    if old.exists() and not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, ckpt)
    return ckpt


def train_run(config: TrainConfig, out: Path, **train_options) -> dict:
    """Train (or resume) one run of a sweep: its checkpoint lives in the in-progress folder
    beside the results (tracked, so an unfinished run can be committed and continued from a
    fresh clone elsewhere), and is removed once the result is written. The caller holds the
    run's lock."""
    ckpt = _run_checkpoint(out)
    result = train(config, out, resume=True, checkpoint=ckpt, **train_options)
    ckpt.unlink(missing_ok=True)
    return result


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
    network (architecture and width) on the same kind of device."""
    results = load_results(proto, results_dir=results_dir)
    lines = [summary_table(results)] if results else ["no finished run yet"]
    spent = {"gpu": 0.0, "cpu": 0.0}
    per_epoch: dict[tuple, list[float]] = {}
    for r in results:
        kind = "gpu" if r["provenance"]["device"].startswith("cuda") else "cpu"
        spent[kind] += r["provenance"]["wall_seconds"] / 3600
        key = (r["config"]["arch"], r["config"]["width"], kind)
        per_epoch.setdefault(key, []).append(r["provenance"]["wall_seconds"] / r["config"]["epochs"])
    todo = [config for name, config in protocol_runs(proto)
            if finished_result(_results_dir(proto, results_dir) / f"{name}.json", config) is None]
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


def run_states(proto: dict, results_dir: Path | None = None,
               lock_expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> list[tuple[str, str]]:
    """``(run name, state)`` in priority order: ``done``, ``running (host pid, since ...)``,
    ``partial (epoch k of n)`` or ``pending``."""
    out_dir = _results_dir(proto, results_dir)
    states = []
    for name, config in ordered_runs(proto):
        out = out_dir / f"{name}.json"
        if finished_result(out, config) is not None:
            states.append((name, "done"))
            continue
        holder = lock_state(lock_path(out), lock_expiry_hours)
        if holder is not None:
            states.append((name, f"running ({holder['host']} pid {holder['pid']}, since {holder['started']})"))
            continue
        ckpt = _run_checkpoint(out)
        if ckpt.exists():
            try:
                epochs = len(torch.load(ckpt, map_location="cpu", weights_only=True)["history"])
                states.append((name, f"partial (epoch {epochs} of {config.epochs})"))
            except Exception:  # noqa: BLE001 - a damaged checkpoint is reported, not fatal here
                states.append((name, "partial (checkpoint unreadable)"))
            continue
        states.append((name, "pending"))
    return states


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
    out_dir = _results_dir(proto, results_dir)
    outcome: dict[str, list[str]] = {"imported": [], "identical": [], "refused": []}
    for member, data in sorted(members.items()):
        where = f"{archive}:{member}"
        folder, _, file = member.rpartition("/")
        name = file[:-5] if file.endswith(".json") else file
        try:
            if folder != proto["name"] or name not in runs:
                raise ValueError(f"{where}: not a run of protocol {proto['name']!r}")
            try:
                result = check_result(json.loads(data.decode("utf-8"), parse_constant=_reject_constant), where,
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
    p = OneLineParser(prog="python -m ncrepro.sweep import",
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
    p = OneLineParser(prog="python -m ncrepro.sweep export",
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


def _check_environment(proto: dict, device: str | None) -> str:
    """One line on what this machine offers the protocol; ValueError when it cannot run it."""
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
    where = torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    return (f"ok: torch {torch.__version__}, {where}; protocol {proto['name']} ({len(protocol_runs(proto))} runs); "
            f"data {', '.join(datasets)}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["import"]:
        return _import_main(argv[1:])
    if argv[:1] == ["export"]:
        return _export_main(argv[1:])
    p = OneLineParser(prog="python -m ncrepro.sweep", description=__doc__.split("\n\n")[0],
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
    p.add_argument("--lock-expiry-hours", type=float, default=DEFAULT_LOCK_EXPIRY_HOURS,
                   help="a run's lock from another host counts as stale after this long")
    args, code = p.parse_or_code(argv)
    if args is None:
        return code

    def action():
        if args.list or args.check or args.summary:
            proto = load_protocol(args.protocol)
            if args.check:
                print(_check_environment(proto, args.device))
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
        run_protocol(args.protocol, results_dir=args.results_dir, device=args.device, compile=args.compile,
                     budget_minutes=args.budget_minutes, progress=not args.no_progress,
                     lock_expiry_hours=args.lock_expiry_hours, log=lambda m: print(m, flush=True))
        return 0

    return run_guarded(p.prog, action, "interrupted; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
