"""Reading a protocol's finished results, and the statistics the book states about them.

* Loading: :func:`finished_result`, :func:`load_results` (each result with its ``run`` name and
  its ``grid`` settings), :func:`group_results`, :func:`result_set_summary`,
  :func:`training_seconds`.
* The terminal phase: :func:`in_terminal_phase`, :func:`terminal_phase_onset`.
* Accuracy across losses: :class:`AccuracyGrid` (per cell and loss, over seeds), spreads and
  how they change, judged by the noise rule of :mod:`ncrepro.noise`.
* Seeds over training: :func:`seed_band`; final metrics over seeds: :func:`metric_estimates`.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .losses import LOSSES
from .models import ARCHITECTURE_NAMES
from .noise import (
    TREND_LEVEL,
    Difference,
    Estimate,
    SeedNoise,
    Spread,
    accuracy_estimate,
    difference,
    log_estimate,
    mean_estimate,
    pooled_seed_noise,
    seed_sd,
    spread,
)
from .protocol import load_protocol, protocol_runs, results_folder, run_identity
from .train import TrainConfig, differing_settings, read_result

__all__ = [
    "finished_result",
    "load_results",
    "group_results",
    "SETTING_KEYS",
    "setting_of",
    "result_set_summary",
    "training_seconds",
    "in_terminal_phase",
    "terminal_phase_onset",
    "terminal_phase_share",
    "TERMINAL_PHASE_TRAIN_ACC",
    "AccuracyGrid",
    "SpreadChange",
    "accuracy_grid",
    "final_value",
    "metric_estimates",
    "metric_seed_noise",
    "SeedBand",
    "seed_band",
    "scale_text",
    "augmentation_text",
    "loss_rank",
    "result_value",
]


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


def load_results(protocol: str | dict, *, results_dir: Path | None = None) -> list[dict]:
    """Every finished result of a protocol, in grid order, each with ``run`` (its file name)
    and ``grid`` (its settings that vary across the protocol: loss, width, epochs, seed, ...).

    Missing runs are left out; a result file that is damaged or belongs to another
    configuration raises ValueError naming it.
    """
    proto = load_protocol(protocol) if isinstance(protocol, str) else protocol
    folder = results_folder(proto, results_dir)
    runs = protocol_runs(proto)
    identities = [run_identity(c) for _, c in runs]
    varying = sorted(k for k in identities[0] if len({json.dumps(x[k]) for x in identities}) > 1)
    out = []
    for (name, config), ident in zip(runs, identities):
        result = finished_result(folder / f"{name}.json", config)
        if result is not None:
            out.append(dict(result, run=name, grid={k: ident[k] for k in varying}))
    return out


def _sort_key(value):
    return (value is None, str(type(value)), value if value is not None else 0)


#: What makes a *setting*: networks compared across losses and seeds share these config values
#: (the accuracy grid's cells, the pairs of the equivalence tests, the twins' settings).
SETTING_KEYS = ("arch", "width", "epochs")


def setting_of(result: dict) -> tuple:
    """The setting ``(arch, width, epochs)`` of a result (:data:`SETTING_KEYS`)."""
    return tuple(result["config"].get(k) for k in SETTING_KEYS)


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
    architectures, widths, epoch budgets, seeds, devices, the processor or GPU models that trained
    them, each CPU with its widest instruction set where recorded ("AMD EPYC (AVX512-BF16)"; from
    each run's record of its machines; runs from before that record add none), dataset
    note, hours of training (by :func:`training_seconds`, paused time left out) and wall hours as
    recorded."""
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
        "machines": sorted({m["model"] + (f" ({m['instruction_set']})" if m.get("instruction_set") else "")
                            for p in provs for m in p.get("machines") or [] if m.get("model")}),
        "lossy_jpeg": any(d.get("lossy_jpeg") for d in datasets),
        "training_hours": sum(training_seconds(r) for r in results) / 3600.0,
        "wall_hours": sum(p.get("wall_seconds", 0.0) for p in provs) / 3600.0,
        "commits": sorted({p["git_commit"][:10] for p in provs}),
    }


def training_seconds(result: dict) -> float:
    """How long a run trains when nothing stops it: the median seconds of its training-only epochs
    times their number, plus the same for its evaluated epochs (each also evaluates NC and
    accuracies, so they take longer).

    ``provenance.wall_seconds`` sums every epoch's wall time, so it also counts the minutes a
    run's process stood stopped while foreground work ran (``scripts/with-sweeps-paused.sh``
    sends it SIGSTOP) or while its machine slept; an epoch that spans such a pause is one outlier
    that a median leaves out. A result without per-epoch times falls back to its wall time.

    >>> epochs = [{"seconds": 20.0, "val_acc": None}] * 4 + [{"seconds": 900.0, "val_acc": None},
    ...           {"seconds": 30.0, "val_acc": 0.5}]
    >>> training_seconds({"epochs": epochs, "provenance": {"wall_seconds": 1010.0}})
    130.0
    """
    epochs = result.get("epochs") or []
    if not epochs or any(not isinstance(e.get("seconds"), (int, float)) for e in epochs):
        return float(result["provenance"].get("wall_seconds", 0.0))
    total = 0.0
    for evaluated in (False, True):
        seconds = [e["seconds"] for e in epochs if (e.get("val_acc") is not None) == evaluated]
        if seconds:
            total += statistics.median(seconds) * len(seconds)
    return total


TERMINAL_PHASE_TRAIN_ACC = 0.999
"""Clean training accuracy from which a network counts as fitted: the terminal phase of training
(Papyan et al. 2020) is training continued after the training error reaches zero; 99.9% allows
45 of 45,000 images (or 2 of 2,000) to stay misclassified."""

def _clean_accuracies(result: dict) -> list[tuple[int, float]]:
    return [(e["epoch"], e["clean_train_acc"]) for e in result["epochs"] if e.get("clean_train_acc") is not None]


def in_terminal_phase(result: dict) -> bool:
    """Whether a training result ends in the terminal phase: its last evaluation's accuracy on the
    clean (unaugmented) training images is at least :data:`TERMINAL_PHASE_TRAIN_ACC`. A result
    without a clean evaluation is not known to be fitted, so it does not count."""
    evaluated = _clean_accuracies(result)
    return bool(evaluated) and evaluated[-1][1] >= TERMINAL_PHASE_TRAIN_ACC


def terminal_phase_onset(result: dict) -> int | None:
    """The first evaluated epoch from which every evaluation has clean training accuracy at
    least :data:`TERMINAL_PHASE_TRAIN_ACC` (the run stays fitted from there on); None if the
    last evaluation is below it.

    >>> run = {"epochs": [{"epoch": 1, "clean_train_acc": 0.8}, {"epoch": 2, "clean_train_acc": 0.9995},
    ...                   {"epoch": 3, "clean_train_acc": 0.99}, {"epoch": 4, "clean_train_acc": 1.0},
    ...                   {"epoch": 5, "clean_train_acc": 1.0}]}
    >>> terminal_phase_onset(run)
    4
    """
    onset = None
    for epoch, acc in _clean_accuracies(result):
        if acc >= TERMINAL_PHASE_TRAIN_ACC:
            onset = epoch if onset is None else onset
        else:
            onset = None
    return onset


def terminal_phase_share(result: dict) -> float:
    """The fraction of a run's epochs trained after its :func:`terminal_phase_onset` (0 when it
    never gets there): 0.4 means the last 40% of the epochs were spent in the terminal phase."""
    onset = terminal_phase_onset(result)
    epochs = result["config"]["epochs"]
    return 0.0 if onset is None else (epochs - onset) / epochs


@dataclass
class AccuracyGrid:
    """Accuracies of a results grid, per cell ``(arch, width, epochs)`` and loss, over seeds.

    ``values[(cell, loss)]`` lists one accuracy per seed (in ``seeds[(cell, loss)]`` order);
    ``test_images`` is the size of the test set they were measured on.
    """

    cells: list[tuple]
    losses: list[str]
    values: dict[tuple, list[float]]
    seeds: dict[tuple, list[int]]
    test_images: int = 10_000

    def mean(self, cell, loss) -> float | None:
        v = self.values.get((cell, loss))
        return float(sum(v) / len(v)) if v else None

    def seed_noise(self) -> SeedNoise | None:
        """Seed-to-seed standard deviation pooled over every (cell, loss) with two or more seeds,
        with its degrees of freedom (None while no setting has two seeds). Every estimate of the
        grid uses it, whatever its own number of seeds (:mod:`ncrepro.noise`)."""
        return self._pooled_noise

    @cached_property
    def _pooled_noise(self) -> SeedNoise | None:
        # Pooled once per grid: every estimate, spread and change of spread reads it.
        return pooled_seed_noise(self.values.values())

    def seeded(self) -> list[tuple[tuple, str, int]]:
        """``(cell, loss, seeds)`` of every setting with two or more seeds: those
        :meth:`seed_noise` pools, in the grid's order of cells and losses."""
        return [(cell, loss, len(v)) for cell in self.cells for loss in self.losses
                for v in [self.values.get((cell, loss), [])] if len(v) > 1]

    def estimate(self, cell, loss) -> Estimate | None:
        """:func:`accuracy_estimate` of one loss in one cell with the grid's pooled
        :meth:`seed_noise` (None if the loss has no result there)."""
        v = self.values.get((cell, loss))
        return accuracy_estimate(v, self.test_images, seed_noise=self.seed_noise()) if v else None

    def gap_to(self, cell, loss, reference: str = "ce") -> tuple[float, float, int] | None:
        """``|acc_ref - acc_loss|`` per seed both have: (mean, standard deviation, seeds)."""
        a = dict(zip(self.seeds.get((cell, reference), []), self.values.get((cell, reference), [])))
        b = dict(zip(self.seeds.get((cell, loss), []), self.values.get((cell, loss), [])))
        common = sorted(set(a) & set(b))
        if not common:
            return None
        gaps = [abs(a[s] - b[s]) for s in common]
        mean = sum(gaps) / len(gaps)
        return mean, seed_sd(gaps) or 0.0, len(gaps)

    def variance_across_losses(self, cell) -> tuple[float, int] | None:
        """Variance of every (loss, seed) accuracy in the cell, with the number of values; None
        unless every loss of the grid has a value there."""
        if any((cell, loss) not in self.values for loss in self.losses):
            return None
        values = [v for loss in self.losses for v in self.values[(cell, loss)]]
        mean = sum(values) / len(values)
        return sum((v - mean) ** 2 for v in values) / len(values), len(values)

    def spread(self, cell) -> Spread | None:
        """:class:`Spread` of the per-loss mean accuracies in a cell (:meth:`estimate`); None
        unless every loss of the grid has a value there."""
        estimates = {loss: self.estimate(cell, loss) for loss in self.losses}
        if None in estimates.values() or len(estimates) < 2:
            return None
        return spread(estimates)

    def spread_changes(self) -> list[SpreadChange]:
        """How the spread across losses changes between neighbouring settings: from each epoch
        budget to the next longer one at a fixed (arch, width), then from each width to the next
        wider one at a fixed (arch, epochs). Only pairs where both cells have every loss count.
        A change of spread is a difference of two spreads, each a difference of two means: its
        standard error adds all four variances."""
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
    before: Spread
    after: Spread

    @property
    def change(self) -> Difference:
        return difference(self.before, self.after)

    def direction(self, level: float = TREND_LEVEL) -> str:
        """``"shrinks"``, ``"grows"``, or ``"within noise"`` when the change of spread is no trend
        at ``level`` (:meth:`ncrepro.noise.Difference.is_trend`)."""
        return self.change.direction("grows", "shrinks", level)


def loss_rank(name: str) -> int:
    """Where a loss comes in the book's order (CE, LS, FL, MSE; the registry's), for sorting
    tables, legends and lists; a name outside the registry comes last.

    >>> sorted(["mse", "fl", "other", "ce", "ls"], key=loss_rank)
    ['ce', 'ls', 'fl', 'mse', 'other']
    """
    order = list(LOSSES)
    return order.index(name) if name in order else len(order)


def accuracy_grid(results: list[dict], metric=lambda r: r["summary"]["final_test_acc"]) -> AccuracyGrid:
    """Organise results by cell ``(arch, width, epochs)`` and loss, one value per seed. The
    default metric is the final network's test accuracy, the one this book uses throughout (the
    paper's code takes the epoch with the best validation accuracy instead:
    ``metric=lambda r: r["summary"]["test_acc_at_best_val"]``)."""
    values: dict[tuple, list[float]] = {}
    seeds: dict[tuple, list[int]] = {}
    losses: list[str] = []
    for (*setting, loss), group in group_results(results, (*SETTING_KEYS, "loss")).items():
        cell = tuple(setting)
        values[(cell, loss)] = [float(metric(r)) for r in group]
        seeds[(cell, loss)] = [r["config"]["seed"] for r in group]
        if loss not in losses:
            losses.append(loss)
    losses.sort(key=loss_rank)
    cells = sorted({cell for cell, _ in values}, key=lambda c: tuple(_sort_key(v) for v in c))
    sizes = [r["provenance"]["dataset"].get("test_size") for r in results]
    sizes = [int(t) for t in sizes if isinstance(t, int) and t > 0]
    return AccuracyGrid(cells, losses, values, seeds, min(sizes) if sizes else 10_000)


# ---------------------------------------------------------------------------------------------
# Seeds as bands and estimates: what the terminal-phase chapter reads


def final_value(result: dict, key: str) -> float | None:
    """The last evaluated value of a per-epoch metric (``nc1``, ``test_acc``, ``clean_train_acc``)."""
    values = [e[key] for e in result["epochs"] if e.get(key) is not None]
    return values[-1] if values else None


def metric_estimates(results: list[dict], key: str, *, by: tuple[str, ...] = ("width", "loss"),
                     log: bool = True) -> dict[tuple, Estimate]:
    """Per group (``by`` settings), the final value of ``key`` over seeds as an :class:`Estimate`:
    of ``log10`` (``log=True``, for NC metrics, which span decades) or of the value itself. Every
    group's standard error uses the seed-to-seed spread pooled over the groups with two or more
    seeds, on the same scale (:func:`ncrepro.noise.pooled_seed_noise`); with none, no group's
    noise is measured but that of a group with its own seeds."""
    groups = _final_values(results, key, by, log)
    noise = _pooled(groups, log)
    estimate = log_estimate if log else mean_estimate
    return {group_key: estimate(values, seed_noise=noise) for group_key, values in groups.items()}


def metric_seed_noise(results: list[dict], key: str, *, by: tuple[str, ...] = ("width", "loss"),
                      log: bool = True) -> SeedNoise | None:
    """The seed-to-seed standard deviation of the final ``key`` (of its ``log10`` with
    ``log=True``) pooled over the groups (``by`` settings) with two or more seeds: the noise
    :func:`metric_estimates` gives every group; None while no group has two seeds."""
    return _pooled(_final_values(results, key, by, log), log)


def _final_values(results: list[dict], key: str, by: tuple[str, ...], log: bool) -> dict[tuple, list[float]]:
    groups = {}
    for group_key, group in group_results(results, by).items():
        values = [v for v in (final_value(r, key) for r in group) if v is not None]
        if values:
            groups[group_key] = values
    if log and not all(v > 0 and math.isfinite(v) for values in groups.values() for v in values):
        raise ValueError(f"{key} on a log scale needs positive finite final values")
    return groups


def _pooled(groups: dict[tuple, list[float]], log: bool) -> SeedNoise | None:
    scale = math.log10 if log else float
    return pooled_seed_noise([scale(v) for v in values] for values in groups.values())


@dataclass(frozen=True)
class SeedBand:
    """A metric over training for one setting: the mean over seeds at each evaluated epoch and
    the lowest and highest seed (the band); ``seeds`` is how many runs it covers."""

    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    seeds: int


def seed_band(results: list[dict], key: str, *, log: bool = False) -> SeedBand:
    """:class:`SeedBand` of ``key`` over the runs of one setting (the epochs every run evaluated).
    With ``log=True`` the mean is geometric (NC metrics span decades)."""
    if not results:
        raise ValueError("seed_band needs at least one result")
    per_run = [{e["epoch"]: e[key] for e in r["epochs"] if e.get(key) is not None} for r in results]
    epochs = sorted(set.intersection(*(set(p) for p in per_run)))
    mean, low, high = [], [], []
    for epoch in epochs:
        values = [p[epoch] for p in per_run]
        if log and all(v > 0 for v in values):
            mean.append(10 ** (sum(math.log10(v) for v in values) / len(values)))
        else:
            mean.append(sum(values) / len(values))
        low.append(min(values))
        high.append(max(values))
    return SeedBand(epochs, mean, low, high, len(results))


def augmentation_text(flags) -> str:
    """How a set of runs was augmented, from their ``augment`` settings: ``"with"``,
    ``"without"`` or ``"partly with"`` (augmentation).

    >>> augmentation_text([False, False]), augmentation_text([True, False])
    ('without', 'partly with')
    """
    return {(False,): "without", (True,): "with"}.get(tuple(sorted({bool(f) for f in flags})), "partly with")


def scale_text(summary: dict) -> str:
    """A result set's scale in one clause, from :func:`result_set_summary`, for stating next to
    every number drawn from it.

    >>> scale_text({"runs": 1, "grid_runs": 2, "train_images": [45000], "augment": [False],
    ...             "val_images": [5000], "test_images": [10000], "archs": ["resnet18"], "widths": [0.125],
    ...             "epochs": [100], "seeds": [0], "loss_scale": ["mean"], "devices": ["cpu (2 threads)"],
    ...             "training_hours": 0.6}).split("; ")[:3]  # doctest: +NORMALIZE_WHITESPACE
    ['1 of 2 runs', '45,000 training images without augmentation, 5,000 validation, 10,000 test',
     'ResNet18 at width 1/8']
    """
    from .prose import join_list, plural, width

    augment = augmentation_text(summary["augment"])
    widths = summary["widths"]
    return (f"{summary['runs']} of {summary['grid_runs']} runs; {summary['train_images'][0]:,} training images "
            f"{augment} augmentation, {summary['val_images'][0]:,} validation, {summary['test_images'][0]:,} test; "
            f"{join_list(ARCHITECTURE_NAMES.get(a, a) for a in summary['archs'])} at {plural(len(widths), 'width')} "
            f"{join_list(width(w) for w in widths)}; {join_list(map(str, summary['epochs']))} epochs; "
            f"{plural(len(summary['seeds']), 'seed')} {join_list(map(str, summary['seeds']))}; "
            f"batch-{join_list(summary['loss_scale'], last='or')} loss; {join_list(summary['devices'])}; "
            f"{summary['training_hours']:.1f} hours of training")


def result_value(result: dict, path: str):
    """A value of a result by its dotted path: ``"summary.final_test_acc"``,
    ``"analysis.test_nc.nc1"``; ``"final.<key>"`` is :func:`final_value` of a per-epoch metric.

    >>> result_value({"analysis": {"test_nc": {"nc1": 0.5}}}, "analysis.test_nc.nc1")
    0.5
    """
    if path.startswith("final."):
        return final_value(result, path[len("final."):])
    value = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"{result.get('run', 'a result')}: has no {path!r}")
        value = value[part]
    return value
