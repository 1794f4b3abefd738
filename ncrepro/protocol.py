"""Protocol files: reading and checking them, expanding their grids, naming their runs.

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
A run's result lives at ``<results folder>/<run name>.json`` (:func:`results_folder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from pathlib import Path

from . import _io
from ._paths import PROTOCOL_DIR, results_root
from .losses import LOSSES, loss_spec
from .train import EXECUTION_SETTINGS, TrainConfig

__all__ = [
    "load_protocol",
    "protocol_runs",
    "ordered_runs",
    "run_name",
    "run_identity",
    "results_folder",
    "grid_text",
    "PROTOCOL_DIR",
    "SCHEMA_PATH",
]

SCHEMA_PATH = PROTOCOL_DIR / "protocol.schema.json"
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_INT_FIELDS = {"epochs", "batch_size", "seed", "val_size", "eval_every", "train_subset", "val_subset",
               "test_subset"}


def _protocol_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return path
    return PROTOCOL_DIR / f"{name_or_path}.json"


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


def run_identity(config: TrainConfig) -> dict:
    """The settings that make a run what it is: its config without the execution settings."""
    return {k: v for k, v in config.public().items() if k not in EXECUTION_SETTINGS}


def _config_hash(config: TrainConfig) -> str:
    return hashlib.sha256(json.dumps(run_identity(config), sort_keys=True).encode()).hexdigest()[:8]


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
    identities = [run_identity(c) for c in configs]
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
    proto = _io.read_json_file(path, "a protocol")
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


def results_folder(proto: dict, results_dir: str | Path | None = None) -> Path:
    """Where a protocol's results live: ``results_dir`` if given, else ``<results root>/<name>``."""
    return Path(results_dir) if results_dir else results_root() / proto["name"]


def grid_text(proto: dict) -> str:
    """The runs a protocol asks for, by width: which losses, with which seeds. For the book's
    sentence on what a result set will hold once finished (architectures and epochs are in its
    scale). The losses are named only where they change from one group of widths to the next.

    >>> runs = [(f"w{w}-{loss}-s{s}", TrainConfig(loss=loss, width=w, seed=s))
    ...         for w, seeds in ((0.125, (0, 1, 2)), (0.25, (0,))) for loss in LOSSES for s in seeds]
    >>> grid_text({"_runs": runs})
    'the four losses at width 1/8 with seeds 0, 1 and 2, and at width 1/4 with seed 0'
    >>> grid_text({"_runs": [("a", TrainConfig(loss="ce", width=0.25)), ("b", TrainConfig(loss="ce", width=0.5)),
    ...                      ("c", TrainConfig(loss="mse", width=1.0))]})
    'CE at widths 1/4 and 1/2 with seed 0, and MSE at width 1 with seed 0'
    """
    from .prose import join_list, plural, width

    by_width: dict[float, tuple[set, set]] = {}
    for _, config in proto["_runs"]:
        losses, seeds = by_width.setdefault(config.width, (set(), set()))
        losses.add(config.loss)
        seeds.add(config.seed)
    groups: list[tuple[list[str], list[int], list[float]]] = []  # widths sharing losses and seeds
    for w, (losses, seeds) in sorted(by_width.items()):
        key = ([loss for loss in LOSSES if loss in losses], sorted(seeds))
        if groups and groups[-1][:2] == key:
            groups[-1][2].append(w)
        else:
            groups.append((*key, [w]))
    parts, named = [], None
    for losses, seeds, widths in groups:
        if losses == named:
            who = ""
        elif len(losses) == len(LOSSES) == 4:  # the paper's four, as the book names them
            who = "the four losses "
        else:
            who = join_list(LOSSES[x].label for x in losses) + " "
        named = losses
        parts.append(f"{who}at {plural(len(widths), 'width')} {join_list(width(w) for w in widths)} "
                     f"with {plural(len(seeds), 'seed')} {join_list(str(x) for x in seeds)}")
    return ", ".join(parts[:-1]) + ", and " + parts[-1] if len(parts) > 1 else parts[0]
