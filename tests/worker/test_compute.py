"""The worker's computation of one request: validation again, results, and the message size."""

from __future__ import annotations

import json

from qcompute import contract
from qcompute.settings import Limits
from worker.compute import answer

SECRET = b"secret-for-tests"


def _request(numbers: object, operations: object) -> dict:
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
    return contract.decode_request(body)


def test_a_valid_request_gets_every_result() -> None:
    record = answer(_request([4, 1, 3, "2"], ["sum", "median", "sorted"]), Limits(), worker="w", attempt=1)
    assert record["status"] == "done"
    assert record["results"] == {"sum": 10, "median": 2.5, "sorted": [1, 2, 3, 4]}
    assert record["request"]["numbers"] == [4, 1, 3, 2]
    assert record["worker"] == "w"


def test_the_worker_validates_again_and_answers_with_an_error() -> None:
    record = answer(_request([1, 2, 3], ["sum"]), Limits(max_numbers=2), worker="w", attempt=1)
    assert record["status"] == "error"
    assert record["error"] == {
        "code": "too_many_numbers",
        "message": "3 numbers given; at most 2 are allowed",
        "field": "numbers",
    }
    record = answer(_request([1], ["sum", "nope"]), Limits(), worker="w", attempt=1)
    assert record["error"]["code"] == "unknown_operation"


def test_results_too_large_to_send_become_errors_and_the_rest_still_arrive() -> None:
    contract.allow_big_integers()
    limits = Limits(max_message_bytes=4_096)
    numbers = [10**18 - 1] * 300  # the product has about 5,400 digits
    record = answer(_request(numbers, ["sum", "product", "count"]), limits, worker="w", attempt=1)
    assert record["status"] == "done"
    assert record["results"] == {"sum": 300 * (10**18 - 1), "count": 300}
    assert record["errors"]["product"]["code"] == "result_too_large"
    assert "too large to send" in record["errors"]["product"]["message"]
    assert len(contract.encode(record).encode()) <= limits.max_message_bytes


def test_results_come_before_the_echo_of_the_numbers() -> None:
    contract.allow_big_integers()
    limits = Limits(max_message_bytes=8_192)
    numbers = [10**18 - 1] * 300
    record = answer(_request(numbers, ["product"]), limits, worker="w", attempt=1)
    assert record["results"]["product"] == (10**18 - 1) ** 300
    assert record["request"]["numbers_omitted"] == 300


def test_numbers_that_leave_no_room_are_omitted_but_counted() -> None:
    limits = Limits(max_message_bytes=4_096)
    numbers = list(range(10**17, 10**17 + 300))  # about 5,400 bytes of input
    record = answer(_request(numbers, ["count", "sum"]), limits, worker="w", attempt=1)
    assert record["results"] == {"count": 300, "sum": sum(numbers)}
    assert record["request"]["numbers"] == []
    assert record["request"]["numbers_omitted"] == 300
    assert len(json.dumps(record)) <= limits.max_message_bytes
