"""Twin runs: networks trained alike but for one setting, compared against the seed noise.

A twin of a run is the same run (same data, network, loss, seed and schedule) with one setting
changed, for instance trained in float32 instead of bfloat16 (the precision control of the
terminal-phase protocol). Two twins are not two draws of one experiment: they start from the
same weights and see the same batches, and they part only through the changed setting, whose
rounding differences grow chaotically over training. So the question a twin answers is whether
the changed setting moves a result further than a change of seed does: each twin's difference
is judged by the rule of :mod:`ncrepro.noise` with the reference set's pooled seed-to-seed
noise on both sides, as if the twins were two seeds. A setting that matters no more than a seed
passes; one that matters more shows as a trend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .comparison import MEASURES, network_pairs
from .noise import (
    NOISE_NOT_MEASURED,
    TREND_LEVEL,
    Difference,
    accuracy_estimate,
    chance_trends,
    difference,
    log_estimate,
    mean_difference,
)
from .prose import count, join_list, signed, value_range, width
from .results import accuracy_grid, final_value, metric_seed_noise, setting_of, terminal_phase_onset
from .train import EXECUTION_SETTINGS, stored_settings

__all__ = ["Twin", "TwinComparison", "twin_pairs", "compare_twins", "twins_against_seeds"]


def twin_pairs(reference: list[dict], others: list[dict], setting: str) -> list[tuple[dict, dict]]:
    """``(reference run, its twin)`` for every run of ``others`` whose config equals one of
    ``reference`` in everything but ``setting`` (and the execution settings: device, compile),
    in the order of ``others``. A setting a stored config lacks counts as its default.

    Raises:
        ValueError: a run of ``others`` has the same ``setting`` as its match (not a twin), or
            matches two reference runs.
    """
    def key(result: dict) -> str:
        # A setting missing from a stored config counts as its default, as when a result is checked.
        config = stored_settings(result["config"])
        return repr(sorted((k, v) for k, v in config.items() if k != setting and k not in EXECUTION_SETTINGS))

    by_key: dict[str, list[dict]] = {}
    for r in reference:
        by_key.setdefault(key(r), []).append(r)
    pairs = []
    for other in others:
        matches = by_key.get(key(other), [])
        if len(matches) > 1:
            raise ValueError(f"{other.get('run', 'a run')}: matches {len(matches)} reference runs")
        if not matches:
            continue
        if matches[0]["config"].get(setting) == other["config"].get(setting):
            raise ValueError(f"{other.get('run', 'a run')}: has the same {setting} as its reference run, "
                             f"{other['config'].get(setting)!r}; a twin differs in it")
        pairs.append((matches[0], other))
    return pairs


@dataclass(frozen=True)
class Twin:
    """One reference run and its twin, which differs from it in ``setting``: ``accuracy`` is the
    twin's final test accuracy minus the reference's, ``nc1`` the same of ``log10`` final NC1 (on
    the training features), each with the noise of two seeds (:mod:`ncrepro.noise`)."""

    setting: str
    reference: dict
    other: dict
    accuracy: Difference
    nc1: Difference

    @property
    def loss(self) -> str:
        return self.reference["config"]["loss"]

    @property
    def onsets(self) -> tuple[int | None, int | None]:
        """The terminal-phase onset of the reference and of the twin (None: not fitted at the end)."""
        return terminal_phase_onset(self.reference), terminal_phase_onset(self.other)

    def names(self, names) -> tuple[str, str]:
        """How the reference's and the twin's values of the setting read (``names``, else as stored)."""
        values = self.reference["config"][self.setting], self.other["config"][self.setting]
        return names.get(values[0], values[0]), names.get(values[1], values[1])

    def text(self, labels, names) -> str:
        """One twin as a reader reads it: how each side fits the training set, then the twin's
        final test accuracy and NC1 against the reference's, each with its noise and verdict.
        ``labels`` names losses, ``names`` the values of the changed setting."""
        ref_name, other_name = self.names(names)
        fits = [f"{name} {_fit_text(run)}" for name, run in ((other_name, self.other), (ref_name, self.reference))]
        nc1 = self.nc1
        return (f"{_twin_name(self, labels)}: {fits[0]}, {fits[1]}; final test accuracy {other_name} minus {ref_name} "
                f"{self.accuracy.text('.2f', scale=100, unit=' points')} "
                f"({_verdict(self.accuracy, '.2f', scale=100, unit=' points')}); final NC1 {_factor(nc1.delta)} in "
                f"{other_name}, {nc1.text('.3f')} in log₁₀ NC1 ({_verdict(nc1, '.3f')})")


@dataclass(frozen=True)
class TwinComparison:
    """Every twin of a set, and the mean of their differences (the setting's average effect:
    one test, however many twins)."""

    setting: str
    twins: list[Twin]
    mean_accuracy: Difference | None
    mean_nc1: Difference | None

    def text(self, labels, names) -> str:
        """The twins as a reader reads them: one twin in full (:meth:`Twin.text`); two or more
        summarised, so that the paragraph does not grow with every twin (the table beside it has
        each one): how many reach the terminal phase alike, the range of each difference with the
        rule's reading (naming any twin beyond the noise), then the mean of the differences, one
        test of the setting's average effect. ``""`` with no twin."""
        if not self.twins:
            return ""
        if len(self.twins) == 1:
            return self.twins[0].text(labels, names) + "."
        ref_name, other_name = self.twins[0].names(names)
        n = len(self.twins)
        named = dict(zip(_twin_names(self.twins, labels), self.twins))
        apart = [name for name, t in named.items() if t.onsets[0] != t.onsets[1]]
        onsets = (f"The twins reach the terminal phase at the same evaluation, or both miss it, in {n - len(apart)} "
                  f"of {n} pairs")
        if apart:
            onsets += " (not: " + join_list(
                f"{name}, {other_name} {_fit_text(named[name].other)} and {ref_name} "
                f"{_fit_text(named[name].reference)}" for name in apart) + ")"
        acc, nc1 = self.mean_accuracy, self.mean_nc1
        accuracy = {name: t.accuracy for name, t in named.items()}
        log_nc1 = {name: t.nc1 for name, t in named.items()}
        return (f"{onsets}. Final test accuracy, {other_name} minus {ref_name}, "
                f"{_range_text(accuracy, '.2f', scale=100, unit=' points')}. "
                f"Final NC1 is {value_range((10 ** t.nc1.delta for t in self.twins), '.2f', sep=' to ')} times "
                f"as high in {other_name}; in log₁₀ NC1, {_range_text(log_nc1, '.3f')}. "
                f"Over the {n} twins, {other_name} minus {ref_name} on average: final test accuracy "
                f"{acc.text('.2f', scale=100, unit=' points')} "
                f"({_verdict(acc, '.2f', scale=100, unit=' points', mean=True)}), "
                f"log₁₀ NC1 {nc1.text('.3f')} ({_verdict(nc1, '.3f', mean=True)}).")


def compare_twins(reference: list[dict], others: list[dict], setting: str) -> TwinComparison:
    """Pair ``others`` with their twins in ``reference`` (:func:`twin_pairs`) and set each pair's
    differences against the seed-to-seed noise pooled over the whole reference set: of the final
    test accuracy (with the test set's binomial noise of each network) and of ``log10`` final NC1.
    Where the reference set has no two seeds of one setting the noise is not measured, and no
    difference can be a trend (:attr:`ncrepro.noise.Difference.measured`)."""
    pairs = twin_pairs(reference, others, setting)
    grid = accuracy_grid(reference)
    accuracy_noise = grid.seed_noise()
    nc1_noise = metric_seed_noise(reference, "nc1")
    twins = []
    for ref, other in pairs:
        accuracy = difference(
            accuracy_estimate([ref["summary"]["final_test_acc"]], grid.test_images, seed_noise=accuracy_noise),
            accuracy_estimate([other["summary"]["final_test_acc"]], grid.test_images, seed_noise=accuracy_noise))
        if accuracy_noise is None:
            # The test set's binomial term alone would understate the noise of two networks.
            accuracy = Difference(accuracy.delta, math.nan)
        nc1 = difference(log_estimate([final_value(ref, "nc1")], seed_noise=nc1_noise),
                         log_estimate([final_value(other, "nc1")], seed_noise=nc1_noise))
        twins.append(Twin(setting, ref, other, accuracy, nc1))
    return TwinComparison(
        setting, twins,
        mean_difference(t.accuracy for t in twins) if twins else None,
        mean_difference(t.nc1 for t in twins) if twins else None)


def twins_against_seeds(comparison: TwinComparison, reference: list[dict], labels, names,
                        others: list[dict] = ()) -> str:
    """How far apart the twins end, set beside networks of one loss from two seeds in the same
    setting (architecture, width, epochs), of the reference set and of the twins' own set
    ``others`` (each pair formed within one set, so at one value of the setting): the share of
    test images on which each pair predicts the same class, and the Procrustes distance between
    their centred class means (:mod:`ncrepro.comparison`); then, per measure, how many twins fall
    closer than every pair of seeds of their own setting, within their range, or further apart
    than every pair. A twin whose setting has no two seeds of one loss is counted apart, never
    judged by seeds of another setting: a wider network is more accurate, so two wide networks
    agree more than two narrow ones whatever parts them. ``""`` without twins or without two seeds
    of one loss in any twin's setting.

    Twins start from the same weights and see the same batches, so a setting that only rounds
    differently could leave them closer than two seeds, and then the noise of two seeds, by which
    :func:`compare_twins` judges them, would hide a real effect. This says whether it does: only
    when every judged twin is closer than every pair of seeds in both measures does the text say so."""
    if not comparison.twins:
        return ""
    settings = list(dict.fromkeys(setting_of(t.reference) for t in comparison.twins))
    # Only the twins' settings can hold their yardstick: no pair is formed elsewhere.
    sets = [(name, [r for r in results if setting_of(r) in settings])
            for name, results in zip(comparison.twins[0].names(names), (reference, others))]
    ref_name, other_name = sets[0][0], sets[1][0]
    # How a yardstick names its setting: only where the twins span several.
    at_setting = {s: f" at {_setting_text(s, settings)}" if len(settings) > 1 else "" for s in settings}
    clauses, readings, all_closer, all_further = [], [], True, True
    for measure in ("agreement", "geometry"):
        fn, larger_is_closer = MEASURES[measure]
        # Pairs within each set: two seeds at one value of the setting, never one of each.
        by_set = [(name, [p for p in network_pairs(results, measure) if p.kind == "seeds"]) for name, results in sets]
        if not any(set_pairs for _, set_pairs in by_set):
            return ""
        fmt = (lambda v: f"{100 * v:.1f}%") if larger_is_closer else (lambda v: f"{v:.3f}")
        seeds_at, yardsticks = {}, []
        for setting in settings:
            at = [(name, [p for p in set_pairs if p.setting == setting]) for name, set_pairs in by_set]
            seeds = [p.value for _, set_pairs in at for p in set_pairs]
            if not seeds:
                yardsticks.append(f"no two networks of one loss from different seeds{at_setting[setting]} yet"
                                  if larger_is_closer else f"none yet{at_setting[setting]}")
                continue
            seeds_at[setting] = seeds
            spread = fmt(min(seeds)) if len(seeds) == 1 else f"{fmt(min(seeds))} to {fmt(max(seeds))}"
            if not larger_is_closer:
                yardsticks.append(spread + at_setting[setting])
                continue
            # Which losses the yardstick comes from: a twin of a loss without two seeds has none of its own.
            sources = [(name, join_list(labels.get(loss, loss) for loss in dict.fromkeys(p.loss_a for p in set_pairs)))
                       for name, set_pairs in at if set_pairs]
            only_reference = len(sources) == 1 and sources[0][0] == ref_name
            losses = sources[0][1] if only_reference else "; ".join(f"{who} in {name}" for name, who in sources)
            yardsticks.append(f"{spread} for two networks of one loss from different seeds{at_setting[setting]} "
                              f"({count(len(seeds), 'pair')}: {losses})")
        twins = [(setting_of(t.reference), fn(t.reference, t.other)) for t in comparison.twins]
        values = join_list(fmt(v) for _, v in twins)
        if measure == "agreement":
            clauses.append(f"predict the same class on {values} of the test images, against {join_list(yardsticks)}")
        else:
            clauses.append(f"their centred class means are {values} apart (Procrustes distance), against "
                           f"{join_list(yardsticks)}")
        side = {"closer": 0, "within": 0, "further": 0, "alone": 0}
        for setting, v in twins:
            seeds = seeds_at.get(setting)
            if seeds is None:
                side["alone"] += 1
                continue
            closer = v > max(seeds) if larger_is_closer else v < min(seeds)
            further = v < min(seeds) if larger_is_closer else v > max(seeds)
            side["closer" if closer else "further" if further else "within"] += 1
        judged = len(twins) - side["alone"]
        all_closer = all_closer and side["closer"] == judged
        all_further = all_further and side["further"] == judged
        readings.append(f"in {'predictions' if larger_is_closer else 'geometry'}, "
                        + join_list(f"{n} {_SIDES[where]}" for where, n in side.items() if n))
    if all_closer:
        end = ("The twins stay closer than two seeds, so the noise of two seeds, by which they are judged above, "
               "could hide an effect of the setting smaller than it.")
    elif all_further:
        end = f"Changing only the {comparison.setting} parts the twins further than a change of seed does."
    else:
        end = (f"Changing only the {comparison.setting} parts the twins about as far as a change of seed, so the "
               "noise of two seeds is the yardstick they are judged by above.")
    twins_text = join_list(_twin_names(comparison.twins, labels))
    return (f"How far apart the twins end: the {other_name} and {ref_name} networks of {twins_text} {clauses[0]}; "
            f"{clauses[1]}. Of the {count(len(comparison.twins), 'twin')}: {'; '.join(readings)}. {end}")


_SIDES = {"closer": "closer than every pair of seeds", "within": "within the seeds' range",
          "further": "further apart than every pair of seeds", "alone": "with no two seeds of one loss to set beside"}


def _setting_text(setting: tuple, settings: list[tuple]) -> str:
    """``setting`` (arch, width, epochs) named by what tells it apart from the others in
    ``settings``: ``"width 1/4"``, or ``"width 1/4, 100 epochs"``, ``"wrn50 at width 1/2"``."""
    arch, w, epochs = setting
    parts = [f"width {width(w)}"] if len({s[1] for s in settings}) > 1 else []
    if len({s[2] for s in settings}) > 1:
        parts.append(f"{epochs} epochs")
    text = ", ".join(parts) or f"width {width(w)}"
    return f"{arch} at {text}" if len({s[0] for s in settings}) > 1 else text


def _twin_name(twin: Twin, labels, *, with_width: bool = False) -> str:
    where = f" at width {width(twin.reference['config']['width'])}" if with_width else ""
    return f"{labels.get(twin.loss, twin.loss)}{where} with seed {twin.reference['config']['seed']}"


def _twin_names(twins: list[Twin], labels) -> list[str]:
    """Each twin's name, with its width where the twins span several widths: loss and seed alone
    would name two twins alike (and, as keys, drop one)."""
    with_width = len({t.reference["config"]["width"] for t in twins}) > 1
    return [_twin_name(t, labels, with_width=with_width) for t in twins]


def _range_text(diffs: dict[str, Difference], fmt: str, *, scale: float = 1.0, unit: str = "") -> str:
    """The range of several twin differences (by twin name) and the rule's reading of them: every
    one within the noise (with the range of what a trend would need), or which are beyond it and
    how many chance alone would put beyond it (:func:`ncrepro.noise.chance_trends`)."""
    low, high = (signed(scale * f(d.delta for d in diffs.values()), fmt) for f in (min, max))
    values = f"from {low} to {high}{unit}"
    if not all(d.measured for d in diffs.values()):
        return f"{values} ({NOISE_NOT_MEASURED})"
    beyond = [f"{name}, {d.text(fmt, scale=scale, unit=unit)}" for name, d in diffs.items() if d.is_trend()]
    needs = f"a trend needs more than {value_range((scale * d.threshold() for d in diffs.values()), fmt)}{unit}"
    if not beyond:
        return f"{values}: each within the noise of two seeds ({needs})"
    text = (f"{values}: further apart than two seeds for {join_list(beyond)}, within it for the other "
            f"{count(len(diffs) - len(beyond), 'twin')} ({needs})")
    if len(diffs) > 1:
        # Several twins judged at once: the rule's false alarms add up, so say how many to expect.
        expected, p = chance_trends(len(diffs), len(beyond))
        text += (f"; were chance all that set twins apart, the rule (at its {100 * (1 - TREND_LEVEL):.0f}% level) "
                 f"would find {expected:.2f} of {len(diffs)} twins further apart than two seeds on average, "
                 f"and at least {len(beyond)} in {100 * p:.0f}% of cases (twins taken as independent)")
    return text


def _fit_text(result: dict) -> str:
    onset = terminal_phase_onset(result)
    if onset is not None:
        return f"fitted from epoch {onset}"
    return f"not fitted ({100 * final_value(result, 'clean_train_acc'):.2f}% at the end)"


def _factor(log_delta: float) -> str:
    """``"1.75 times lower"`` for a change of ``log10`` by -0.243."""
    ratio = 10 ** abs(log_delta)
    return f"{ratio:.2f} times {'lower' if log_delta < 0 else 'higher'}"


def _verdict(d: Difference, fmt: str, *, scale: float = 1.0, unit: str = "", mean: bool = False) -> str:
    """The rule's reading of a twin difference, or of the ``mean`` of several (whose noise is less
    than two seeds'), with what a trend would have needed."""
    if not d.measured:
        return d.direction()
    if mean:
        reading = "a trend" if d.is_trend() else "within noise"
    else:
        reading = "further apart than two seeds" if d.is_trend() else "within the noise of two seeds"
    return f"{reading}; {d.rule_text(fmt, scale=scale, unit=unit)}"
