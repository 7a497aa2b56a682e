"""The worker's computation of one request: validation again, results, refusals, several cores."""

from __future__ import annotations

import random

import pytest

from qcompute import contract
from qcompute.operations import OPERATIONS
from qcompute.settings import Limits
from worker.compute import Calculator, answer, compute

SECRET = b"secret-for-tests"


def _request(numbers: object, operations: object) -> tuple[dict, object]:
    body = contract.encode(
        contract.request_message(
            contract.new_request_id(SECRET),
            numbers,  # type: ignore[arg-type]
            operations,  # type: ignore[arg-type]
            reply_to=None,
            correlation_id="c",
            submitted_at=contract.utc_now(),
        )
    )
    request = contract.decode_request(body)
    return request, request["numbers"]


@pytest.fixture
def serial() -> Calculator:
    return Calculator(Limits(), processes=1, parallel_from=1)


def test_a_valid_request_gets_every_result(serial) -> None:
    request, numbers = _request([4, 1, 3, "2"], ["sum", "median", "sorted"])
    record = answer(request, numbers, serial, worker="w", attempt=1)
    assert record["status"] == "done"
    assert record["results"] == {"sum": 10, "median": 2.5, "sorted": [1, 2, 3, 4]}
    assert record["request"] == {
        "operations": ["sum", "median", "sorted"],
        "count": 4,
        "numbers": [4, 1, 3, 2],
    }
    assert record["worker"] == "w"


def test_the_worker_validates_again_and_answers_with_an_error() -> None:
    calculator = Calculator(Limits(max_numbers=2), processes=1, parallel_from=1)
    request, numbers = _request([1, 2, 3], ["sum"])
    record = answer(request, numbers, calculator, worker="w", attempt=1)
    assert record["status"] == "error"
    assert record["error"] == {
        "code": "too_many_numbers",
        "message": "3 numbers given; at most 2 are allowed",
        "field": "numbers",
    }
    request, numbers = _request([1], ["sum", "nope"])
    assert answer(request, numbers, calculator, worker="w", attempt=1)["error"]["code"] == "unknown_operation"


def test_results_too_large_are_refused_before_computing_and_the_rest_still_arrive() -> None:
    numbers = [10**18 - 1] * 100_000  # a product of 1.8 million digits: minutes to compute and print
    results, errors = compute(numbers, ["sum", "product", "lcm", "count"], max_result_digits=200_000)
    # lcm only grows with distinct values: one value repeated has an lcm of its own size.
    assert results == {"sum": 100_000 * (10**18 - 1), "lcm": 10**18 - 1, "count": 100_000}
    assert list(errors) == ["product"]
    assert errors["product"]["code"] == "result_too_large"
    assert (
        errors["product"]["message"]
        == "the product could have up to 1,806,180 digits; at most 200,000 are computed"
    )
    distinct = list(range(10**17, 10**17 + 20_000))
    assert compute(distinct, ["lcm"], max_result_digits=200_000)[1]["lcm"]["code"] == "result_too_large"


def test_large_requests_are_split_among_processes_with_the_same_results() -> None:
    rng = random.Random(5)
    numbers = [rng.randint(-(10**12), 10**12) for _ in range(3_000)]
    operations = [name for name in OPERATIONS if name not in ("product", "lcm")]
    parallel = Calculator(Limits(), processes=2, parallel_from=1_000)
    try:
        assert parallel(numbers, operations) == compute(numbers, operations, Limits().max_result_digits)
        results, _ = parallel(numbers, operations)
        assert list(results) == operations, "in the order asked"
    finally:
        parallel.close()


def test_a_large_request_goes_to_other_processes_only_for_two_heavy_operations() -> None:
    calculator = Calculator(Limits(), processes=2, parallel_from=1_000)
    try:
        assert not calculator.in_parallel(999, ["sorted", "mode"]), "too few numbers"
        assert not calculator.in_parallel(5_000, ["sum", "mean", "median", "max", "stdev"]), "light only"
        assert not calculator.in_parallel(5_000, ["sum", "sorted"]), "one heavy: a copy costs as much"
        assert calculator.in_parallel(5_000, ["sum", "sorted", "histogram"])
        assert calculator.in_parallel(5_000, ["product", "lcm"])
    finally:
        calculator.close()
