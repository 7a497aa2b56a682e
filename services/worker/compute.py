"""Turn one decoded request into its result record: validate again, compute, fit the message size."""

from __future__ import annotations

import math
from typing import Any

from qcompute import contract
from qcompute.operations import OPERATIONS
from qcompute.settings import Limits
from qcompute.validation import InputError, parse_numbers, parse_operations

# Room kept for everything in a record besides the results (ids, timings, field names).
ENVELOPE_BYTES = 2_048


def answer(request: dict[str, Any], limits: Limits, *, worker: str, attempt: int) -> dict[str, Any]:
    """The result record for a request whose envelope is valid; bad content gives an error record."""
    received_at = contract.utc_now()
    try:
        numbers = parse_numbers(request.get("numbers"), limits)
        operations = parse_operations(request.get("operations"))
    except InputError as error:
        record = contract.result_record(
            request,
            numbers=_as_given(request.get("numbers")),
            operations=_as_given(request.get("operations")),
            error=error.as_dict(),
            received_at=received_at,
            computed_at=contract.utc_now(),
            worker=worker,
            attempt=attempt,
        )
        return fit(record, limits.max_message_bytes)
    results, errors = {}, {}
    for name in operations:
        try:
            results[name] = OPERATIONS[name].compute(numbers)
        except (ArithmeticError, ValueError) as error:
            errors[name] = {"code": "compute_failed", "message": f"{name} failed: {error}", "field": name}
    record = contract.result_record(
        request,
        numbers=numbers,
        operations=operations,
        results=results,
        errors=errors,
        received_at=received_at,
        computed_at=contract.utc_now(),
        worker=worker,
        attempt=attempt,
    )
    return fit(record, limits.max_message_bytes)


def _as_given(values: Any) -> list[Any]:
    """Echo invalid input in the error record as text: it may not even be numbers."""
    if not isinstance(values, list):
        return []
    return [value if isinstance(value, str | int | float | bool) else repr(value) for value in values]


def _estimated_bytes(value: Any) -> int:
    """A cheap upper bound of a value's JSON size, without converting huge integers to text."""
    if isinstance(value, int):
        return math.ceil(value.bit_length() * math.log10(2)) + 2
    if isinstance(value, list):
        return sum(_estimated_bytes(item) + 1 for item in value) + 2
    return 32


def fit(record: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Make the record fit one message: results come first.

    The echoed numbers go first (the record keeps their count), then the largest results, each
    becoming a `result_too_large` error so the caller learns why it is missing. Sizes are estimated
    before anything is encoded, so a result of millions of digits is never converted to text.
    """
    results, errors = record["results"], record["errors"]
    sizes = {name: _estimated_bytes(value) for name, value in results.items()}

    def omit_numbers() -> None:
        request = record["request"]
        record["request"] = {**request, "numbers": [], "numbers_omitted": len(request["numbers"])}

    def drop_largest() -> None:
        largest = max(sizes, key=sizes.__getitem__)
        del results[largest]
        errors[largest] = {
            "code": "result_too_large",
            "message": f"the {largest} result (about {sizes.pop(largest):,} bytes) is too large to "
            f"send; a message holds at most {max_bytes:,} bytes",
            "field": largest,
        }

    def estimate() -> int:
        return sum(sizes.values()) + _estimated_bytes(record["request"]["numbers"]) + ENVELOPE_BYTES

    if estimate() > max_bytes:
        omit_numbers()
    while sizes and estimate() > max_bytes:
        drop_largest()
    while len(contract.encode(record).encode()) > max_bytes:
        if record["request"]["numbers"]:
            omit_numbers()
        elif sizes:
            drop_largest()
        else:
            break
    return record
