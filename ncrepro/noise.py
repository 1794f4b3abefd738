"""Noise, and the rule that separates a trend from it.

Every comparison the book states (one loss against another, a spread across losses, how a
spread changes with width or training) is a difference of means over seeds. This module gives
each mean its standard error (:func:`accuracy_estimate`: seed-to-seed variance plus the test
set's sampling variance; :func:`log_estimate` for metrics that span decades), propagates it
through differences (:func:`difference`, :func:`spread`), and calls a difference a trend only
beyond :data:`TREND_Z` standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .prose import signed

__all__ = [
    "TREND_Z",
    "NOISE_NOT_MEASURED",
    "Estimate",
    "Difference",
    "Spread",
    "seed_sd",
    "pooled_seed_sd",
    "pooled_seed_dof",
    "seed_sd_interval",
    "accuracy_estimate",
    "mean_estimate",
    "log_estimate",
    "difference",
    "spread",
    "ordering",
    "ordering_text",
]

TREND_Z = 2.0
"""A difference counts as a trend only when it exceeds ``TREND_Z`` standard errors (about a
95% two-sided test); anything smaller is reported as within noise."""

NOISE_NOT_MEASURED = "noise not measured"
"""What a comparison says when no noise level exists yet (one seed, nothing to borrow)."""


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its standard error: ``sd`` is the seed-to-seed standard deviation
    (None with one seed), ``n`` the number of seeds. ``se`` is NaN where no noise has been
    measured (one seed and no spread to borrow): such an estimate never makes a trend."""

    mean: float
    se: float
    n: int
    sd: float | None = None

    @property
    def measured(self) -> bool:
        """Whether the standard error rests on a measured noise level."""
        return not math.isnan(self.se)


def seed_sd(values) -> float | None:
    """Sample standard deviation over seeds (``ddof=1``); None for fewer than two values."""
    values = [float(v) for v in values]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def pooled_seed_sd(groups) -> float | None:
    """The seed-to-seed standard deviation pooled over groups of seeds (each a list of values of
    one setting): the square root of the degrees-of-freedom-weighted mean of the group variances.
    Groups of one seed add nothing; None when no group has two seeds."""
    num = dof = 0.0
    for values in groups:
        sd = seed_sd(values)
        if sd is not None:
            num += (len(values) - 1) * sd ** 2
            dof += len(values) - 1
    return math.sqrt(num / dof) if dof else None


def pooled_seed_dof(groups) -> int:
    """Degrees of freedom of :func:`pooled_seed_sd` over the same groups: the sum of ``n - 1``
    over the groups of ``n`` seeds, 0 when no group has two.

    >>> pooled_seed_dof([[1.0, 3.0], [2.0, 4.0, 6.0], [7.0]])
    3
    """
    return sum(max(len(list(values)) - 1, 0) for values in groups)


def seed_sd_interval(sd: float, dof: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a seed-to-seed standard deviation ``sd`` estimated with ``dof``
    degrees of freedom, from the chi-square distribution of ``dof * sd**2 / sigma**2`` (seeds
    assumed normal). Few seeds pin the noise down poorly, and this says how poorly: from one
    pair of seeds (``dof=1``) the 95% interval runs from 0.45 to 32 times the estimate; from
    eight degrees of freedom (four settings of three seeds), 0.68 to 1.9 times.

    >>> [round(x, 2) for x in seed_sd_interval(1.0, 1)]
    [0.45, 31.91]
    >>> [round(x, 2) for x in seed_sd_interval(1.0, 8)]
    [0.68, 1.92]
    """
    from scipy.stats import chi2  # scipy is only needed here; keep importing ncrepro.noise light

    if int(dof) != dof or dof < 1:
        raise ValueError(f"dof must be a positive integer, got {dof}")
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite non-negative number, got {sd}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    tail = (1.0 - level) / 2.0
    return (sd * math.sqrt(dof / chi2.ppf(1.0 - tail, dof)), sd * math.sqrt(dof / chi2.ppf(tail, dof)))


def accuracy_estimate(accuracies, test_images: int, *, assumed_seed_sd: float | None = None) -> Estimate:
    """Mean test accuracy over seeds and its standard error ``sqrt(s^2/n + p(1-p)/T)``.

    Two sources of noise: training (seed to seed, ``s``, measured when there are two or more
    seeds, or ``assumed_seed_sd`` borrowed from a comparable setting when there is one) and the
    test set's sampling (``T`` images, binomial). The seeds share one test set, so the second
    term does not shrink with ``n``. With one seed and no assumed ``s``, only the binomial term
    is left, which understates the noise: say so where it is used.

    >>> e = accuracy_estimate([0.80, 0.82, 0.78], 10_000)
    >>> round(e.mean, 3), round(e.sd, 3), round(e.se, 4)
    (0.8, 0.02, 0.0122)
    """
    values = [float(a) for a in accuracies]
    if not values:
        raise ValueError("accuracy_estimate needs at least one accuracy")
    if not all(0.0 <= a <= 1.0 for a in values):
        raise ValueError(f"accuracies must be fractions in [0, 1], got {values}")
    if int(test_images) != test_images or test_images < 1:
        raise ValueError(f"test_images must be a positive integer, got {test_images}")
    n = len(values)
    mean = sum(values) / n
    sd = seed_sd(values)
    s = sd if sd is not None else assumed_seed_sd
    var = mean * (1.0 - mean) / test_images + (0.0 if s is None else s ** 2 / n)
    return Estimate(mean, math.sqrt(var), n, sd)


def mean_estimate(values, *, assumed_seed_sd: float | None = None) -> Estimate:
    """Mean of values over seeds with its standard error ``s/sqrt(n)``: ``s`` measured with two
    or more seeds, else ``assumed_seed_sd``; with one seed and nothing to borrow the noise is
    unknown and the standard error NaN.

    >>> mean_estimate([1.0, 2.0, 3.0]).se, mean_estimate([1.0]).measured
    (0.5773502691896258, False)
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_estimate needs at least one value")
    sd = seed_sd(values)
    s = sd if sd is not None else assumed_seed_sd
    se = math.nan if s is None else s / math.sqrt(len(values))
    return Estimate(sum(values) / len(values), se, len(values), sd)


def log_estimate(values, *, assumed_seed_sd: float | None = None) -> Estimate:
    """Mean of ``log10`` of positive values (NC metrics span decades) over seeds, with its
    standard error ``s/sqrt(n)`` on that scale (``assumed_seed_sd`` with one seed; with one seed
    and nothing to borrow the noise is unknown, and the standard error NaN).

    >>> log_estimate([0.1, 0.01, 1.0]).mean, log_estimate([0.5]).measured
    (-1.0, False)
    """
    values = [float(v) for v in values]
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise ValueError(f"log_estimate needs positive finite values, got {values}")
    return mean_estimate([math.log10(v) for v in values], assumed_seed_sd=assumed_seed_sd)


@dataclass(frozen=True)
class Difference:
    """``after - before`` of two estimates (or of two differences), with its standard error."""

    delta: float
    se: float

    @property
    def measured(self) -> bool:
        """Whether the standard error rests on measured noise (NaN when either side's does not)."""
        return not math.isnan(self.se)

    def is_trend(self, z: float = TREND_Z) -> bool:
        """True when ``|delta|`` exceeds ``z`` standard errors (:data:`TREND_Z`); never when the
        noise is not measured."""
        return self.measured and abs(self.delta) > z * self.se

    def text(self, fmt: str = ".3f", *, scale: float = 1.0, unit: str = "") -> str:
        """The difference with its standard error as a reader reads it, its minus a typographic
        one: ``"+0.120 ± 0.030"``, or ``"−0.120, noise not measured"``.

        >>> Difference(0.012, 0.003).text(".1f", scale=100, unit=" points")
        '+1.2 ± 0.3 points'
        >>> Difference(-0.012, math.nan).text(".1f", scale=100, unit=" points")
        '−1.2 points, noise not measured'
        """
        delta = signed(scale * self.delta, fmt)
        if not self.measured:
            return f"{delta}{unit}, {NOISE_NOT_MEASURED}"
        return f"{delta} ± {format(scale * self.se, fmt)}{unit}"

    def direction(self, up: str = "grows", down: str = "shrinks", z: float = TREND_Z) -> str:
        """``up`` or ``down`` for a trend, ``"within noise"`` for a measured difference below the
        rule, ``"noise not measured"`` where there is no noise level to judge it by."""
        if not self.measured:
            return NOISE_NOT_MEASURED
        if not self.is_trend(z):
            return "within noise"
        return up if self.delta > 0 else down


def difference(before, after) -> Difference:
    """``after - before`` with standard error ``sqrt(se_before^2 + se_after^2)`` (independent
    errors; for two networks scored on the same test images this is conservative). Works on
    :class:`Estimate`, :class:`Spread` and :class:`Difference` alike.

    >>> d = difference(Estimate(0.78, 0.004, 1), Estimate(0.80, 0.004, 1))
    >>> round(d.delta, 3), round(d.se, 4), d.is_trend()
    (0.02, 0.0057, True)
    """
    value = {Estimate: "mean", Spread: "value", Difference: "delta"}
    a = getattr(before, value[type(before)])
    b = getattr(after, value[type(after)])
    return Difference(b - a, math.hypot(before.se, after.se))


@dataclass(frozen=True)
class Spread:
    """The spread of a quantity across losses: the largest minus the smallest per-loss mean
    (``best`` and ``worst`` name them), with the standard error of that difference. Noise makes
    a max-minus-min slightly larger than the true spread; the rule compares spreads measured
    the same way."""

    value: float
    se: float
    best: str
    worst: str


def spread(estimates: dict[str, Estimate]) -> Spread:
    """:class:`Spread` of per-loss estimates (at least two)."""
    if len(estimates) < 2:
        raise ValueError("a spread needs estimates for at least two losses")
    best = max(estimates, key=lambda k: estimates[k].mean)
    worst = min(estimates, key=lambda k: estimates[k].mean)
    gap = difference(estimates[worst], estimates[best])
    return Spread(gap.delta, gap.se, best, worst)


def ordering(estimates: dict[str, Estimate], *, z: float = TREND_Z) -> list[tuple[str, str, Difference]]:
    """The losses sorted by their estimate, lowest first, with each neighbouring pair's
    :class:`Difference` (higher minus lower): ``is_trend()`` says whether the step is beyond noise.

    >>> steps = ordering({"ce": Estimate(1.0, 0.05, 3), "mse": Estimate(-1.0, 0.05, 3), "ls": Estimate(1.1, 0.05, 3)})
    >>> [(a, b, d.is_trend()) for a, b, d in steps]
    [('mse', 'ce', True), ('ce', 'ls', False)]
    """
    names = sorted(estimates, key=lambda k: estimates[k].mean)
    return [(a, b, difference(estimates[a], estimates[b])) for a, b in zip(names, names[1:])]


def ordering_text(estimates: dict[str, Estimate], labels=None, *, z: float = TREND_Z) -> str:
    """An ordering as a reader reads it: ``"MSE < CE ≈ LS"``, where ``<`` is a step beyond
    ``z`` standard errors and ``≈`` one within noise. Where a step's noise is not measured, no
    step is judged: ``"MSE, CE, LS from lowest (noise not measured)"``.

    >>> ordering_text({"ce": Estimate(1.0, 0.05, 3), "mse": Estimate(-1.0, 0.05, 3), "ls": Estimate(1.1, 0.05, 3)})
    'mse < ce ≈ ls'
    >>> ordering_text({"ce": log_estimate([0.2]), "mse": log_estimate([0.007])})
    'mse, ce from lowest (noise not measured)'
    """
    labels = labels or {}
    steps = ordering(estimates, z=z)
    if not steps:
        return " ".join(labels.get(k, k) for k in estimates)
    if not all(d.measured for _, _, d in steps):
        names = [steps[0][0]] + [b for _, b, _ in steps]
        return ", ".join(labels.get(k, k) for k in names) + f" from lowest ({NOISE_NOT_MEASURED})"
    text = labels.get(steps[0][0], steps[0][0])
    for _, b, d in steps:
        text += (" < " if d.is_trend(z) else " ≈ ") + labels.get(b, b)
    return text
