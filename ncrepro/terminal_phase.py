"""What a set of networks trained into the terminal phase shows: when each fits its training set,
how far its last layer collapses, and how the losses' test accuracies compare, every comparison
with its noise (:mod:`ncrepro.noise`). The real-networks chapter and the scorecard read this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .models import ARCHITECTURE_NAMES
from .noise import Estimate, SeedNoise, ordering, ordering_text
from .prose import count, join_list, plus_minus, width
from .results import (
    AccuracyGrid,
    SpreadChange,
    accuracy_grid,
    augmentation_text,
    final_value,
    group_results,
    in_terminal_phase,
    loss_rank,
    metric_estimates,
    setting_of,
    terminal_phase_onset,
    terminal_phase_share,
)

__all__ = ["TerminalPhaseSummary", "summarise_terminal_phase", "first_epoch_below", "losses_text", "networks_scale",
           "run_name"]


def first_epoch_below(result: dict, key: str, threshold: float) -> int | None:
    """The first evaluated epoch at which the metric ``key`` is below ``threshold`` (None if never)."""
    return next((e["epoch"] for e in result["epochs"] if e.get(key) is not None and e[key] < threshold), None)


def _seeds_text(runs_by_loss: dict[str, list]) -> str:
    fewest, most = min(map(len, runs_by_loss.values())), max(map(len, runs_by_loss.values()))
    return count(most, "seed") if fewest == most else f"{fewest}–{most} seeds"


def _by_width_and_loss(results: list[dict]) -> dict[float, dict[str, list[dict]]]:
    """Runs by width, then by loss in the book's order of the losses (CE, LS, FL, MSE), which
    every table, legend and list drawn from it follows."""
    settings: dict[float, dict[str, list[dict]]] = {}
    groups = group_results(results, ("width", "loss")).items()
    for (w, loss), runs in sorted(groups, key=lambda g: (g[0][0], loss_rank(g[0][1]))):
        settings.setdefault(w, {})[loss] = runs
    return settings


def networks_scale(results: list[dict], data: str = "CIFAR-10", *, none: str = "no terminal-phase run yet") -> str:
    """The networks a verdict rests on, short enough for the scorecard's grid, with the seeds per
    width (a range while the losses at a width have different numbers of seeds); ``none`` when
    there are none.

    >>> cfg = {"arch": "resnet18", "loss": "ce", "device": "cpu"}
    >>> networks_scale([{"config": {**cfg, "width": 0.125, "seed": s}} for s in (0, 1)]
    ...                + [{"config": {**cfg, "width": 0.25, "seed": 0}}])
    'ResNet18 at widths 1/8 (2 seeds) and 1/4 (1 seed), CIFAR-10, CPU'
    """
    if not results:
        return none
    settings = _by_width_and_loss(results)
    widths = join_list(f"{width(w)} ({_seeds_text(settings[w])})" for w in sorted(settings))
    archs = join_list(sorted({ARCHITECTURE_NAMES.get(r["config"]["arch"], r["config"]["arch"]) for r in results}))
    devices = join_list(sorted({"CPU" if r["config"]["device"] == "cpu" else "GPU" for r in results}))
    return f"{archs} at width{'s' if len(settings) > 1 else ''} {widths}, {data}, {devices}"


@dataclass
class TerminalPhaseSummary:
    """Everything :func:`summarise_terminal_phase` finds; see its docstring."""

    results: list[dict]
    settings: dict[float, dict[str, list[dict]]]
    onsets: dict[str, int | None]
    fitted: list[dict]
    long_enough: list[dict]
    nc: dict[str, dict[tuple, Estimate]]
    nc2_above_random: list[dict]
    nc3_above_random: list[dict]
    nc1_drop_min: float
    grid: AccuracyGrid
    seed_noise: SeedNoise | None
    changes: list[SpreadChange]
    ls_ce: dict = field(default_factory=dict)

    @property
    def widths(self) -> list[float]:
        return sorted(self.settings)

    def seeds(self, w: float) -> int:
        """The most seeds any loss has at width ``w``."""
        return max(len(runs) for runs in self.settings[w].values())

    def seeds_text(self, w: float) -> str:
        """``"3 seeds"``, or ``"1–2 seeds"`` while the losses at width ``w`` have different numbers."""
        return _seeds_text(self.settings[w])

    def mean_onsets(self, w: float) -> dict[str, float]:
        """Per loss at width ``w``, the mean onset epoch over its seeds (losses whose every seed is
        fitted)."""
        return {loss: sum(self.onsets[r["run"]] for r in runs) / len(runs)
                for loss, runs in self.settings[w].items() if all(self.onsets[r["run"]] for r in runs)}

    def nc1_orderings(self, labels) -> list[str]:
        """"MSE < LS ≈ CE < FL at width 1/8 (3 seeds)", one per width with two or more losses."""
        out = []
        for w in self.widths:
            estimates = {loss: e for (ww, loss), e in self.nc["nc1"].items() if ww == w}
            if len(estimates) > 1:
                out.append(f"{ordering_text(estimates, labels)} at width {width(w)} ({self.seeds_text(w)})")
        return out

    def nc1_closest_steps(self, labels) -> list[str]:
        """Per width with two or more losses whose noise is measured, the step of the NC1 ordering
        nearest to the rule's threshold (smallest ``|delta| / threshold``), the one a reader
        should doubt first: ``"at width 1/8, CE to FL, 0.351 in log₁₀ NC1 (a trend needs more than
        0.050, ...)"``."""
        out = []
        for w in self.widths:
            estimates = {loss: e for (ww, loss), e in self.nc["nc1"].items() if ww == w}
            steps = [(a, b, d) for a, b, d in ordering(estimates) if d.measured]
            if not steps:
                continue
            a, b, d = min(steps, key=lambda step: abs(step[2].delta) / step[2].threshold())
            out.append(f"at width {width(w)}, {labels.get(a, a)} to {labels.get(b, b)}, "
                       f"{d.delta:.3f} in log₁₀ NC1 ({d.rule_text('.3f')})")
        return out

    def seed_noise_text(self, labels, level: float = 0.95) -> str | None:
        """The pooled seed-to-seed standard deviation of test accuracy, where it was measured and
        how well it is known, for instance ``"0.21 points, pooled over CE at width 1/8 (2 seeds):
        with 1 degree of freedom, its 95% interval runs from 0.09 to 6.70 points"``; None while no
        setting has two seeds. Every loss with one seed borrows this value, so the reader needs
        to see how little a few seeds pin it down (:meth:`ncrepro.noise.SeedNoise.interval`)."""
        if self.seed_noise is None:
            return None
        by_width: dict[float, list[tuple[str, int]]] = {}
        for cell, loss, n in self.grid.seeded():
            by_width.setdefault(cell[1], []).append((labels.get(loss, loss), n))
        where = []
        for w, settings in by_width.items():
            sizes = {n for _, n in settings}
            if len(sizes) == 1:
                each = " each" if len(settings) > 1 else ""
                names = join_list(name for name, _ in settings)
                where.append(f"{names} at width {width(w)} ({count(sizes.pop(), 'seed')}{each})")
            else:
                names = join_list(f"{name} ({count(n, 'seed')})" for name, n in settings)
                where.append(f"{names} at width {width(w)}")
        low, high = self.seed_noise.interval(level)
        return (f"{100 * self.seed_noise.sd:.2f} points, pooled over {join_list(where)}: with "
                f"{count(self.seed_noise.dof, 'degree')} of freedom, its {100 * level:g}% interval runs from "
                f"{100 * low:.2f} to {100 * high:.2f} points")

    def nc_table(self, labels, baselines: Mapping[float, Mapping[str, float]]) -> tuple[list[str], list[list]]:
        """The columns and rows of the book's table of final NC metrics: per width and loss, the
        number of seeds, NC1-NC3 as the geometric mean over seeds ×÷ the seed-to-seed factor (the
        mean alone for one seed) and NC4 as mean ± sd; then, per width of the set, the NC2 and NC3
        of random geometry at the same dimension (``baselines``, as for
        :func:`summarise_terminal_phase`)."""
        rows = []
        for w in self.widths:
            for loss in self.settings[w]:
                nc = [self.nc[key][(w, loss)] for key in ("nc1", "nc2", "nc3", "nc4")]
                rows.append([width(w), labels.get(loss, loss), nc[0].n]
                            + [f"{10 ** e.mean:.3g}" + ("" if e.sd is None else f" ×÷ {10 ** e.sd:.2f}")
                               for e in nc[:3]]
                            + [plus_minus(nc[3].mean, nc[3].sd, ".2g")])
        rows += [[width(w), "random geometry", "–", "–", f"{baselines[w]['nc2']:.3f}", f"{baselines[w]['nc3']:.3f}",
                  "–"] for w in self.widths]
        return ["width", "loss", "seeds", "NC1", "NC2", "NC3", "NC4"], rows

    def accuracy_table(self, labels) -> tuple[list[str], list[list[str]]]:
        """The columns and rows of the book's table of final test accuracy: per width, each loss's
        mean ± seed-to-seed standard deviation in percent ("–" where it has no run yet), the spread
        across losses ± its standard error in points and which loss is best and worst ("–" until
        every loss has a run there)."""
        grid = self.grid
        columns = ["width"] + [labels.get(loss, loss) for loss in grid.losses] + ["spread (points)", "best / worst"]
        rows = []
        for cell in grid.cells:
            estimates = [grid.estimate(cell, loss) for loss in grid.losses]
            sp = grid.spread(cell)
            rows.append([width(cell[1])]
                        + ["–" if e is None else plus_minus(100 * e.mean, None if e.sd is None else 100 * e.sd)
                           for e in estimates]
                        + (["–", "–"] if sp is None else
                           [f"{100 * sp.value:.2f} ± {100 * sp.se:.2f}",
                            f"{labels.get(sp.best, sp.best)} / {labels.get(sp.worst, sp.worst)}"]))
        return columns, rows

    def accuracy_text(self, labels) -> str:
        """How the losses' final test accuracies compare, each number with its noise: the pooled
        seed-to-seed noise (:meth:`seed_noise_text`), the spread across losses at each width where
        every loss has finished, and how that spread changes from width to width by the trend rule
        (:meth:`ncrepro.noise.Difference.is_trend`)."""
        spreads = []
        for cell in self.grid.cells:
            sp = self.grid.spread(cell)
            if sp is not None:
                spreads.append(f"{100 * sp.value:.2f} ± {100 * sp.se:.2f} points at width {width(cell[1])} "
                               f"({sp.finding()}: {sp.rule_text('.2f', scale=100, unit=' points')})")
        sentences = [
            "The seed-to-seed standard deviation of one network's test accuracy is "
            f"{self.seed_noise_text(labels)}."
            if self.seed_noise is not None
            else "No loss has two seeds yet, so the seed-to-seed noise is not measured yet; until it is, only the "
            "test set's sampling noise enters the standard errors.",
            f"The spread across {losses_text(len(self.grid.losses))} is {join_list(spreads)}."
            if spreads
            else "No width has all four losses finished yet, so there is no spread to read.",
        ]
        for c in self.changes:
            direction = "within noise" if c.direction() == "within noise" else f"so it {c.direction()}"
            sentences.append(f"From width {width(c.cell_before[1])} to {width(c.cell_after[1])} it changes by "
                             f"{c.change.text('.2f', scale=100, unit=' points')}, {direction}: "
                             f"{c.change.rule_text('.2f', scale=100, unit=' points')}.")
        return " ".join(sentences)

    @property
    def unfitted(self) -> list[dict]:
        """The runs that end below the terminal-phase threshold, in the order of ``results``."""
        fitted = {r["run"] for r in self.fitted}
        return [r for r in self.results if r["run"] not in fitted]

    def unfitted_text(self, labels) -> str:
        """The runs that end below the terminal-phase threshold, each with its final clean training
        accuracy and how many training images it still gets wrong; ``"none"`` if every run is fitted."""
        out = []
        for r in self.unfitted:
            acc = final_value(r, "clean_train_acc")
            wrong = round((1 - acc) * r["provenance"]["dataset"]["train_size"])
            out.append(f"{run_name(r, labels)} ({100 * acc:.2f}%, {wrong:,} training images wrong)")
        return join_list(out)

    def scale(self) -> str:
        """:func:`networks_scale` with the training images, augmentation and epoch budget."""
        if not self.results:
            return networks_scale([])
        images = join_list(f"{n:,}" for n in sorted({r["provenance"]["dataset"]["train_size"] for r in self.results}))
        augment = augmentation_text(r["config"]["augment"] for r in self.results)
        epochs = join_list(str(n) for n in sorted({r["config"]["epochs"] for r in self.results}))
        return networks_scale(self.results,
                              data=f"{images} CIFAR-10 training images {augment} augmentation, {epochs} epochs")

    def evidence(self, labels) -> dict:
        """The values the scorecard's rules read (:mod:`ncrepro.verdicts`)."""
        complete = [c for c in self.grid.cells if self.grid.spread(c) is not None]
        last = self.changes[-1] if self.changes else None
        return {
            "runs": len(self.results),
            "fitted": len(self.fitted),
            "unfitted": [run_name(r, labels) for r in self.unfitted],
            "scale": self.scale(),
            "networks": networks_scale(self.results),
            # The spreads rest only on the widths where every loss trained so far has finished (a
            # spread over fewer would not compare with one over all four).
            "spread_networks": networks_scale(
                [r for r in self.results if setting_of(r) in complete],
                none="no width with every loss finished yet"),
            "nc1_drop_min": self.nc1_drop_min,
            "nc1_order": join_list(self.nc1_orderings(labels)),
            # The runs whose NC2 or NC3 ends above random geometry, by name.
            "nc2_above_random": [run_name(r, labels) for r in self.nc2_above_random],
            "nc3_above_random": [run_name(r, labels) for r in self.nc3_above_random],
            "losses": len(self.grid.losses),
            # Degrees of freedom of the pooled seed-to-seed noise (0: none measured yet).
            "seed_noise_dof": 0 if self.seed_noise is None else self.seed_noise.dof,
            # Per width, in points: the spread, its standard error, the smallest spread that is a
            # trend, and what the rule found (ncrepro.noise.Spread.finding).
            "spreads": {width(c[1]): {"spread": 100 * sp.value, "se": 100 * sp.se, "needs": 100 * sp.threshold(),
                                      "finding": sp.finding()}
                        for c in complete for sp in [self.grid.spread(c)]},
            "spread_change": None if last is None else {
                "from": width(last.cell_before[1]), "to": width(last.cell_after[1]),
                "delta": 100 * last.change.delta, "se": 100 * last.change.se, "direction": last.direction()},
        }


def run_name(result: dict, labels: Mapping[str, str]) -> str:
    """A run as the book names it: its loss, width and seed.

    >>> run_name({"config": {"loss": "fl", "width": 0.25, "seed": 0}}, {"fl": "FL"})
    'FL at width 1/4 with seed 0'
    """
    c = result["config"]
    return f"{labels.get(c['loss'], c['loss'])} at width {width(c['width'])} with seed {c['seed']}"


def losses_text(n: int) -> str:
    """How a spread names the losses it is over: ``"the four losses"``, or ``"the 3 losses
    finished so far"`` while some are missing.

    >>> losses_text(4), losses_text(1)
    ('the four losses', 'the 1 loss finished so far')
    """
    # The protocols train the paper's four losses; fewer means some have not finished.
    return "the four losses" if n == 4 else f"the {count(n, 'loss', 'losses')} finished so far"


def summarise_terminal_phase(results: list[dict], baselines: dict[float, dict[str, float]], *,
                             threshold_nc1: float = 1.0) -> TerminalPhaseSummary:
    """Summarise a terminal-phase result set.

    Args:
        results: finished results (``load_results``), any widths, losses and seeds.
        baselines: per width, the NC2 and NC3 of random geometry at that dimension
            (:func:`ncrepro.metrics.random_nc_baseline`).
        threshold_nc1: the NC1 level whose first crossing times label smoothing against cross
            entropy (the follow-up claim that LS collapses faster).

    Returns a :class:`TerminalPhaseSummary`: runs by width and loss; each run's terminal-phase
    onset; which runs end fitted and which spend a third of their epochs fitted; final NC1–NC4
    over seeds (log scale for NC1–NC3; a setting with one seed borrows the seed-to-seed spread
    pooled over the others); the runs whose NC2 or NC3 end above random geometry; the
    smallest factor by which NC1 fell in a run; the accuracy grid with the pooled seed-to-seed
    noise and how the spread across losses changes between widths; and LS against CE timing.
    """
    settings = _by_width_and_loss(results)
    onsets = {r["run"]: terminal_phase_onset(r) for r in results}
    fitted = [r for r in results if in_terminal_phase(r)]
    # NC metrics over seeds (log scale but NC4, a fraction that reaches 0), each with the
    # seed-to-seed spread pooled over the settings that have several seeds.
    nc = {key: metric_estimates(results, key, log=key != "nc4") for key in ("nc1", "nc2", "nc3", "nc4")}
    above = {key: [r for r in results if final_value(r, key) > baselines[r["config"]["width"]][key]]
             for key in ("nc2", "nc3")}
    drops = []
    for r in results:
        first = next(e["nc1"] for e in r["epochs"] if e.get("nc1") is not None)
        drops.append(first / final_value(r, "nc1"))
    grid = accuracy_grid(results)
    seed_noise = grid.seed_noise()
    pairs = [(by["ls"], by["ce"]) for _, group in group_results(results, ("width", "seed")).items()
             for by in [{r["config"]["loss"]: r for r in group}] if "ls" in by and "ce" in by]
    never = 10 ** 9
    first = [[first_epoch_below(r, "nc1", threshold_nc1) or never for r in pair] for pair in pairs]
    ls_ce = {
        "networks": networks_scale([r for pair in pairs for r in pair],
                                   none="no width with both CE and LS finished yet"),
        "threshold": threshold_nc1,
        "settings": len(pairs),
        "ls_first": sum(a < b for a, b in first),
        "ties": sum(a == b for a, b in first),
        "ce_first": sum(a > b for a, b in first),
        "early_ls_lower": sum(next(e["nc1"] for e in ls["epochs"] if e.get("nc1") is not None)
                              < next(e["nc1"] for e in ce["epochs"] if e.get("nc1") is not None) for ls, ce in pairs),
    }
    return TerminalPhaseSummary(
        results=results, settings=settings, onsets=onsets, fitted=fitted,
        long_enough=[r for r in fitted if terminal_phase_share(r) >= 1 / 3], nc=nc,
        nc2_above_random=above["nc2"], nc3_above_random=above["nc3"],
        nc1_drop_min=min(drops, default=0.0), grid=grid, seed_noise=seed_noise,
        changes=grid.spread_changes(), ls_ce=ls_ce)
