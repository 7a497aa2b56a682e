"""The message contract between frontend, worker and logger.

Request (request queue, frontend -> worker):
    {"v": 1, "id", "correlation_id", "reply_to", "submitted_at", "numbers": [...], "operations": [...]}

Result record (SNS topic -> log queue -> S3, worker -> logger): the request, then either
    "status": "done" with "results" {operation: value} and "errors" {operation: error}, or
    "status": "error" with "error" {code, message, field}, or
    "status": "cancelled" with "error" {"code": "cancelled", ...} (cancelled before it was computed);
    plus "timings" and "worker". A value is an integer, a float, a list of integers, or (histogram,
    box_plot) a small object of those: see qcompute.operations.

Cancel marker (S3 `cancels/<id>`, frontend -> worker): an object whose existence asks the worker to
skip the request; the logger deletes it once the cancelled record is written.

Reply (the request's reply queue, worker -> frontend): the result record without the numbers, which
the waiting frontend already has, plus the request's correlation id.

Request ids are UUIDv7: they sort by time, carry their submission time (which names the S3 log key,
so a redelivered message always lands on the same key) and end in a 32-bit signature that lets any
frontend process tell an id it issued from one it never saw, and for whom: on a stack with accounts,
requests and records carry the submitting account's name ("user"), which the signature covers too.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from qcompute.validation import IntegerLiteral, read_integer

VERSION = 1
REQUEST_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
LOG_PREFIX = "logs/"
# One empty object per request of an account, with the record's metadata: that account's history.
USER_PREFIX = "users/"
# An account's name: safe in an S3 key and an SSM parameter name as it is.
USER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
# Claim checks: what does not fit in a message waits here until the logger has written the record.
PAYLOAD_PREFIX = "payloads/"
# Cancel markers: one small object per request someone cancelled while it was queued.
CANCEL_PREFIX = "cancels/"
# The last hour minute by minute, one small object per logger process (qcompute.stats).
STATS_PREFIX = "stats/loggers/"
STATUSES = ("done", "error", "cancelled")
CANCELLED_ERROR = {"code": "cancelled", "message": "cancelled before it was computed", "field": None}


class MalformedMessage(ValueError):
    """A message that cannot be understood at all: a poison message, bound for the dead-letter queue."""


def allow_big_integers() -> None:
    """Let json read and write integers of any length (Python refuses beyond 4300 digits).

    Call once at start-up in processes that handle results. Untrusted input stays bounded: it is read
    with `validation.read_integer`, which checks length before converting.
    """
    sys.set_int_max_str_digits(0)


# --- ids and time ---------------------------------------------------------------------------------


def _signature(head: int, secret: bytes, user: str = "") -> int:
    digest = hmac.new(secret, head.to_bytes(12, "big") + user.encode(), "sha256").digest()
    return int.from_bytes(digest[:4], "big")


def new_request_id(secret: bytes, now: float | None = None, user: str = "") -> str:
    """A UUIDv7 whose last 32 random bits are an HMAC of the other 96 bits and the submitter's name."""
    millis = int((time.time() if now is None else now) * 1000)
    head = (
        (millis << 48)
        | (0x7 << 44)  # version 7
        | (secrets.randbits(12) << 32)
        | (0b10 << 30)  # RFC 9562 variant
        | secrets.randbits(30)
    )
    return str(uuid.UUID(int=(head << 32) | _signature(head, secret, user)))


def first_id_at(moment: float) -> str:
    """Lower than every id issued at `moment` (Unix seconds, to the nearest millisecond) or later, and
    higher than every id issued before: UUIDv7 ids sort by time, as text too. Rounded, not cut: a
    moment read back from an id (`request_time`) is that id's own millisecond, whatever float error."""
    return str(uuid.UUID(int=round(moment * 1000) << 80))


def is_request_id(text: str) -> bool:
    return bool(REQUEST_ID_PATTERN.fullmatch(text))


def is_signed_by(request_id: str, secret: bytes, user: str = "") -> bool:
    """Whether a frontend with this secret issued the id, for this account ("" when open)."""
    if not is_request_id(request_id):
        return False
    value = uuid.UUID(request_id).int
    return hmac.compare_digest(
        (value & 0xFFFFFFFF).to_bytes(4, "big"), _signature(value >> 32, secret, user).to_bytes(4, "big")
    )


def request_time(request_id: str) -> datetime:
    millis = uuid.UUID(request_id).int >> 80
    return datetime.fromtimestamp(millis / 1000, UTC)


def log_key(request_id: str) -> str:
    """Where the logger stores a request's record: the day comes from the id, never from a clock."""
    return f"{LOG_PREFIX}{request_time(request_id):%Y/%m/%d}/{request_id}.json"


def user_key(user: str, request_id: str) -> str:
    """The entry of a request in its account's history (an empty object beside the log)."""
    return f"{USER_PREFIX}{user}/{request_time(request_id):%Y/%m/%d}/{request_id}.json"


def payload_key(request_id: str, kind: str) -> str:
    """Where numbers ("request") or results ("result") too large for a message are stored."""
    return f"{PAYLOAD_PREFIX}{request_time(request_id):%Y/%m/%d}/{request_id}/{kind}.json"


def cancel_key(request_id: str) -> str:
    """The request's cancel marker. The id leads the key, so the markers sort by the requests'
    submission times (UUIDv7): a LIST from a moment on reads only those of newer requests."""
    return f"{CANCEL_PREFIX}{request_id}"


def stats_key(logger: str) -> str:
    """A logger's last-hour window (qcompute.stats), which the status page charts."""
    return f"{STATS_PREFIX}{logger}.json"


def utc_now() -> str:
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def millis_between(start: str, end: str) -> float:
    return round((parse_time(end) - parse_time(start)).total_seconds() * 1000, 2)


# --- encoding ---------------------------------------------------------------------------------------


def encode(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def fits(text: str, limit: int) -> bool:
    """Whether text fits in `limit` bytes as UTF-8. Text longer in characters cannot and is not
    encoded to find out: for a million numbers that would be one more 14 MB copy."""
    return len(text) <= limit and len(text.encode()) <= limit


def _decode_object(body: str | bytes, **options: Any) -> dict[str, Any]:
    try:
        document = json.loads(body, **options)
    except (ValueError, RecursionError) as error:
        raise MalformedMessage(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedMessage("not a JSON object")
    if document.get("v") != VERSION:
        raise MalformedMessage(f"unsupported contract version {document.get('v')!r}; expected {VERSION}")
    request_id = document.get("id")
    if not isinstance(request_id, str) or not is_request_id(request_id):
        raise MalformedMessage(f"missing or invalid request id {request_id!r}")
    return document


def _require_text(document: dict[str, Any], field: str, *, optional: bool = False) -> None:
    value = document.get(field)
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"missing or invalid {field!r}")


def _check_user(document: dict[str, Any]) -> None:
    """The account a request or record belongs to, if any: it becomes part of an S3 key."""
    user = document.get("user")
    if user is not None and not (isinstance(user, str) and USER_NAME.fullmatch(user)):
        raise MalformedMessage(f"invalid user {user!r}")


# --- requests ---------------------------------------------------------------------------------------


def request_message(
    request_id: str,
    numbers: list[int],
    operations: list[str],
    *,
    reply_to: str | None,
    correlation_id: str,
    submitted_at: str,
    user: str | None = None,
) -> dict[str, Any]:
    return {
        "v": VERSION,
        "id": request_id,
        "correlation_id": correlation_id,
        "reply_to": reply_to,
        "submitted_at": submitted_at,
        **({"user": user} if user else {}),
        "operations": operations,
        "count": len(numbers),
        "numbers": numbers,
    }


def with_numbers_stored(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its numbers replaced by the key they were stored under (a claim check)."""
    light = {key: value for key, value in message.items() if key != "numbers"}
    return {**light, "numbers_ref": payload_key(message["id"], "request")}


def decode_request(body: str) -> dict[str, Any]:
    """The request's envelope, checked; its numbers and operations are left to validation.

    Long integers stay text here, so a hostile message cannot make us convert a huge one.
    """
    document = _decode_object(body, parse_int=read_integer)
    _require_text(document, "correlation_id")
    _require_text(document, "submitted_at")
    _require_text(document, "reply_to", optional=True)
    _check_user(document)
    try:
        parse_time(document["submitted_at"])
    except ValueError:
        raise MalformedMessage(f"invalid submitted_at {document['submitted_at']!r}") from None
    reference = document.get("numbers_ref")
    # A request may only point at its own payload, never at another object of the bucket.
    if reference is not None and reference != payload_key(document["id"], "request"):
        raise MalformedMessage(f"numbers_ref {reference!r} is not this request's payload")
    return document


# --- results ----------------------------------------------------------------------------------------


def result_record(
    request: dict[str, Any],
    *,
    numbers: list[Any] | None,
    operations: list[str],
    results: dict[str, Any] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    error: dict[str, str] | None = None,
    received_at: str,
    computed_at: str,
    worker: str,
    attempt: int,
    cancelled: bool = False,
) -> dict[str, Any]:
    """The result of a request: `numbers` None leaves them in the request's stored payload."""
    submitted_at = request["submitted_at"]
    if numbers is None:
        echoed = {"numbers_ref": request["numbers_ref"]}
        count = request.get("count")
    else:
        echoed, count = {"numbers": numbers}, len(numbers)
    return {
        "v": VERSION,
        "id": request["id"],
        "correlation_id": request["correlation_id"],
        **({"user": request["user"]} if request.get("user") else {}),
        "status": "cancelled" if cancelled else "error" if error else "done",
        "request": {"operations": operations, "count": count, **echoed},
        "results": results or {},
        "errors": errors or {},
        "error": error,
        "timings": {
            "submitted_at": submitted_at,
            "received_at": received_at,
            "computed_at": computed_at,
            "queued_ms": millis_between(submitted_at, received_at),
            "compute_ms": millis_between(received_at, computed_at),
        },
        "worker": worker,
        "attempt": attempt,
    }


def with_results_stored(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its results replaced by the key they were stored under."""
    light = {key: value for key, value in record.items() if key != "results"}
    return {**light, "results_ref": payload_key(record["id"], "result")}


def reply_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the numbers: the waiting frontend process holds them already."""
    request = {
        key: value for key, value in record["request"].items() if key not in ("numbers", "numbers_ref")
    }
    return {**record, "request": request}


def decode_result(body: str | bytes, **options: Any) -> dict[str, Any]:
    """A result record or reply, checked enough to file it under its id."""
    document = _decode_object(body, **options)
    _require_text(document, "correlation_id")
    _check_user(document)
    if document.get("status") not in STATUSES:
        raise MalformedMessage(f"invalid status {document.get('status')!r}")
    timings = document.get("timings")
    if not isinstance(timings, dict) or not isinstance(timings.get("submitted_at"), str):
        raise MalformedMessage("missing timings")
    # Stored payloads are only ever this request's own: never another object of the bucket.
    request = document.get("request") if isinstance(document.get("request"), dict) else {}
    for reference, kind in ((document.get("results_ref"), "result"), (request.get("numbers_ref"), "request")):
        if reference is not None and reference != payload_key(document["id"], kind):
            raise MalformedMessage(f"{reference!r} is not this request's {kind} payload")
    return document


# --- writing JSON whose parts are already JSON text ----------------------------------------------------


class RawJSON(str):
    """JSON text to be written as it is: a stored payload spliced into a log record."""


def encode_raw(value: Any) -> str:
    """Like `encode`, but RawJSON and IntegerLiteral values are written verbatim, not quoted.

    The logger rebuilds records this way without ever converting a long integer or re-reading a
    payload of a million numbers.
    """
    if isinstance(value, RawJSON | IntegerLiteral):
        return str(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{encode_raw(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(encode_raw(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)
