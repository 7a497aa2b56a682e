"""The operations a request can ask for, each defined once: name, label and function.

All arithmetic is exact on Python integers. A result that is a whole number is returned as an `int`
of any size; any other is the correctly rounded `float`. The two operations that feed the result page's
charts (`histogram`, `box_plot`) return small objects of such values, whatever the count of numbers.
Adding an operation is one entry in `OPERATIONS`.
"""

from __future__ import annotations

import itertools
import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from qcompute.messages import N_

Number = int | float
Value = Number | list[int] | dict[str, Number | list[int]]


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    compute: Callable[[Sequence[int]], Value]
    # For results that can grow without bound: a cheap upper bound on their size in bits, checked
    # before computing so that a result nobody could receive is refused without spending minutes.
    result_bits: Callable[[Sequence[int]], int] | None = None
    # Several times dearer than copying the numbers to another process (a sort of them all, a
    # product): 300 ms and more for a million, where the others take 70 ms at most. The worker
    # computes a large request on several processes only when it asks for two such operations.
    heavy: bool = False


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


# Below this count a sort is as quick as selecting (and simpler to trust).
SELECT_FROM = 20_000


def ranked(numbers: Sequence[int], low: int, high: int, *, select_from: int = SELECT_FROM) -> list[int]:
    """sorted(numbers)[low : high + 1], without sorting them all (a million: 55 ms, not 320).

    Floyd and Rivest's selection: a random sample's order statistics give two bounds that hold ranks
    low..high between them with near certainty; one pass counts the numbers under the lower bound and
    keeps those between, and only they are sorted. If the bounds missed (a sample rank four standard
    deviations off), everything is sorted: the answer is always exact, only its time depends on the
    sample. The sample is seeded by the count, so a given input always takes the same time.
    """
    count = len(numbers)
    if count < select_from:
        return sorted(numbers)[low : high + 1]
    size = min(count, 10 * math.isqrt(count))
    sample = sorted(random.Random(count).sample(numbers, size))  # noqa: S311 - no secret in a pivot
    margin = 2 * math.isqrt(size)  # four standard deviations of a sample rank, at least
    lower = sample[max(0, low * size // count - margin)]
    upper = sample[min(size - 1, high * size // count + margin)]
    under = sum(1 for x in numbers if x < lower)
    between = [x for x in numbers if lower <= x <= upper]
    if under <= low and high < under + len(between):
        between.sort()
        return between[low - under : high - under + 1]
    return sorted(numbers)[low : high + 1]


def median(numbers: Sequence[int]) -> Number:
    middle = len(numbers) // 2
    if len(numbers) % 2:
        return ranked(numbers, middle, middle)[0]
    below, above = ranked(numbers, middle - 1, middle)
    return exact(Fraction(below + above, 2))


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


def _quantile(ordered: Sequence[int], p: Fraction) -> Fraction:
    """The p-quantile by linear interpolation between order statistics (Hyndman & Fan type 7, the
    default of R, NumPy and spreadsheets): at p = 1/2 it is exactly the median."""
    position = (len(ordered) - 1) * p
    below = math.floor(position)
    fraction = position - below
    if not fraction:
        return Fraction(ordered[below])
    return ordered[below] + fraction * (ordered[below + 1] - ordered[below])


MAX_BINS = 40


def _bin_count(ordered: Sequence[int]) -> int:
    """The larger of Sturges' and Freedman-Diaconis' bin counts (as NumPy's "auto"), at most MAX_BINS.

    Sturges suits small samples; Freedman-Diaconis (bin width 2·IQR/n^(1/3)) grows with n and resists
    outliers. Exact in Fractions, so a range of hundreds of digits never overflows a float."""
    n = len(ordered)
    sturges = (n - 1).bit_length() + 1  # ceil(log2 n) + 1
    spread = _quantile(ordered, Fraction(3, 4)) - _quantile(ordered, Fraction(1, 4))
    if not spread:
        return min(MAX_BINS, sturges)
    freedman_diaconis = math.ceil((ordered[-1] - ordered[0]) * Fraction(n ** (1 / 3)) / (2 * spread))
    return min(MAX_BINS, max(sturges, freedman_diaconis))


def _round_widths(about: int) -> Iterator[int]:
    """Bin widths 1, 2, 5, 10, 20, 50, ... from the largest one at most `about` (at least 1) upwards:
    edges then fall on round numbers, which the axis labels show."""
    power = 10 ** (len(str(about)) - 1)
    widths = [factor * power for factor in (1, 2, 5)]
    yield max(width for width in widths if width <= about)
    yield from (width for width in widths if width > about)
    while True:
        power *= 10
        yield from (factor * power for factor in (1, 2, 5))


def histogram(numbers: Sequence[int]) -> dict[str, list[int]]:
    """Counts of the numbers in bins of equal integer width: bin i holds edges[i] <= x < edges[i+1].

    A range of at most MAX_BINS values gets one bin per value. Sorting once and bisecting at each
    edge keeps a million numbers at O(n log n)."""
    ordered = sorted(numbers)
    low, high = ordered[0], ordered[-1]
    if high - low + 1 <= MAX_BINS:
        edges = list(range(low, high + 2))
    else:
        wanted = _bin_count(ordered)
        for width in _round_widths(max(1, (high - low + 1) // wanted)):
            start = low // width * width
            bins = -(-(high + 1 - start) // width)
            if bins <= MAX_BINS:  # aligning the start on a round number may have added one
                break
        edges = [start + i * width for i in range(bins + 1)]
    positions = [bisect_left(ordered, edge) for edge in edges]
    return {"edges": edges, "counts": [after - before for before, after in itertools.pairwise(positions)]}


# At most this many outliers are listed on each side: a million numbers keep a small result.
SHOWN_OUTLIERS = 10


def box_plot(numbers: Sequence[int]) -> dict[str, Number | list[int]]:
    """What a box plot draws: quartiles (type 7, see `_quantile`), Tukey's whiskers (the most extreme
    numbers within 1.5 IQR of the box), how many outliers lie beyond each whisker, and the most
    extreme of them (at most SHOWN_OUTLIERS a side, ascending)."""
    ordered = sorted(numbers)
    q1, middle, q3 = (_quantile(ordered, Fraction(k, 4)) for k in (1, 2, 3))
    reach = Fraction(3, 2) * (q3 - q1)
    below = bisect_left(ordered, q1 - reach)  # how many lie under the low fence
    within = bisect_right(ordered, q3 + reach)  # the count up to the high fence, included
    above = len(ordered) - within
    return {
        "q1": exact(q1),
        "median": exact(middle),
        "q3": exact(q3),
        "whisker_low": ordered[below],
        "whisker_high": ordered[within - 1],
        "outliers_low": below,
        "outliers_high": above,
        "extremes_low": ordered[: min(below, SHOWN_OUTLIERS)],
        "extremes_high": ordered[len(ordered) - min(above, SHOWN_OUTLIERS) :],
    }


OPERATIONS: dict[str, Operation] = {
    operation.name: operation
    for operation in (
        Operation("sum", N_("Sum"), sum),
        Operation("product", N_("Product"), product, result_bits=product_bits, heavy=True),
        Operation("min", N_("Minimum"), min),
        Operation("max", N_("Maximum"), max),
        Operation("range", N_("Range"), lambda numbers: max(numbers) - min(numbers)),
        Operation("count", N_("Count"), len),
        Operation("mean", N_("Mean"), mean),
        Operation("median", N_("Median"), median),
        Operation("mode", N_("Mode"), modes, heavy=True),
        Operation("variance", N_("Variance (population)"), variance),
        Operation("stdev", N_("Standard deviation (population)"), standard_deviation),
        Operation("sorted", N_("Sorted"), sorted, heavy=True),
        Operation("gcd", N_("Greatest common divisor"), lambda numbers: math.gcd(*numbers)),
        Operation(
            "lcm",
            N_("Least common multiple"),
            lambda numbers: math.lcm(*numbers),
            result_bits=lcm_bits,
            heavy=True,
        ),
        Operation("histogram", N_("Histogram"), histogram, heavy=True),
        Operation("box_plot", N_("Box plot (quartiles, whiskers, outliers)"), box_plot, heavy=True),
    )
}
