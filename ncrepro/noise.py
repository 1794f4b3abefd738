"""Noise, and the rule that separates a trend from it.

Every comparison the book states (one loss against another, a spread across losses, how a
spread changes with width or training) is a difference of means over seeds. This module gives
each mean its standard error (:func:`accuracy_estimate`: seed-to-seed variance plus the test
set's sampling variance; :func:`log_estimate` for metrics that span decades), propagates it
through differences (:func:`difference`, :func:`spread`), and calls a difference a trend only
when a two-sided test at level :data:`TREND_LEVEL` says so (:meth:`Difference.is_trend`). A spread
across losses, the largest of several differences, is judged by Tukey's studentized range instead
(:meth:`Spread.is_trend`), which holds the same level whichever losses end up best and worst.

The seed-to-seed variance is estimated from a few seeds, so a difference over its standard error
is not normal but closer to Student's t, on the degrees of freedom of the seed variance: one pair
of seeds gives 1 (threshold 12.7 standard errors at 95%), four settings of three seeds 8 (2.31).
The test set's sampling variance is known. Each standard error therefore keeps its estimated parts
(:class:`NoiseTerm`) apart from the known ones, and a difference's degrees of freedom are those of
the Welch-Satterthwaite approximation (:attr:`Difference.dof`). The book pools one seed variance
over every setting with several seeds (:func:`pooled_seed_noise`) and uses it for every setting:
that assumes the losses and widths share one seed-to-seed spread, and gives every comparison the
pooled degrees of freedom instead of the one or two of a setting's own seeds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from .prose import signed

__all__ = [
    "TREND_LEVEL",
    "NOISE_NOT_MEASURED",
    "critical_value",
    "NoiseTerm",
    "SeedNoise",
    "Estimate",
    "Difference",
    "Spread",
    "seed_sd",
    "pooled_seed_noise",
    "seed_sd_interval",
    "accuracy_estimate",
    "mean_estimate",
    "log_estimate",
    "difference",
    "mean_difference",
    "spread",
    "ordering",
    "ordering_text",
    "chance_trends",
]

TREND_LEVEL = 0.95
"""A difference counts as a trend only when a two-sided test at this level rejects "no
difference": ``|delta| > critical_value(dof) * se``. Anything smaller is reported as within
noise."""

NOISE_NOT_MEASURED = "noise not measured"
"""What a comparison says when no noise level exists yet (one seed, nothing to borrow)."""


def critical_value(dof: float, level: float = TREND_LEVEL) -> float:
    """How many standard errors a difference must exceed to count as a trend: the two-sided
    Student-t quantile at ``dof`` degrees of freedom (the normal one where ``dof`` is infinite,
    that is where every part of the noise is known).

    >>> [round(critical_value(d), 2) for d in (1, 2, 8, math.inf)]
    [12.71, 4.3, 2.31, 1.96]
    """
    from scipy.stats import norm, t  # imported here, not at the top, to keep ncrepro.noise light

    if not dof > 0:  # also catches NaN
        raise ValueError(f"dof must be positive, got {dof}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    q = 1.0 - (1.0 - level) / 2.0
    return float(norm.ppf(q) if math.isinf(dof) else t.ppf(q, dof))


@dataclass(frozen=True)
class SeedNoise:
    """A seed-to-seed standard deviation ``sd`` estimated on ``dof`` degrees of freedom, as
    :func:`pooled_seed_noise` gives it. Estimates that use one :class:`SeedNoise` share one
    estimate of the noise, which their differences account for (:class:`NoiseTerm`)."""

    sd: float
    dof: int

    def __post_init__(self):
        if not (math.isfinite(self.sd) and self.sd >= 0):
            raise ValueError(f"sd must be a finite non-negative number, got {self.sd}")
        if int(self.dof) != self.dof or self.dof < 1:
            raise ValueError(f"dof must be a positive integer, got {self.dof}")

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """:func:`seed_sd_interval` of this estimate."""
        return seed_sd_interval(self.sd, self.dof, level)


@dataclass(frozen=True)
class NoiseTerm:
    """The part ``variance`` of a squared standard error that rests on an estimated seed
    variance with ``dof`` degrees of freedom. ``source`` is the :class:`SeedNoise` it was
    scaled from, or None for a setting's own seeds: terms of one source come from one estimate,
    so they add before their degrees of freedom are counted, while terms of different sources are
    independent estimates (Welch-Satterthwaite)."""

    variance: float
    dof: int
    source: SeedNoise | None = None


def _effective_dof(se: float, terms: tuple[NoiseTerm, ...]) -> float:
    """Welch-Satterthwaite degrees of freedom of ``se**2``, of which ``terms`` are estimated and
    the rest known: ``se**4 / sum(v_i**2 / dof_i)`` over independent estimates ``v_i``."""
    if math.isnan(se):
        return math.nan
    shared: dict[SeedNoise, float] = {}
    parts = []
    for term in terms:
        if term.source is None:
            parts.append((term.variance, term.dof))
        else:
            shared[term.source] = shared.get(term.source, 0.0) + term.variance
    parts += [(v, source.dof) for source, v in shared.items()]
    denominator = sum(v * v / dof for v, dof in parts)
    return math.inf if denominator == 0 else se ** 4 / denominator


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its standard error: ``sd`` is the seed-to-seed standard deviation
    of this setting's own seeds (None with one seed), ``n`` the number of seeds, ``terms`` the
    estimated parts of ``se**2`` (:class:`NoiseTerm`). ``se`` is NaN where no noise has been
    measured (one seed and no spread to borrow): such an estimate never makes a trend."""

    mean: float
    se: float
    n: int
    sd: float | None = None
    terms: tuple[NoiseTerm, ...] = ()

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


def pooled_seed_noise(groups) -> SeedNoise | None:
    """The seed-to-seed standard deviation pooled over groups of seeds (each a list of values of
    one setting): the square root of the degrees-of-freedom-weighted mean of the group variances,
    on the sum of ``n - 1`` degrees of freedom. Groups of one seed add nothing; None when no
    group has two seeds.

    >>> noise = pooled_seed_noise([[1.0, 3.0], [2.0, 4.0, 6.0], [7.0]])
    >>> round(noise.sd ** 2, 4), noise.dof
    (3.3333, 3)
    """
    num, dof = 0.0, 0
    for values in groups:
        values = list(values)
        sd = seed_sd(values)
        if sd is not None:
            num += (len(values) - 1) * sd ** 2
            dof += len(values) - 1
    return SeedNoise(math.sqrt(num / dof), dof) if dof else None


def _seed_term(values: list[float], seed_noise: SeedNoise | None) -> NoiseTerm | None:
    """The seed noise's part of the variance of a mean of ``values``: from the pooled
    ``seed_noise`` where given, else from the values' own spread (None with one value)."""
    n = len(values)
    if seed_noise is not None:
        return NoiseTerm(seed_noise.sd ** 2 / n, seed_noise.dof, seed_noise)
    sd = seed_sd(values)
    return None if sd is None else NoiseTerm(sd ** 2 / n, n - 1)


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
    from scipy.stats import chi2  # as in critical_value: keep importing ncrepro.noise light

    if int(dof) != dof or dof < 1:
        raise ValueError(f"dof must be a positive integer, got {dof}")
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite non-negative number, got {sd}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    tail = (1.0 - level) / 2.0
    return (sd * math.sqrt(dof / chi2.ppf(1.0 - tail, dof)), sd * math.sqrt(dof / chi2.ppf(tail, dof)))


def accuracy_estimate(accuracies, test_images: int, *, seed_noise: SeedNoise | None = None) -> Estimate:
    """Mean test accuracy over seeds and its standard error ``sqrt(s^2/n + p(1-p)/T)``.

    Two sources of noise: training (seed to seed, ``s``: the pooled ``seed_noise`` where given,
    whatever the number of seeds here, else these seeds' own standard deviation) and the test
    set's sampling (``T`` images, binomial, known). The seeds share one test set, so the second
    term does not shrink with ``n``. With one seed and no ``seed_noise``, only the binomial term
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
    term = _seed_term(values, seed_noise)
    var = mean * (1.0 - mean) / test_images + (0.0 if term is None else term.variance)
    return Estimate(mean, math.sqrt(var), n, seed_sd(values), () if term is None else (term,))


def mean_estimate(values, *, seed_noise: SeedNoise | None = None) -> Estimate:
    """Mean of values over seeds with its standard error ``s/sqrt(n)``: ``s`` the pooled
    ``seed_noise`` where given, else these values' own standard deviation; with one seed and
    nothing to borrow the noise is unknown and the standard error NaN.

    >>> round(mean_estimate([1.0, 2.0, 3.0]).se, 4), mean_estimate([1.0]).measured
    (0.5774, False)
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_estimate needs at least one value")
    term = _seed_term(values, seed_noise)
    se = math.nan if term is None else math.sqrt(term.variance)
    return Estimate(sum(values) / len(values), se, len(values), seed_sd(values), () if term is None else (term,))


def log_estimate(values, *, seed_noise: SeedNoise | None = None) -> Estimate:
    """Mean of ``log10`` of positive values (NC metrics span decades) over seeds, with its
    standard error ``s/sqrt(n)`` on that scale (``s`` as in :func:`mean_estimate`, ``seed_noise``
    pooled on the ``log10`` scale).

    >>> log_estimate([0.1, 0.01, 1.0]).mean, log_estimate([0.5]).measured
    (-1.0, False)
    """
    values = [float(v) for v in values]
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise ValueError(f"log_estimate needs positive finite values, got {values}")
    return mean_estimate([math.log10(v) for v in values], seed_noise=seed_noise)


def _dof_text(dof: float) -> str:
    """``"1 degree of freedom"``, ``"3.9 degrees of freedom"``, ``"124 degrees of freedom"``:
    Welch-Satterthwaite's degrees of freedom are rarely whole; beyond 10, decimals say nothing."""
    text = f"{dof:,.0f}" if dof >= 10 else f"{dof:.1f}".removesuffix(".0")
    return f"{text} degree{'' if text == '1' else 's'} of freedom"


class _Judged:
    """What a quantity judged by the trend rule shares, whether one difference
    (:class:`Difference`) or a spread across losses (:class:`Spread`): a standard error ``se``
    with its estimated parts ``terms``, their degrees of freedom, and a threshold of
    :meth:`critical_value` standard errors, which each kind defines."""

    se: float
    terms: tuple[NoiseTerm, ...]

    @property
    def measured(self) -> bool:
        """Whether the standard error rests on measured noise (NaN when either side's does not)."""
        return not math.isnan(self.se)

    @property
    def dof(self) -> float:
        """Degrees of freedom of the standard error (Welch-Satterthwaite): infinite where all its
        noise is known, the seed noise's own where all of it is estimated from one source, NaN
        where no noise is measured.

        >>> noise = SeedNoise(0.02, 8)
        >>> a, b = mean_estimate([0.80], seed_noise=noise), mean_estimate([0.83, 0.85], seed_noise=noise)
        >>> difference(a, b).dof, Difference(0.01, 0.004).dof
        (8.0, inf)
        """
        return _effective_dof(self.se, self.terms)

    def critical_value(self, level: float = TREND_LEVEL) -> float:
        """How many standard errors the value must exceed to count as a trend at ``level``."""
        raise NotImplementedError

    def threshold(self, level: float = TREND_LEVEL) -> float:
        """The smallest value that counts as a trend: :meth:`critical_value` times the standard
        error (NaN where no noise is measured)."""
        return math.nan if not self.measured else self.critical_value(level) * self.se

    def _quantile_text(self) -> str:
        """Which quantile :meth:`critical_value` is, on which degrees of freedom (noise measured)."""
        raise NotImplementedError

    def rule_text(self, fmt: str = ".3f", *, scale: float = 1.0, unit: str = "", level: float = TREND_LEVEL) -> str:
        """What the rule asks, for the sentence that reads it.

        >>> Difference(0.01, 0.004, (NoiseTerm(0.004 ** 2, 8),)).rule_text(".2f", scale=100, unit=" points")
        'a trend needs more than 0.92 points, 2.31 standard errors by Student’s t on 8 degrees of freedom'
        >>> Difference(0.01, 0.004).rule_text(".2f", scale=100, unit=" points")
        'a trend needs more than 0.78 points, 1.96 standard errors by the normal quantile (all of its noise is known)'
        >>> Spread(0.005, 0.004, "ls", "ce", losses=4).rule_text(".2f", scale=100, unit=" points")[:60]
        'a trend needs more than 1.03 points, 2.57 standard errors by'
        """
        if not self.measured:
            return f"no trend can be called ({NOISE_NOT_MEASURED})"
        k = self.critical_value(level)
        return (f"a trend needs more than {format(scale * k * self.se, fmt)}{unit}, {k:.2f} standard errors by "
                f"{self._quantile_text()}")


@dataclass(frozen=True)
class Difference(_Judged):
    """``after - before`` of two estimates (or of two differences), with its standard error and
    the estimated parts of its variance (:class:`NoiseTerm`)."""

    delta: float
    se: float
    terms: tuple[NoiseTerm, ...] = ()

    def critical_value(self, level: float = TREND_LEVEL) -> float:
        """How many standard errors ``|delta|`` must exceed: Student's t at this difference's
        degrees of freedom (:func:`critical_value`)."""
        return critical_value(self.dof, level)

    def is_trend(self, level: float = TREND_LEVEL) -> bool:
        """True when ``|delta|`` exceeds :meth:`threshold`, a two-sided test at ``level``
        (:data:`TREND_LEVEL`); never when the noise is not measured.

        >>> d = Difference(0.03, 0.01, (NoiseTerm(1e-4, 1),))
        >>> d.is_trend(), Difference(0.03, 0.01).is_trend()
        (False, True)
        """
        return self.measured and abs(self.delta) > self.threshold(level)

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

    def _quantile_text(self) -> str:
        if math.isinf(self.dof):
            return "the normal quantile (all of its noise is known)"
        return f"Student’s t on {_dof_text(self.dof)}"

    def direction(self, up: str = "grows", down: str = "shrinks", level: float = TREND_LEVEL) -> str:
        """``up`` or ``down`` for a trend, ``"within noise"`` for a measured difference below the
        rule, ``"noise not measured"`` where there is no noise level to judge it by."""
        if not self.measured:
            return NOISE_NOT_MEASURED
        if not self.is_trend(level):
            return "within noise"
        return up if self.delta > 0 else down


def chance_trends(tests: int, trends: int, level: float = TREND_LEVEL) -> tuple[float, float]:
    """What chance alone gives when the rule judges ``tests`` independent differences of which
    none is real: the expected number called trends, ``tests * (1 - level)``, and the probability
    that at least ``trends`` of them are (the binomial tail). One trend among many tests is a
    finding only where that probability is small.

    >>> expected, p = chance_trends(13, 1)
    >>> round(expected, 2), round(p, 2)
    (0.65, 0.49)
    >>> chance_trends(13, 0)
    (0.65, 1.0)

    Raises:
        ValueError: ``tests`` below 1, ``trends`` outside ``0..tests``, or ``level`` outside (0, 1).
    """
    from scipy.stats import binom  # imported here, as in critical_value

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if tests < 1 or not 0 <= trends <= tests:
        raise ValueError(f"need 1 or more tests and 0 to {tests} trends, got {tests} tests and {trends} trends")
    alpha = 1.0 - level
    return round(tests * alpha, 12), float(binom.sf(trends - 1, tests, alpha))


def difference(before, after) -> Difference:
    """``after - before`` with standard error ``sqrt(se_before^2 + se_after^2)`` (independent
    errors; for two networks scored on the same test images this is conservative), keeping both
    sides' estimated parts for its degrees of freedom. Works on :class:`Estimate`,
    :class:`Spread` and :class:`Difference` alike.

    >>> d = difference(Estimate(0.78, 0.004, 1), Estimate(0.80, 0.004, 1))
    >>> round(d.delta, 3), round(d.se, 4), d.is_trend()
    (0.02, 0.0057, True)
    """
    value = {Estimate: "mean", Spread: "value", Difference: "delta"}
    a = getattr(before, value[type(before)])
    b = getattr(after, value[type(after)])
    return Difference(b - a, math.hypot(before.se, after.se), before.terms + after.terms)


def mean_difference(differences) -> Difference:
    """The mean of independent differences (of different networks), with standard error
    ``sqrt(sum se_i^2) / k``; their estimated parts scale alike, so parts of one seed-noise
    estimate still count once in the degrees of freedom.

    >>> noise = SeedNoise(0.01, 3)
    >>> ds = [Difference(0.02, 0.01, (NoiseTerm(1e-4, 3, noise),)), Difference(0.0, 0.01, (NoiseTerm(1e-4, 3, noise),))]
    >>> m = mean_difference(ds)
    >>> round(m.delta, 3), round(m.se, 5), m.dof
    (0.01, 0.00707, 3.0)
    """
    differences = list(differences)
    if not differences:
        raise ValueError("mean_difference needs at least one difference")
    k = len(differences)
    terms = tuple(NoiseTerm(t.variance / k ** 2, t.dof, t.source) for d in differences for t in d.terms)
    se = math.sqrt(sum(d.se ** 2 for d in differences)) / k
    return Difference(sum(d.delta for d in differences) / k, se, terms)


@functools.lru_cache(maxsize=256)
def _studentized_range(level: float, means: int, dof: float) -> float:
    """The ``level`` quantile of the studentized range of ``means`` means on ``dof`` degrees of
    freedom (cached: scipy integrates it numerically, about 0.1 s a call)."""
    from scipy.stats import studentized_range  # here, as in critical_value: keep the import light

    if not dof > 0:
        raise ValueError(f"dof must be positive, got {dof}")
    return float(studentized_range.ppf(level, means, dof))


@dataclass(frozen=True)
class Spread(_Judged):
    """The spread of a quantity across losses: the largest minus the smallest per-loss mean
    (``best`` and ``worst`` name them, out of ``losses`` losses), with the standard error of that
    difference. The largest of several differences is larger than a typical one even where the
    losses do not differ at all, so a spread is judged by Tukey's studentized range
    (:meth:`threshold`), not by Student's t."""

    value: float
    se: float
    best: str
    worst: str
    terms: tuple[NoiseTerm, ...] = ()
    losses: int = 2

    def critical_value(self, level: float = TREND_LEVEL) -> float:
        """How many standard errors of best minus worst the spread must exceed: the ``level``
        quantile of the studentized range of ``losses`` means on :attr:`dof` degrees of freedom,
        over sqrt(2) since ``se`` is that of a difference of two means (Tukey-Kramer where the
        means' errors differ). With two losses it is Student's t of :func:`critical_value`.

        >>> round(Spread(0.01, 0.004, "ls", "ce", losses=4).critical_value(), 2)
        2.57
        """
        if self.losses < 2:
            raise ValueError(f"a spread needs at least two losses, got {self.losses}")
        if self.losses == 2:
            return critical_value(self.dof, level)
        return _studentized_range(level, self.losses, self.dof) / math.sqrt(2.0)

    def is_trend(self, level: float = TREND_LEVEL) -> bool:
        """True when the spread exceeds :meth:`threshold`, a test of "every loss has the same mean"
        that holds its level whichever two losses end up best and worst; never when the noise is
        not measured."""
        return self.measured and self.value > self.threshold(level)

    def finding(self, level: float = TREND_LEVEL) -> str:
        """``"the losses differ"`` for a spread beyond :meth:`threshold`, ``"within noise"`` below
        it, :data:`NOISE_NOT_MEASURED` where there is no noise level to judge it by."""
        if not self.measured:
            return NOISE_NOT_MEASURED
        return "the losses differ" if self.is_trend(level) else "within noise"

    def _quantile_text(self) -> str:
        known = ", all of its noise known" if math.isinf(self.dof) else f" on {_dof_text(self.dof)}"
        return f"Tukey’s studentized range of {self.losses} means{known}"


def spread(estimates: dict[str, Estimate]) -> Spread:
    """:class:`Spread` of per-loss estimates (at least two)."""
    if len(estimates) < 2:
        raise ValueError("a spread needs estimates for at least two losses")
    best = max(estimates, key=lambda k: estimates[k].mean)
    worst = min(estimates, key=lambda k: estimates[k].mean)
    gap = difference(estimates[worst], estimates[best])
    return Spread(gap.delta, gap.se, best, worst, gap.terms, len(estimates))


def ordering(estimates: dict[str, Estimate]) -> list[tuple[str, str, Difference]]:
    """The losses sorted by their estimate, lowest first, with each neighbouring pair's
    :class:`Difference` (higher minus lower): ``is_trend()`` says whether the step is beyond noise.

    >>> steps = ordering({"ce": Estimate(1.0, 0.05, 3), "mse": Estimate(-1.0, 0.05, 3), "ls": Estimate(1.1, 0.05, 3)})
    >>> [(a, b, d.is_trend()) for a, b, d in steps]
    [('mse', 'ce', True), ('ce', 'ls', False)]
    """
    names = sorted(estimates, key=lambda k: estimates[k].mean)
    return [(a, b, difference(estimates[a], estimates[b])) for a, b in zip(names, names[1:])]


def ordering_text(estimates: dict[str, Estimate], labels=None, *, level: float = TREND_LEVEL) -> str:
    """An ordering as a reader reads it: ``"MSE < CE ≈ LS"``, where ``<`` is a step that is a
    trend at ``level`` (:meth:`Difference.is_trend`) and ``≈`` one within noise. Where a step's
    noise is not measured, no step is judged: ``"MSE, CE, LS from lowest (noise not measured)"``.

    >>> ordering_text({"ce": Estimate(1.0, 0.05, 3), "mse": Estimate(-1.0, 0.05, 3), "ls": Estimate(1.1, 0.05, 3)})
    'mse < ce ≈ ls'
    >>> ordering_text({"ce": log_estimate([0.2]), "mse": log_estimate([0.007])})
    'mse, ce from lowest (noise not measured)'
    """
    labels = labels or {}
    steps = ordering(estimates)
    if not steps:
        return " ".join(labels.get(k, k) for k in estimates)
    if not all(d.measured for _, _, d in steps):
        names = [steps[0][0]] + [b for _, b, _ in steps]
        return ", ".join(labels.get(k, k) for k in names) + f" from lowest ({NOISE_NOT_MEASURED})"
    text = labels.get(steps[0][0], steps[0][0])
    for _, b, d in steps:
        text += (" < " if d.is_trend(level) else " ≈ ") + labels.get(b, b)
    return text
