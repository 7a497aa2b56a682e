"""Every operation against Python's own statistics and math, on random inputs."""

from __future__ import annotations

import json
import math
import random
import statistics
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import reference
from qcompute import contract, operations
from qcompute.operations import OPERATIONS

LIMIT = 10**18
numbers_lists = st.lists(st.integers(min_value=-LIMIT, max_value=LIMIT), min_size=1, max_size=60)
small_lists = st.lists(st.integers(min_value=-50, max_value=50), min_size=1, max_size=60)


def check(name: str, numbers: list[int]) -> None:
    result = OPERATIONS[name].compute(numbers)
    expected = reference.expected(name, numbers)
    if name == "stdev":
        if isinstance(result, int):  # an exact square root: the reference is its float
            assert result * result == statistics.pvariance(numbers)
            assert math.isclose(result, expected, rel_tol=1e-15)
        elif sys.version_info >= (3, 12):  # both correctly rounded since 3.12
            assert result == expected
        else:
            assert math.isclose(result, expected, rel_tol=1e-15)
        return
    assert result == expected
    assert type(result) is type(expected), f"{name}: {result!r} should be {type(expected).__name__}"


@pytest.mark.parametrize("name", list(OPERATIONS))
@settings(max_examples=300, deadline=None)
@given(numbers=numbers_lists)
def test_operation_matches_python_on_large_integers(name: str, numbers: list[int]) -> None:
    check(name, numbers)


@pytest.mark.parametrize("name", list(OPERATIONS))
@settings(max_examples=300, deadline=None)
@given(numbers=small_lists)
def test_operation_matches_python_on_small_integers_with_ties(name: str, numbers: list[int]) -> None:
    check(name, numbers)


@pytest.mark.parametrize(
    ("name", "numbers", "expected"),
    [
        ("mean", [1, 2], 1.5),
        ("mean", [2, 4], 3),
        ("median", [1, 2, 3, 4], 2.5),
        ("median", [1, 3], 2),
        ("mode", [3, 1, 3, 1, 2], [1, 3]),
        ("variance", [1, 3], 1),
        ("stdev", [1, 3], 1),
        ("stdev", [0, 1], 0.5),
        ("gcd", [0, 0], 0),
        ("lcm", [4, 0, 6], 0),
        ("lcm", [-4, 6], 12),
        ("range", [7], 0),
    ],
)
def test_known_values_and_integral_results_are_integers(name: str, numbers: list[int], expected) -> None:
    result = OPERATIONS[name].compute(numbers)
    assert result == expected
    assert type(result) is type(expected)


def test_huge_integral_results_survive_json_exactly() -> None:
    contract.allow_big_integers()
    numbers = [10**18 - 7] * 2_000
    product = OPERATIONS["product"].compute(numbers)
    assert len(str(product)) > 30_000
    assert json.loads(json.dumps({"product": product}))["product"] == product


def test_every_operation_has_a_label() -> None:
    assert len(OPERATIONS) >= 14
    for name, operation in OPERATIONS.items():
        assert operation.name == name
        assert operation.label


@settings(max_examples=300, deadline=None)
@given(
    numbers=st.lists(st.integers(min_value=-30, max_value=30) | st.integers(), min_size=1, max_size=400),
    data=st.data(),
)
def test_ranked_is_a_slice_of_the_sorted_numbers(numbers: list[int], data: st.DataObject) -> None:
    low = data.draw(st.integers(min_value=0, max_value=len(numbers) - 1))
    high = data.draw(st.integers(min_value=low, max_value=len(numbers) - 1))
    # select_from=1: the sampling path even for a few numbers (the operations take it from 20,000).
    assert operations.ranked(numbers, low, high, select_from=1) == sorted(numbers)[low : high + 1]


def test_the_median_of_many_numbers_is_selected_exactly() -> None:
    rng = random.Random(7)
    for count in (20_000, 20_001, 100_000):
        numbers = [rng.randint(-(10**12), 10**12) for _ in range(count)] + [5] * 3_000  # a tie in the middle
        assert operations.median(numbers) == statistics.median(numbers)
        assert type(operations.median(numbers)) is type(reference.expected("median", numbers))


def test_a_sample_that_misses_falls_back_to_sorting(monkeypatch: pytest.MonkeyPatch) -> None:
    class LowestSample(random.Random):
        def sample(self, population, k, **options):  # the k smallest: bounds far below the middle
            return sorted(population)[:k]

    monkeypatch.setattr(operations.random, "Random", LowestSample)
    numbers = list(range(30_000, 0, -1))
    assert operations.ranked(numbers, 14_999, 15_000) == [15_000, 15_001]
    assert operations.median(numbers) == 15_000.5
