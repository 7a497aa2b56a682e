"""Independent reference results, from Python's statistics and math, for checking the service."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from fractions import Fraction
from functools import reduce
from typing import Any


def exact_value(value: Fraction) -> int | float:
    """The service's form of an exact result: integral -> int, otherwise the nearest float."""
    value = Fraction(value)
    return value.numerator if value.denominator == 1 else float(value)


def expected(name: str, numbers: list[int]) -> Any:
    exact = [Fraction(n) for n in numbers]  # statistics is exact on Fractions
    return {
        "sum": lambda: reduce(lambda a, b: a + b, numbers, 0),
        "product": lambda: reduce(lambda a, b: a * b, numbers, 1),
        "min": lambda: min(numbers),
        "max": lambda: max(numbers),
        "range": lambda: max(numbers) - min(numbers),
        "count": lambda: len(numbers),
        "mean": lambda: exact_value(statistics.mean(exact)),
        "median": lambda: exact_value(statistics.median(exact)),
        "mode": lambda: sorted(statistics.multimode(numbers)),
        "variance": lambda: exact_value(statistics.pvariance(exact)),
        "stdev": lambda: statistics.pstdev(numbers),
        "sorted": lambda: sorted(numbers),
        "gcd": lambda: reduce(math.gcd, numbers, 0),
        "lcm": lambda: reduce(lambda a, b: abs(a * b) // math.gcd(a, b) if a and b else 0, numbers, 1),
        "histogram": lambda: histogram(numbers),
        "box_plot": lambda: box_plot(numbers),
    }[name]()


def quartiles(numbers: list[int]) -> list[Fraction]:
    """Q1, median, Q3 by statistics' "inclusive" method, which is linear interpolation (type 7)."""
    if len(numbers) == 1:  # statistics.quantiles wants two numbers before Python 3.13
        return [Fraction(numbers[0])] * 3
    return statistics.quantiles([Fraction(n) for n in numbers], n=4, method="inclusive")


def histogram(numbers: list[int], max_bins: int = 40) -> dict[str, list[int]]:
    """The service's bin rule, written out plainly: one bin per value for a range of at most
    `max_bins` values; otherwise the larger of Sturges' and Freedman-Diaconis' counts (at most
    `max_bins`), its width rounded down to 1, 2 or 5 times a power of ten, the first edge a multiple
    of the width, a wider round width while that makes too many bins."""
    low, high = min(numbers), max(numbers)
    values = high - low + 1
    if values <= max_bins:
        start, width, bins = low, 1, values
    else:
        n = len(numbers)
        q1, _, q3 = quartiles(numbers)
        wanted = math.ceil(math.log2(n)) + 1
        if q3 > q1:
            wanted = max(wanted, math.ceil((high - low) * Fraction(n ** (1 / 3)) / (2 * (q3 - q1))))
        wanted = min(wanted, max_bins)
        rounds = sorted(f * 10**k for k in range(len(str(values)) + 1) for f in (1, 2, 5))
        width = max([w for w in rounds if w <= max(1, values // wanted)])
        while True:
            start = low - low % width
            bins = -(-(high + 1 - start) // width)
            if bins <= max_bins:
                break
            width = rounds[rounds.index(width) + 1]
    per_bin = Counter((x - start) // width for x in numbers)
    return {
        "edges": [start + i * width for i in range(bins + 1)],
        "counts": [per_bin[i] for i in range(bins)],
    }


def box_plot(numbers: list[int], shown: int = 10) -> dict[str, Any]:
    """Quartiles, Tukey's whiskers and outliers, by brute force over the sorted numbers."""
    q1, median, q3 = quartiles(numbers)
    low_fence, high_fence = q1 - Fraction(3, 2) * (q3 - q1), q3 + Fraction(3, 2) * (q3 - q1)
    ordered = sorted(numbers)
    low = [x for x in ordered if x < low_fence]
    high = [x for x in ordered if x > high_fence]
    inside = [x for x in ordered if low_fence <= x <= high_fence]
    return {
        "q1": exact_value(q1),
        "median": exact_value(median),
        "q3": exact_value(q3),
        "whisker_low": inside[0],
        "whisker_high": inside[-1],
        "outliers_low": len(low),
        "outliers_high": len(high),
        "extremes_low": low[:shown],
        "extremes_high": high[-shown:] if high else [],
    }


def matches(name: str, numbers: list[int], value: Any) -> bool:
    """Whether a service result is right; stdev is compared to within rounding on Python < 3.12."""
    want = expected(name, numbers)
    if name == "stdev":
        return math.isclose(value, want, rel_tol=1e-15, abs_tol=0)
    return value == want and type(value) is type(want)
