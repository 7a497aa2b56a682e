"""Independent reference results, from Python's statistics and math, for checking the service."""

from __future__ import annotations

import math
import statistics
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
    }[name]()


def matches(name: str, numbers: list[int], value: Any) -> bool:
    """Whether a service result is right; stdev is compared to within rounding on Python < 3.12."""
    want = expected(name, numbers)
    if name == "stdev":
        return math.isclose(value, want, rel_tol=1e-15, abs_tol=0)
    return value == want and type(value) is type(want)
