"""The two operations behind the result page's charts: histogram and box_plot, by their properties."""

from __future__ import annotations

import itertools
import random
import time
from bisect import bisect_left
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from harness import reference
from qcompute.operations import MAX_BINS, OPERATIONS, SHOWN_OUTLIERS, box_plot, histogram, median

LIMIT = 10**18
# Wide and narrow ranges, ties, and a few far outliers: every branch of the bin and whisker rules.
spreads = st.sampled_from([5, 40, 41, 1_000, 10**6, LIMIT])
integer_lists = spreads.flatmap(
    lambda spread: (
        st.lists(st.integers(-spread, spread), min_size=1, max_size=200)
        | st.lists(st.integers(-spread, spread), min_size=1, max_size=30).map(lambda xs: [*xs, LIMIT, -LIMIT])
    )
)


@settings(max_examples=400, deadline=None)
@given(numbers=integer_lists)
def test_histogram_bins_cover_every_number_exactly_once(numbers: list[int]) -> None:
    result = histogram(numbers)
    edges, counts = result["edges"], result["counts"]
    assert len(edges) == len(counts) + 1
    assert 1 <= len(counts) <= MAX_BINS
    assert sum(counts) == len(numbers)
    assert edges[0] <= min(numbers), "bins cover min..max"
    assert max(numbers) < edges[-1], "bins cover min..max"
    widths = {right - left for left, right in itertools.pairwise(edges)}
    assert len(widths) == 1, "equal widths"
    assert all(isinstance(edge, int) for edge in edges), "integer edges"
    assert counts[0] > 0, "no empty bin at either end"
    assert counts[-1] > 0, "no empty bin at either end"
    # Bin i holds edges[i] <= x < edges[i+1]: each number in exactly one bin.
    for x in numbers[:20]:
        assert sum(left <= x < right for left, right in itertools.pairwise(edges)) == 1
    brute = [sum(left <= x < right for x in numbers) for left, right in itertools.pairwise(edges)]
    assert counts == brute
    if max(numbers) - min(numbers) < MAX_BINS:
        assert edges == list(range(min(numbers), max(numbers) + 2)), "one bin per value"


@settings(max_examples=400, deadline=None)
@given(numbers=integer_lists)
def test_box_plot_quartiles_whiskers_and_outliers(numbers: list[int]) -> None:
    result = box_plot(numbers)
    q1, middle, q3 = result["q1"], result["median"], result["q3"]
    assert q1 <= middle <= q3
    assert middle == median(numbers), "the median op, exactly"
    assert type(middle) is type(median(numbers))
    # The fences from exact quartiles (statistics' "inclusive" method: type 7 too), as floats would
    # round them for integers of 18 digits.
    exact_q1, _, exact_q3 = reference.quartiles(numbers)
    assert (q1, q3) == (reference.exact_value(exact_q1), reference.exact_value(exact_q3))
    reach = Fraction(3, 2) * (exact_q3 - exact_q1)
    low_fence, high_fence = exact_q1 - reach, exact_q3 + reach
    # Whiskers are numbers of the input, the most extreme within the fences.
    inside = [x for x in numbers if low_fence <= x <= high_fence]
    assert (result["whisker_low"], result["whisker_high"]) == (min(inside), max(inside))
    below = sorted(x for x in numbers if x < low_fence)
    above = sorted(x for x in numbers if x > high_fence)
    assert (result["outliers_low"], result["outliers_high"]) == (len(below), len(above))
    assert result["extremes_low"] == below[:SHOWN_OUTLIERS]
    assert result["extremes_high"] == above[len(above) - min(len(above), SHOWN_OUTLIERS) :]
    # Not whisker <= Q1: an interpolated quartile in a wide gap can lie below the lowest number inside
    # the fence (1, 1 between -10**18 and 10**18). The chart then draws no whisker on that side.
    assert result["whisker_low"] <= middle <= result["whisker_high"]
    assert len(result["extremes_low"]) <= SHOWN_OUTLIERS
    assert len(result["extremes_high"]) <= SHOWN_OUTLIERS


def test_known_histograms() -> None:
    # A small range: one bin per value, zero counts included.
    assert histogram([3, 1, 4, 1, 5, 9, 2, 6]) == {
        "edges": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        "counts": [2, 1, 1, 1, 1, 1, 0, 0, 1],
    }
    assert histogram([7]) == {"edges": [7, 8], "counts": [1]}
    # 0..99: Sturges wants 8 bins, width 100 // 8 = 12 rounds down to 10.
    assert histogram(list(range(100))) == {"edges": list(range(0, 101, 10)), "counts": [10] * 10}
    # Edges on multiples of the width, even below zero; the last edge is past the maximum.
    assert histogram([-95, 0, 12, 60]) == {"edges": [-100, -50, 0, 50, 100], "counts": [1, 0, 2, 1]}
    huge = histogram([-(10**18), 10**18])
    assert huge["edges"][0] == -(10**18)
    assert huge["counts"][0] == 1
    assert huge["counts"][-1] == 1


def test_known_box_plots() -> None:
    assert box_plot([1, 2, 3, 4, 100]) == {
        "q1": 2,
        "median": 3,
        "q3": 4,
        "whisker_low": 1,
        "whisker_high": 4,
        "outliers_low": 0,
        "outliers_high": 1,
        "extremes_low": [],
        "extremes_high": [100],
    }
    # Type 7 interpolates: for 1..4, Q1 = 1 + 0.75 * (2 - 1).
    quarters = box_plot([4, 3, 2, 1])
    assert (quarters["q1"], quarters["median"], quarters["q3"]) == (1.75, 2.5, 3.25)
    # An IQR of 0: every number but the zeros is an outlier.
    many = box_plot([0] * 100 + list(range(1000, 1030)) + [-(10**18)] * 3)
    assert (many["outliers_low"], many["outliers_high"]) == (3, 30)
    assert many["extremes_low"] == [-(10**18)] * 3
    assert many["extremes_high"] == list(range(1020, 1030)), "only the 10 most extreme"


def test_chart_operations_are_offered_with_labels() -> None:
    assert OPERATIONS["histogram"].label == "Histogram"
    assert "Box plot" in OPERATIONS["box_plot"].label


def test_a_million_integers_benchmark() -> None:
    """Not a timed assertion (the machine is shared): the times are printed, with -s."""
    rng = random.Random(13)
    numbers = [rng.randint(-LIMIT, LIMIT) for _ in range(1_000_000)]
    results = {}
    for name in ("histogram", "box_plot"):
        started = time.perf_counter()
        results[name] = OPERATIONS[name].compute(numbers)
        print(f"{name} of a million integers: {time.perf_counter() - started:.2f} s")
        assert len(str(results[name])) < 5_000, "the result stays small"
    edges, counts = results["histogram"]["edges"], results["histogram"]["counts"]
    assert len(counts) == MAX_BINS
    assert sum(counts) == 1_000_000
    assert counts[0] == bisect_left(sorted(numbers), edges[1])
