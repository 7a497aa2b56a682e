"""The requests every system is given: the same numbers and operations, so results can be checked."""

from __future__ import annotations

import random
from typing import Any

from qcompute.operations import OPERATIONS as ALL_OPERATIONS

OPERATIONS = ["sum", "mean", "median", "max"]
REGION = "us-east-1"


def numbers_for(index: int) -> list[int]:
    """10 to 100 integers, the same ones for the same index in every system."""
    rng = random.Random(index)  # noqa: S311 - reproducible test data, not a secret
    return [rng.randint(-1_000_000, 1_000_000) for _ in range(rng.randint(10, 100))]


def large_numbers(count: int) -> list[int]:
    """`count` integers of up to 12 digits: about 13 bytes each in JSON."""
    rng = random.Random(count)  # noqa: S311 - reproducible test data, not a secret
    return [rng.randint(-(10**12), 10**12) for _ in range(count)]


def compute(numbers: list[int], operations: list[str]) -> dict[str, Any]:
    """The answers, computed with the project's own operations (the baselines use this too)."""
    return {name: ALL_OPERATIONS[name].compute(numbers) for name in operations}


class WrongAnswer(RuntimeError):
    """A system answered, but not with the right results."""


def check(numbers: list[int], results: Any) -> None:
    expected = compute(numbers, OPERATIONS)
    if results != expected:
        raise WrongAnswer(f"expected {expected}, got {str(results)[:200]}")
