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

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .metrics import gram_procrustes_distance, simplex_etf
from .noise import TREND_LEVEL, Difference, Estimate, difference, mean_estimate
from .results import group_results

__all__ = [
    "geometry_distance",
    "etf_distance",
    "prediction_agreement",
    "NetworkPair",
    "network_pairs",
    "SeedComparison",
    "NOT_YET_COMPARABLE",
    "compare_with_seeds",
    "pair_matrix",
    "MEASURES",
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


def network_pairs(results: list[dict], measure: str) -> list[NetworkPair]:
    """Every pair of networks in the same setting that differs in exactly one of loss and seed:
    different losses at the same seed, or the same loss at different seeds."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {list(MEASURES)}")
    fn, _ = MEASURES[measure]
    pairs = []
    for setting, group in group_results(results, ("arch", "width", "epochs")).items():
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


@dataclass(frozen=True)
class SeedComparison:
    """Networks of different losses against networks of one loss from different seeds, on one
    measure: each kind's mean over its independent units (:func:`compare_with_seeds`), and their
    :class:`~ncrepro.noise.Difference` (between losses minus between seeds). ``verdict`` is
    ``"as close as seeds"`` when the difference is within noise, else ``"further apart than
    seeds"`` or ``"closer than seeds"``; :data:`NOT_YET_COMPARABLE` while one kind has a single
    unit (no noise level to judge by)."""

    measure: str
    between_losses: Estimate
    between_seeds: Estimate
    difference: Difference
    verdict: str


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
    a network of every loss).

    Pairs that share a network are not independent (at a seed with four losses, each network
    enters three pairs between losses), so each kind is first averaged over independent units:
    between losses, one unit per seed at which every loss has a network; between seeds, one unit
    per loss. Each kind's standard error is the sd over its units / sqrt(units), on units - 1
    degrees of freedom, and their difference is judged at ``level`` on Welch's degrees of freedom
    (:meth:`ncrepro.noise.Difference.is_trend`)."""
    if not any(p.kind == "losses" for p in pairs) or not any(p.kind == "seeds" for p in pairs):
        return None
    losses, seeds = _independent_units(pairs)
    if not losses:  # no seed has every loss yet: no unit to set beside the yardstick
        return None
    a, b = mean_estimate(losses), mean_estimate(seeds)
    d = difference(b, a)
    _, larger_is_closer = MEASURES[measure]
    if not d.measured:
        verdict = NOT_YET_COMPARABLE
    elif not d.is_trend(level):
        verdict = "as close as seeds"
    else:
        closer = (d.delta > 0) == larger_is_closer
        verdict = "closer than seeds" if closer else "further apart than seeds"
    return SeedComparison(measure, a, b, d, verdict)


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
