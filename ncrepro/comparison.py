"""Comparing trained networks with each other, the direct test of "the losses produce equivalent
features": between networks trained with different losses, and, as the yardstick, between
networks trained with the same loss from different seeds.

Two measures read from each result's final-network analysis:

* :func:`geometry_distance`: the Procrustes distance between the centred class means' Gram
  matrices (0 = the same shape up to rotation and scale; the feature spaces never meet);
* :func:`prediction_agreement`: the fraction of test images on which two networks predict the
  same class (1 = identical decisions), which counts *which* images each gets right, not only
  how many.

:func:`network_pairs` forms every comparable pair of a result set; :func:`compare_with_seeds`
says whether networks of different losses are further apart than networks of one loss are from
seed to seed, by the book's noise rule (:meth:`ncrepro.noise.Difference.is_trend`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .metrics import gram_procrustes_distance, simplex_etf
from .noise import TREND_LEVEL, Difference, Estimate, NoiseTerm, critical_value, difference, mean_estimate
from .prose import count, join_list, signed, width
from .results import SETTING_KEYS, group_results, in_terminal_phase

__all__ = [
    "geometry_distance",
    "etf_distance",
    "prediction_agreement",
    "NetworkPair",
    "network_pairs",
    "SeedComparison",
    "NOT_YET_COMPARABLE",
    "NOT_SHOWN_CLOSE",
    "AS_CLOSE",
    "CLOSER",
    "FURTHER_APART",
    "CLOSE_VERDICTS",
    "EQUIVALENCE_FACTOR",
    "compare_with_seeds",
    "no_comparison_reason",
    "seed_comparison_text",
    "WidthComparison",
    "compare_by_width",
    "compare_fitted_losses",
    "is_judged",
    "joint_reading",
    "pair_matrix",
    "furthest_loss",
    "unrelated_disagreement",
    "MEASURES",
    "MEASURE_NAMES",
]


def _analysis(result: dict, key: str):
    analysis = result.get("analysis") or {}
    if key not in analysis:
        raise ValueError(f"{result.get('run', 'a result')}: its final-network analysis has no {key!r} "
                         f"(made by an older version of the trainer)")
    return analysis[key]


def geometry_distance(a: dict, b: dict) -> float:
    """Procrustes distance between two networks' centred training class means (their K x K
    Gram matrices, :func:`ncrepro.metrics.gram_procrustes_distance`)."""
    return gram_procrustes_distance(np.array(_analysis(a, "geometry")["means"]),
                                    np.array(_analysis(b, "geometry")["means"]))


def etf_distance(result: dict) -> float:
    """Procrustes distance of a network's centred class means from the simplex ETF."""
    G = np.array(_analysis(result, "geometry")["means"])
    etf = simplex_etf(G.shape[0])
    return gram_procrustes_distance(G, etf @ etf.T)


def prediction_agreement(a: dict, b: dict) -> float:
    """Fraction of test images on which the two networks predict the same class."""
    pa, pb = _analysis(a, "test_predictions"), _analysis(b, "test_predictions")
    if len(pa) != len(pb) or not pa:
        raise ValueError("the two networks were not tested on the same images")
    return sum(x == y for x, y in zip(pa, pb)) / len(pa)


#: The measures, and whether a larger value means closer.
MEASURES: dict[str, tuple[Callable[[dict, dict], float], bool]] = {
    "geometry": (geometry_distance, False),
    "agreement": (prediction_agreement, True),
}

MEASURE_NAMES = {"geometry": "class-mean geometry", "agreement": "test predictions"}
"""What each of :data:`MEASURES` compares, as a sentence names it."""


@dataclass(frozen=True)
class NetworkPair:
    """Two networks of one setting (architecture, width, epochs) and the measure between them:
    ``kind`` is ``"losses"`` (same seed, different losses) or ``"seeds"`` (same loss)."""

    kind: str
    setting: tuple
    loss_a: str
    loss_b: str
    seed_a: int
    seed_b: int
    value: float


def _measure(measure: str) -> tuple[Callable[[dict, dict], float], bool]:
    """``MEASURES[measure]``, or a ValueError naming the measures there are."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {list(MEASURES)}")
    return MEASURES[measure]


def network_pairs(results: list[dict], measure: str) -> list[NetworkPair]:
    """Every pair of networks in the same setting that differs in exactly one of loss and seed:
    different losses at the same seed, or the same loss at different seeds."""
    fn, _ = _measure(measure)
    pairs = []
    for setting, group in group_results(results, SETTING_KEYS).items():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                ca, cb = a["config"], b["config"]
                same_loss, same_seed = ca["loss"] == cb["loss"], ca["seed"] == cb["seed"]
                if same_loss == same_seed:
                    continue
                pairs.append(NetworkPair("seeds" if same_loss else "losses", setting, ca["loss"], cb["loss"],
                                         ca["seed"], cb["seed"], fn(a, b)))
    return pairs


NOT_YET_COMPARABLE = "not yet judged against seeds"
"""The verdict of a comparison whose noise is not measured: one unit of one kind."""

NOT_SHOWN_CLOSE = "not shown to be as close as seeds"
"""The verdict of a comparison whose difference is no trend, but whose data cannot rule out that
networks of different losses are :data:`EQUIVALENCE_FACTOR` times as far apart as seeds or more:
too few units to tell."""

AS_CLOSE = "as close as seeds"
"""The verdict of a comparison that shows networks of different losses less than
:data:`EQUIVALENCE_FACTOR` times as far apart as seeds, with no trend either way."""

CLOSER = "closer than seeds"
"""The verdict of a comparison whose networks of different losses are closer than seeds, by a trend."""

FURTHER_APART = "further apart than seeds"
"""The verdict of a comparison whose networks of different losses are further apart than seeds, by a
trend."""

CLOSE_VERDICTS = (AS_CLOSE, CLOSER)
"""The verdicts that count as networks of different losses being as alike as seeds of one loss."""

EQUIVALENCE_FACTOR = 1.25
""""As close as seeds" must be shown, not only left unrefuted: networks of different losses count
as close as seeds when a one-sided test at :data:`~ncrepro.noise.TREND_LEVEL` shows their distance
(for agreement: their disagreement, one minus it) to be less than this many times the distance
between seeds of one loss. Any equivalence test needs a margin; 1.25 is the upper end of the
80-125% ratio by which bioequivalence testing calls two means equivalent (Schuirmann 1987,
https://doi.org/10.1007/BF01068419). A wide margin would be empty for predictions: two networks
of 77% test accuracy whose errors were unrelated would disagree on about 40% of the images,
less than twice the 23% on which seeds of one loss disagree."""


@dataclass(frozen=True)
class SeedComparison:
    """Networks of different losses against networks of one loss from different seeds, on one
    measure: each kind's mean over its independent units (:func:`compare_with_seeds`), and their
    :class:`~ncrepro.noise.Difference` (between losses minus between seeds). ``verdict`` is
    ``"further apart than seeds"`` or ``"closer than seeds"`` when the difference is a trend;
    when it is not, ``"as close as seeds"`` if the equivalence test shows the losses less than
    :data:`EQUIVALENCE_FACTOR` times as far apart as seeds (``margin``, :meth:`bound`), else
    :data:`NOT_SHOWN_CLOSE`; :data:`NOT_YET_COMPARABLE` while one kind has a single unit (no
    noise level to judge by)."""

    measure: str
    between_losses: Estimate
    between_seeds: Estimate
    difference: Difference
    verdict: str
    margin: Difference | None = None

    def bound(self, level: float = TREND_LEVEL) -> float:
        """The upper one-sided ``level`` confidence bound of :attr:`margin`: "as close as seeds" is
        shown where it is below zero (NaN where the noise is not measured)."""
        return _upper_bound(self.margin, level)

    def margin_text(self, fmt: str = ".3f", *, scale: float = 1.0, unit: str = "",
                    level: float = TREND_LEVEL) -> str:
        """What the equivalence test found, for the sentence that reads the verdict: for instance
        ``"distance between losses minus 1.25 times that between seeds: −0.040 ± 0.010, upper 95%
        bound −0.017, below 0: shown"``."""
        word = "disagreement" if MEASURES[self.measure][1] else "distance"
        d = self.margin
        if d is None or not d.measured:
            return f"{word} between losses against {EQUIVALENCE_FACTOR:g} times that between seeds: not measured"
        b = self.bound(level)
        return (f"{word} between losses minus {EQUIVALENCE_FACTOR:g} times that between seeds: "
                f"{d.text(fmt, scale=scale, unit=unit)}, upper {100 * level:g}% bound "
                f"{signed(scale * b, fmt)}{unit}, {'below 0: shown' if b < 0 else 'not below 0: not shown'}")

    def text(self) -> str:
        """The comparison as a reader reads it: both sides' means and their numbers of units, the
        verdict, the difference with its noise, and, where the noise is measured, what each test
        found (the trend rule's threshold and :meth:`margin_text`). Agreement in percent of the
        test images, geometry as a Procrustes distance."""
        d = self.difference
        losses, seeds = self.between_losses, self.between_seeds
        units = (f"over {count(losses.n, 'seed')} with every loss",
                 f"over {count(seeds.n, 'loss', 'losses')} with several seeds")
        if MEASURES[self.measure][1]:
            fmt, scale, unit = ".1f", 100.0, " points"
            text = (f"networks of different losses agree on {100 * losses.mean:.1f}% of the test images "
                    f"({units[0]}) and networks of one loss from different seeds on {100 * seeds.mean:.1f}% "
                    f"({units[1]}): the losses are {self.verdict} (difference "
                    f"{d.text(fmt, scale=scale, unit=unit)}")
        else:
            fmt, scale, unit = ".3f", 1.0, ""
            text = (f"networks of different losses are {self.verdict} (mean distance {losses.mean:.3f} between "
                    f"losses, {units[0]}, against {seeds.mean:.3f} between seeds, {units[1]}; difference "
                    f"{d.text(fmt)}")
        if d.measured:
            text += (f"; {d.rule_text(fmt, scale=scale, unit=unit)}; "
                     f"{self.margin_text(fmt, scale=scale, unit=unit)}")
        return text + ")"


def _independent_units(pairs: list[NetworkPair]) -> tuple[list[float], list[float]]:
    """The pairs' values averaged over units that share no network: pairs between losses per
    (setting, seed), and only at seeds where every loss of the setting has a network (so that
    every unit averages the same pairs of losses); pairs between seeds per (setting, loss)."""
    losses_of: dict[tuple, set[str]] = {}
    for p in pairs:
        losses_of.setdefault(p.setting, set()).update((p.loss_a, p.loss_b))
    by_seed: dict[tuple, list[float]] = {}
    by_loss: dict[tuple, list[float]] = {}
    for p in pairs:
        if p.kind == "losses":
            by_seed.setdefault((p.setting, p.seed_a), []).append(p.value)
        else:
            by_loss.setdefault((p.setting, p.loss_a), []).append(p.value)
    every = {s: len(losses) * (len(losses) - 1) // 2 for s, losses in losses_of.items()}
    between_losses = [sum(v) / len(v) for (s, _), v in by_seed.items() if len(v) == every[s]]
    between_seeds = [sum(v) / len(v) for v in by_loss.values()]
    return between_losses, between_seeds


def compare_with_seeds(pairs: list[NetworkPair], measure: str, *,
                       level: float = TREND_LEVEL) -> SeedComparison | None:
    """Compare the networks of different losses with networks of one loss from different seeds
    (None when either kind is missing, with one seed there is no yardstick, or when no seed has
    a network of every loss; :func:`no_comparison_reason` says which).

    Pairs that share a network are not independent (at a seed with four losses, each network
    enters three pairs between losses), so each kind is first averaged over independent units:
    between losses, one unit per seed at which every loss has a network; between seeds, one unit
    per loss. Each kind's standard error is the sd over its units / sqrt(units), on units - 1
    degrees of freedom, and their difference is judged at ``level`` on Welch's degrees of freedom
    (:meth:`ncrepro.noise.Difference.is_trend`). No trend is not yet closeness: with few units
    a test finds no difference even between losses that differ a lot. So "as close as seeds"
    also needs the one-sided equivalence test of :data:`EQUIVALENCE_FACTOR` to pass."""
    _, larger_is_closer = _measure(measure)
    if not any(p.kind == "losses" for p in pairs) or not any(p.kind == "seeds" for p in pairs):
        return None
    losses, seeds = _independent_units(pairs)
    if not losses:  # no seed has every loss yet: no unit to set beside the yardstick
        return None
    a, b = mean_estimate(losses), mean_estimate(seeds)
    d = difference(b, a)
    margin = _margin(a, b, larger_is_closer)
    if not d.measured:
        verdict = NOT_YET_COMPARABLE
    elif d.is_trend(level):
        closer = (d.delta > 0) == larger_is_closer
        verdict = CLOSER if closer else FURTHER_APART
    else:
        verdict = AS_CLOSE if _upper_bound(margin, level) < 0 else NOT_SHOWN_CLOSE
    return SeedComparison(measure, a, b, d, verdict, margin)


@dataclass(frozen=True)
class WidthComparison:
    """Both measures' comparison with the seed yardstick at one width: ``found`` by measure (None
    where :func:`compare_with_seeds` has none), and the sentence for each (``readings``)."""

    width: float
    found: dict[str, SeedComparison | None]
    readings: dict[str, str]

    @property
    def verdicts(self) -> dict[str, str | None]:
        """The verdict by measure, None where nothing could be compared."""
        return {m: f and f.verdict for m, f in self.found.items()}

    def text(self) -> str:
        """Both readings as sentences; one reason shared by both measures reads once."""
        r = self.readings
        if r["geometry"] == r["agreement"]:
            return r["geometry"][0].upper() + r["geometry"][1:] + "."
        return f"In geometry, {r['geometry']}. In predictions, {r['agreement']}."

    def brief(self) -> str:
        """Both verdicts with the two means they rest on, in one clause: ``"in geometry, further
        apart than seeds (0.169 between losses against 0.059 between seeds); in predictions, as
        close as seeds (76.9% of test images shared against 77.1%)"``."""
        parts = []
        for measure, word in (("geometry", "geometry"), ("agreement", "predictions")):
            found = self.found[measure]
            if found is None:
                parts.append(f"in {word}, no comparison ({self.readings[measure]})")
            elif MEASURES[measure][1]:
                parts.append(f"in {word}, {found.verdict} ({100 * found.between_losses.mean:.1f}% of test images "
                             f"shared against {100 * found.between_seeds.mean:.1f}%)")
            else:
                parts.append(f"in {word}, {found.verdict} ({found.between_losses.mean:.3f} between losses against "
                             f"{found.between_seeds.mean:.3f} between seeds)")
        return "; ".join(parts)


def compare_by_width(results: list[dict]) -> dict[float, WidthComparison]:
    """:func:`compare_with_seeds` in both measures at each width of ``results`` (widths in
    increasing order): networks of different losses against seeds of one loss within one width,
    never a unit of one width against a yardstick of another, since width itself moves both."""
    out = {}
    for w in sorted({r["config"]["width"] for r in results}):
        at_width = [r for r in results if r["config"]["width"] == w]
        found, readings = {}, {}
        for measure in MEASURES:
            pairs = network_pairs(at_width, measure)
            found[measure] = compare_with_seeds(pairs, measure)
            readings[measure] = no_comparison_reason(pairs) if found[measure] is None else found[measure].text()
        out[w] = WidthComparison(w, found, readings)
    return out


def compare_fitted_losses(results: list[dict], labels) -> str:
    """Whether a comparison rests on a loss whose networks do not fit the training set: at each
    width where some loss has a network outside the terminal phase
    (:func:`ncrepro.results.in_terminal_phase`), :func:`compare_by_width` again on the losses
    whose every network fits, as a sentence per width (``""`` where every loss fits, or fewer
    than two fit). The paper's claim is about fitted networks, so a verdict that changes without
    the unfitted loss is the unfitted loss's doing. ``labels`` names the losses."""
    out = []
    for w in sorted({r["config"]["width"] for r in results}):
        group = [r for r in results if r["config"]["width"] == w]
        losses = list(dict.fromkeys(r["config"]["loss"] for r in group))
        fitted = [loss for loss in losses if all(in_terminal_phase(r) for r in group if r["config"]["loss"] == loss)]
        unfitted = [loss for loss in losses if loss not in fitted]
        if not unfitted or len(fitted) < 2:
            continue
        found = compare_by_width([r for r in group if r["config"]["loss"] in fitted])[w]
        out.append(f"At width {width(w)}, {join_list(labels.get(x, x) for x in unfitted)} "
                   f"{'does' if len(unfitted) == 1 else 'do'} not fit the training set; among the losses that do "
                   f"({join_list(labels.get(x, x) for x in fitted)}) alone: {found.brief()}.")
    return " ".join(out)


def is_judged(verdicts: dict[str, str | None] | None) -> bool:
    """Whether a set of verdicts by measure judges at least one measure against the seeds (not
    None, not :data:`NOT_YET_COMPARABLE`).

    >>> is_judged({"geometry": NOT_YET_COMPARABLE, "agreement": None}), is_judged({"geometry": AS_CLOSE})
    (False, True)
    """
    return bool(verdicts) and any(verdicts.get(m) not in (None, NOT_YET_COMPARABLE) for m in MEASURES)


def seed_comparison_text(pairs: list[NetworkPair], measure: str) -> str:
    """:meth:`SeedComparison.text` of :func:`compare_with_seeds` on ``pairs``, or, where there is
    no comparison, :func:`no_comparison_reason`: the sentence a chapter prints either way.

    >>> seed_comparison_text([], "geometry")
    'there are not yet two seeds of one loss to compare with'
    """
    found = compare_with_seeds(pairs, measure)
    return no_comparison_reason(pairs) if found is None else found.text()


def joint_reading(verdicts: dict[str, str | None]) -> str:
    """What one set's two comparisons with the seed yardstick say together about the claim that
    the losses learn the same features: a sentence (no final full stop) from the verdicts of
    :func:`compare_with_seeds` by measure (``"geometry"``, ``"agreement"``; None where nothing
    could be compared). The features count as the same only where both measures are at least as
    close as seeds; a measure further apart than seeds refutes it at the set's scale; anything
    else waits for more seeds.

    >>> joint_reading({"geometry": FURTHER_APART, "agreement": AS_CLOSE}).split(": ")[-1]
    'the same decisions, not the same features'
    """
    for measure in verdicts:
        _measure(measure)
    v = {m: verdicts.get(m) for m in MEASURES}
    close = {m for m, x in v.items() if x in CLOSE_VERDICTS}
    apart = {m for m, x in v.items() if x == FURTHER_APART}
    if close == set(MEASURES):
        return ("the losses are at least as close as seeds of one loss in both the geometry of their class "
                "means and their test predictions: the same features by both tests")
    if apart == set(MEASURES):
        return ("the losses are further apart than seeds of one loss in both the geometry of their class "
                "means and their test predictions: not the same features")
    if close == {"agreement"} and apart == {"geometry"}:
        return ("the losses make the same test predictions as often as seeds of one loss do, but their class "
                "means are arranged further apart than seeds': the same decisions, not the same features")
    if close == {"geometry"} and apart == {"agreement"}:
        return ("the losses' class means are arranged as alike as seeds', but they disagree on more test images "
                "than seeds of one loss do: the same geometry, not the same decisions")
    if not close and not apart and all(x in (None, NOT_YET_COMPARABLE) for x in v.values()):
        return "neither test is judged yet: each needs two seeds with every loss"
    parts = join_list(f"{'not yet judged' if x in (None, NOT_YET_COMPARABLE) else x} in their {MEASURE_NAMES[m]}"
                      for m, x in v.items())
    outcome = "not the same features" if apart else "whether the features are the same waits for more seeds"
    return f"the losses are {parts}: {outcome}"


def no_comparison_reason(pairs: list[NetworkPair]) -> str:
    """Why :func:`compare_with_seeds` has no comparison for ``pairs`` (it returned None), for
    the sentence that stands in for its verdict.

    >>> no_comparison_reason([])
    'there are not yet two seeds of one loss to compare with'
    """
    if not any(p.kind == "seeds" for p in pairs):
        return "there are not yet two seeds of one loss to compare with"
    if not any(p.kind == "losses" for p in pairs):
        return "there are not yet networks of two losses at one seed to compare"
    return "no seed has a network of every loss yet, and only such seeds make comparable units"


def _margin(losses: Estimate, seeds: Estimate, larger_is_closer: bool) -> Difference:
    """Distance between losses minus :data:`EQUIVALENCE_FACTOR` times that between seeds, with
    its standard error (the yardstick is noisy too, so its scaled variance counts)."""
    distance = (lambda e: 1.0 - e.mean) if larger_is_closer else (lambda e: e.mean)
    k = EQUIVALENCE_FACTOR
    terms = losses.terms + tuple(NoiseTerm(k * k * t.variance, t.dof, t.source) for t in seeds.terms)
    return Difference(distance(losses) - k * distance(seeds), math.hypot(losses.se, k * seeds.se), terms)


def _upper_bound(margin: Difference | None, level: float) -> float:
    """The upper one-sided ``level`` confidence bound of ``margin`` (NaN where not measured)."""
    if margin is None or not margin.measured:
        return math.nan
    return margin.delta + critical_value(margin.dof, 2 * level - 1) * margin.se


def furthest_loss(matrix: dict, losses: list[str]) -> tuple[str, float, list[float]] | None:
    """The loss whose networks sit furthest from the other losses' in a :func:`pair_matrix` of a
    distance: the loss, its mean distance to the others, and the distances among the remaining
    losses, pair by pair, to set beside it. None with fewer than three losses compared.

    >>> E = Estimate  # mean, se, n
    >>> m = {(a, b): E(d, 0.0, 1) for (a, b), d in {("ce", "ls"): 0.1, ("ce", "fl"): 0.3, ("ls", "fl"): 0.2}.items()}
    >>> m.update({(b, a): e for (a, b), e in m.items()})
    >>> furthest_loss(m, ["ce", "ls", "fl"])
    ('fl', 0.25, [0.1])
    """
    to_others = {a: [matrix[(a, b)].mean for b in losses if b != a and (a, b) in matrix] for a in losses}
    to_others = {a: sum(v) / len(v) for a, v in to_others.items() if v}
    if len(to_others) < 3:
        return None
    far = max(to_others, key=to_others.get)
    rest = [matrix[(a, b)].mean for i, a in enumerate(losses) for b in losses[i + 1:]
            if far not in (a, b) and (a, b) in matrix]
    return far, to_others[far], rest


def unrelated_disagreement(accuracy: float, classes: int) -> float:
    """The share of test images on which two networks of test accuracy ``accuracy`` would disagree
    if their errors were unrelated, each wrong answer spread evenly over the other classes:
    ``1 - a^2 - (1 - a)^2 / (K - 1)``. What "different decisions" means at that accuracy, and the
    reason the equivalence margin (:data:`EQUIVALENCE_FACTOR`) must stay narrow for predictions.

    >>> round(unrelated_disagreement(0.77, 10), 3), unrelated_disagreement(1.0, 10)
    (0.401, 0.0)
    """
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy}")
    if int(classes) != classes or classes < 2:
        raise ValueError(f"classes must be an integer of at least 2, got {classes}")
    return 1.0 - accuracy ** 2 - (1.0 - accuracy) ** 2 / (classes - 1)


def pair_matrix(pairs: list[NetworkPair]) -> dict[tuple[str, str], Estimate]:
    """Mean of a measure per pair of losses, over seeds and settings: ``(a, b)`` with ``a != b``
    for networks of different losses (stored under both orders), ``(a, a)`` for networks of loss
    ``a`` from different seeds (the yardstick)."""
    values: dict[tuple[str, str], list[float]] = {}
    for p in pairs:
        key = tuple(sorted((p.loss_a, p.loss_b)))
        values.setdefault(key, []).append(p.value)
    out = {}
    for (a, b), v in values.items():
        out[(a, b)] = out[(b, a)] = mean_estimate(v)
    return out
