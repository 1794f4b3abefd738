"""Numbers into the book's sentences: counts with their nouns, lists, ranges and ``mean ± sd``.

One place for these, so that no chapter prints "1 dead classes", an empty list, or a range whose
ends are equal.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["plural", "count", "join_list", "value_range", "plus_minus", "signed", "percent", "median_range", "width"]


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``word`` for a count of one, its plural otherwise (``word + "s"`` unless given).

    >>> plural(1, "class", "classes"), plural(3, "class", "classes"), plural(0, "run")
    ('class', 'classes', 'runs')
    """
    return word if n == 1 else (plural_form or word + "s")


def count(n: int, word: str, plural_form: str | None = None) -> str:
    """``"1 run"``, ``"3 runs"``.

    >>> count(1, "dead class", "dead classes"), count(2, "seed")
    ('1 dead class', '2 seeds')
    """
    return f"{n:,} {plural(n, word, plural_form)}"


def join_list(items: Iterable[str], *, empty: str = "none", last: str = "and") -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``; ``empty`` when there is nothing.

    >>> join_list([]), join_list(["CE"]), join_list(["CE", "LS", "FL"])
    ('none', 'CE', 'CE, LS and FL')
    """
    items = [str(i) for i in items]
    if not items:
        return empty
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def value_range(values: Iterable[float], fmt: str = ".3g", *, sep: str = "–") -> str:
    """``"0.12–0.34"``, or one number when every value prints alike.

    >>> value_range([0.5, 0.25]), value_range([1.0, 1.0001], ".2f")
    ('0.25–0.5', '1.00')
    """
    values = list(values)
    if not values:
        raise ValueError("value_range needs at least one value")
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}{sep}{hi}"


def plus_minus(mean: float, sd: float | None, fmt: str = ".1f") -> str:
    """``"78.3 ± 0.4"``, or the mean alone when there is no spread (one seed).

    >>> plus_minus(78.31, 0.42), plus_minus(78.31, None)
    ('78.3 ± 0.4', '78.3')
    """
    return format(mean, fmt) if sd is None else f"{mean:{fmt}} ± {sd:{fmt}}"


def signed(x: float, fmt: str = ".2f") -> str:
    """A change with its sign, the minus a typographic one: ``"+0.13"``, ``"−0.13"``. A change
    that rounds to zero reads ``"+0.0"``, never ``"−0.0"``.

    >>> signed(0.134), signed(-0.134), signed(-1.5, ".1f"), signed(-0.004, ".1f")
    ('+0.13', '−0.13', '−1.5', '+0.0')
    """
    return f"{x:+z{fmt}}".replace("-", "\u2212")


def percent(fraction: float, fmt: str = ".1f") -> str:
    """A fraction as a percentage with its sign: ``"99.9%"``.

    >>> percent(0.99912), percent(1.0, ".2f")
    ('99.9%', '100.00%')
    """
    return f"{100 * fraction:{fmt}}%"


def median_range(values, fmt: str = "g") -> str:
    """``"median (lowest–highest)"`` of the values that are not None, and how many are None
    ("not reached"), or ``"not reached"`` when all are.

    >>> median_range([30, 10, None, 20]), median_range([None])
    ('20 (10–30), 1 not reached', 'not reached')
    """
    import statistics

    values = list(values)
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    text = f"{statistics.median(reached):{fmt}} ({value_range(reached, fmt)})"
    missing = len(values) - len(reached)
    return text + (f", {missing} not reached" if missing else "")


def width(w: float) -> str:
    """A width multiplier as a reader says it: ``"1/8"`` for 0.125, ``"3/8"``, ``"1"``, ``"0.3"``.

    >>> width(0.125), width(0.375), width(1.0), width(2.0), width(0.3)
    ('1/8', '3/8', '1', '2', '0.3')
    """
    from fractions import Fraction

    frac = Fraction(w).limit_denominator(64)
    if abs(float(frac) - w) > 1e-12 or frac.denominator not in (1, 2, 4, 8, 16, 32, 64):
        return f"{w:g}"
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"
