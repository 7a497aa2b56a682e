"""The JSON API. The web pages call the same `Submissions` methods.

It accepts only `application/json` bodies and reads no cookies (with accounts, only a bearer token
says who is asking), so a cross-site page cannot submit to it without a CORS preflight, which it never
grants, nor act as someone signed in: CSRF protection is therefore not needed here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from frontend import auth
from frontend.status import stack_status
from qcompute.operations import OPERATIONS
from qcompute.validation import InputError, check_fields, loads_untrusted, parse_numbers, parse_operations

blueprint = Blueprint("api", __name__, url_prefix="/api")

# A client may ask to wait less (or not at all) than the configured reply wait, never longer.
MAX_WAIT_SECONDS = 30.0
# Each waiting GET holds one of the process's gunicorn threads (16 by default): at most half of them
# wait at once, so waiting readers never starve submissions; the others answer at once, and their
# clients ask again after Retry-After.
WAITING_GETS_AT_ONCE = 8
_waiting_gets = threading.BoundedSemaphore(WAITING_GETS_AT_ONCE)


@contextmanager
def waiting_slot(wait: float) -> Iterator[float]:
    """The wait a GET may have: as asked while a waiting slot is free, else none (answer at once)."""
    waiting = wait > 0 and _waiting_gets.acquire(blocking=False)
    try:
        yield wait if waiting else 0
    finally:
        if waiting:
            _waiting_gets.release()


def _submissions() -> Any:
    return current_app.extensions["submissions"]


def _bad(error: InputError, status: int = 400) -> tuple[Any, int]:
    return jsonify(error=error.as_dict()), status


def _wait_seconds(default: float) -> float:
    raw = request.args.get("wait")
    if raw is None:
        return default
    try:
        wait = float(raw)
    except ValueError:
        raise InputError("invalid_wait", "wait must be a number of seconds", "wait") from None
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise InputError("invalid_wait", f"wait must be between 0 and {MAX_WAIT_SECONDS:g} seconds", "wait")
    return wait


def _integers_as_text() -> bool:
    """?integers=string: every integer of the results (and numbers) as a decimal string."""
    raw = request.args.get("integers", "number")
    if raw not in ("number", "string"):
        raise InputError("invalid_integers", "integers must be 'number' or 'string'", "integers")
    return raw == "string"


@blueprint.post("/requests")
def create_request() -> Any:
    settings = current_app.config["SETTINGS"]
    if request.mimetype != "application/json":
        return _bad(
            InputError(
                "unsupported_media_type", "send the request as Content-Type: application/json", "body"
            ),
            415,
        )
    try:
        wait = _wait_seconds(settings.reply_wait_seconds)
        as_text = _integers_as_text()
        try:
            # Long integer literals stay text until their length is checked (see read_integer).
            document = loads_untrusted(request.get_data(cache=False))
        except (ValueError, RecursionError) as error:
            raise InputError("invalid_json", f"the body is not valid JSON: {error}", "body") from None
        check_fields(document, allowed=("numbers", "operations"), required=("numbers",))
        numbers = parse_numbers(document["numbers"], settings.limits)
        operations = parse_operations(document.get("operations"))
        waiter = auth.submit(numbers, operations)
    except InputError as error:
        return _bad(error)
    outcome = _submissions().wait(waiter, wait)
    if outcome is not None:
        return jsonify(outcome.as_api(integers_as_text=as_text)), 200
    location = url_for("api.get_request", request_id=waiter.request_id)
    return jsonify(id=waiter.request_id, status="pending"), 202, {"Location": location, "Retry-After": "1"}


@blueprint.get("/requests/<request_id>")
def get_request(request_id: str) -> Any:
    settings = current_app.config["SETTINGS"]
    # ?numbers=1 adds the input (read from the log), which a large request makes heavy.
    with_numbers = request.args.get("numbers") == "1"
    try:
        # No wait unless asked for: a GET answers at once by default, as it always has.
        wait = _wait_seconds(0)
        as_text = _integers_as_text()
    except InputError as error:
        return _bad(error)
    with waiting_slot(wait) as granted:
        lookup = _submissions().find(request_id, auth.viewer(), with_numbers=with_numbers, wait=granted)
    if lookup.outcome is not None:
        return jsonify(lookup.outcome.as_api(with_numbers=with_numbers, integers_as_text=as_text)), 200
    if lookup.status == "pending":
        return jsonify(id=request_id, status="pending"), 202, {"Retry-After": "1"}
    if lookup.status == "expired":
        message = (
            f"no result within {settings.pending_timeout_seconds} s of submission; the request may have "
            "failed and be held in the dead-letter queue"
        )
        return jsonify(id=request_id, status="expired", error={"code": "expired", "message": message}), 410
    return _not_found(request_id)


@blueprint.delete("/requests/<request_id>")
def cancel_request(request_id: str) -> Any:
    """Cancel a request still queued: 202 "cancelling" (the result then reads "cancelled", unless a
    worker had already begun it), 200 if it already is cancelled, 409 once it is finished."""
    status = _submissions().cancel(request_id, auth.viewer())
    if status == "cancelling":
        location = url_for("api.get_request", request_id=request_id)
        return jsonify(id=request_id, status="cancelling"), 202, {"Location": location}
    if status == "cancelled":
        return jsonify(id=request_id, status="cancelled"), 200
    if status in ("done", "error"):
        message = f"request {request_id!r} has finished ({status}); there is nothing left to cancel"
        return jsonify(error={"code": "already_done", "message": message, "field": None}), 409
    if status == "expired":
        message = "no result within the pending timeout; the request may be held in the dead-letter queue"
        return jsonify(id=request_id, status="expired", error={"code": "expired", "message": message}), 410
    return _not_found(request_id)


def _not_found(request_id: str) -> tuple[Any, int]:
    return jsonify(error={"code": "not_found", "message": f"no request with id {request_id!r}"}), 404


@blueprint.get("/operations")
def list_operations() -> Any:
    return jsonify(operations=[{"name": op.name, "label": op.label} for op in OPERATIONS.values()])


@blueprint.get("/status")
def status() -> Any:
    return jsonify(stack_status(_submissions()))


@blueprint.get("/history")
def history() -> Any:
    settings = current_app.config["SETTINGS"]
    entries, next_cursor = _submissions().history(
        request.args.get("before"), settings.history_page_size, auth.viewer()
    )
    return jsonify(entries=entries, next=next_cursor)
