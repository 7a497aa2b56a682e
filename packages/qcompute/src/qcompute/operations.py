"""The operations a request can ask for, each defined once: name, label and function.

All arithmetic is exact on Python integers. A result that is a whole number is returned as an `int`
of any size; any other is the correctly rounded `float`. Adding an operation is one entry in
`OPERATIONS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from qcompute.messages import N_

Number = int | float
Value = Number | list[int]


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    compute: Callable[[Sequence[int]], Value]
    # For results that can grow without bound: a cheap upper bound on their size in bits, checked
    # before computing so that a result nobody could receive is refused without spending minutes.
    result_bits: Callable[[Sequence[int]], int] | None = None


def product(numbers: Sequence[int]) -> int:
    """Multiply in a balanced tree: far faster than left to right once the product is large."""
    values = list(numbers)
    while len(values) > 1:
        pairs = [values[i] * values[i + 1] for i in range(0, len(values) - 1, 2)]
        values = pairs + values[len(pairs) * 2 :]
    return values[0]


def product_bits(numbers: Sequence[int]) -> int:
    return sum(abs(n).bit_length() for n in numbers)


def lcm_bits(numbers: Sequence[int]) -> int:
    """lcm divides the product of the distinct absolute values. Distinct here by value, in a sorted
    copy (a set of a million numbers would take 60 MB): a value and its negative both count, which
    leaves the bound an upper bound."""
    ordered = sorted(numbers)
    return sum(n.bit_length() for i, n in enumerate(ordered) if i == 0 or n != ordered[i - 1])


def exact(value: Fraction) -> Number:
    """A whole `Fraction` as an `int`, any other as the nearest `float`."""
    if value.denominator == 1:
        return value.numerator
    # int / int true division is correctly rounded, even for integers beyond float range.
    return value.numerator / value.denominator


def mean(numbers: Sequence[int]) -> Number:
    return exact(Fraction(sum(numbers), len(numbers)))


def median(numbers: Sequence[int]) -> Number:
    ordered = sorted(numbers)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return exact(Fraction(ordered[middle - 1] + ordered[middle], 2))


def modes(numbers: Sequence[int]) -> list[int]:
    """All the most common values, ascending.

    Counted in runs of a sorted copy rather than in a Counter: a million distinct numbers make a
    Counter of 60 MB, the sorted copy 8 MB."""
    ordered = sorted(numbers)
    found: list[int] = []
    highest = run = 0
    for index, value in enumerate(ordered):
        run = run + 1 if index and value == ordered[index - 1] else 1
        if run > highest:
            highest, found = run, [value]
        elif run == highest:
            found.append(value)
    return found


def _population_variance(numbers: Sequence[int]) -> Fraction:
    # Sum of squared deviations from the exact mean, scaled by n to stay in integers:
    # n * sum((x - mean)^2) = n * sum(x^2) - (sum x)^2.
    n = len(numbers)
    total = sum(numbers)
    return Fraction(n * sum(x * x for x in numbers) - total * total, n * n)


def variance(numbers: Sequence[int]) -> Number:
    return exact(_population_variance(numbers))


def _sqrt_round_to_odd(numerator: int, denominator: int) -> int:
    """isqrt(numerator / denominator), with the lowest bit set when the root is inexact."""
    root = math.isqrt(numerator // denominator)
    return root | (root * root * denominator != numerator)


def _float_sqrt(value: Fraction) -> float:
    """The correctly rounded square root of a non-negative fraction.

    Round-to-odd with more than twice a float's 53 bits of precision, then one correctly rounded
    division (the method `statistics` uses since Python 3.12).
    """
    n, m = value.numerator, value.denominator
    shift = (n.bit_length() - m.bit_length() - 109) // 2
    if shift >= 0:
        return float(_sqrt_round_to_odd(n, m << 2 * shift) << shift)
    return _sqrt_round_to_odd(n << -2 * shift, m) / (1 << -shift)


def standard_deviation(numbers: Sequence[int]) -> Number:
    spread = _population_variance(numbers)
    if spread.denominator == 1:
        root = math.isqrt(spread.numerator)
        if root * root == spread.numerator:
            return root
    return _float_sqrt(spread)


OPERATIONS: dict[str, Operation] = {
    operation.name: operation
    for operation in (
        Operation("sum", N_("Sum"), sum),
        Operation("product", N_("Product"), product, result_bits=product_bits),
        Operation("min", N_("Minimum"), min),
        Operation("max", N_("Maximum"), max),
        Operation("range", N_("Range"), lambda numbers: max(numbers) - min(numbers)),
        Operation("count", N_("Count"), len),
        Operation("mean", N_("Mean"), mean),
        Operation("median", N_("Median"), median),
        Operation("mode", N_("Mode"), modes),
        Operation("variance", N_("Variance (population)"), variance),
        Operation("stdev", N_("Standard deviation (population)"), standard_deviation),
        Operation("sorted", N_("Sorted"), sorted),
        Operation("gcd", N_("Greatest common divisor"), lambda numbers: math.gcd(*numbers)),
        Operation(
            "lcm", N_("Least common multiple"), lambda numbers: math.lcm(*numbers), result_bits=lcm_bits
        ),
    )
}
