"""The bad-input catalog: every case has its exact outcome, through the form, the API and raw messages
put straight on each queue. No consumer stops, nothing hangs, no stack trace reaches anyone.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from harness import client
from harness.fixtures import own_reply_queue, queue_url
from harness.services import SECRET_KEY
from harness.waiting import eventually
from qcompute import contract, dlq

pytestmark = pytest.mark.integration

# --- the form ---------------------------------------------------------------------------------------

FORM_CASES = [
    # (what the user typed, operations ticked, the field the error sits next to, the message shown)
    ("1 two 3", ["sum"], "numbers", "&#39;two&#39; (number 2) is not an integer"),
    ("", ["sum"], "numbers", "enter at least one integer"),
    (" \n\t , ", ["sum"], "numbers", "enter at least one integer"),
    ("1.5", ["sum"], "numbers", "&#39;1.5&#39; (number 1) is not an integer"),
    ("1e5", ["sum"], "numbers", "&#39;1e5&#39; (number 1) is not an integer"),
    ("١٢٣", ["sum"], "numbers", "(number 1) is not an integer"),
    ("1 2", [], "operations", "choose at least one operation"),
    ("1 2", ["sum", "cube"], "operations", "unknown operation &#39;cube&#39;"),
    (str(10**18 + 1), ["sum"], "numbers", "(number 1) is too large"),
    (str(-(10**18) - 1), ["sum"], "numbers", "(number 1) is too large"),
    (" ".join(["1"] * 10_001), ["sum"], "numbers", "10,001 numbers given; at most 10,000 are allowed"),
]


@pytest.mark.parametrize(("numbers", "operations", "field", "message"), FORM_CASES)
def test_bad_form_input_is_shown_next_to_the_field_with_what_was_typed(
    pipeline, numbers: str, operations: list[str], field: str, message: str
) -> None:
    session = requests.Session()
    response = client.submit_form(session, pipeline.url, numbers, operations)
    assert response.status_code == 400
    html = response.text
    assert re.search(rf'<p class="error" id="{field}-error" role="alert">[^<]*{re.escape(message)}', html), (
        html
    )
    assert f">{numbers}</textarea>" in html, "the input the user typed is kept"
    assert "Traceback" not in html


@pytest.mark.parametrize("payload", ["<script>alert(1)</script> {{7*7}}", "{{ config }} {% debug %} ${7*7}"])
def test_markup_and_template_syntax_in_input_are_rendered_inert(pipeline, payload: str) -> None:
    response = client.submit_form(requests.Session(), pipeline.url, payload, ["sum"])
    assert response.status_code == 400
    escaped = payload.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
    # Kept verbatim: escaped, and the template syntax not evaluated.
    assert f">{escaped}</textarea>" in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert SECRET_KEY not in response.text


def test_a_form_post_without_or_with_a_forged_csrf_token_is_refused(pipeline) -> None:
    session = requests.Session()
    client.csrf_token(session, pipeline.url)  # a session cookie, but no token in the post
    response = session.post(f"{pipeline.url}/", data={"numbers": "1 2", "operations": "sum"}, timeout=30)
    assert response.status_code == 400
    assert "the form expired or did not come from this site" in response.text
    assert ">1 2</textarea>" in response.text
    forged = client.submit_form(session, pipeline.url, "1 2", ["sum"], token="forged")
    assert forged.status_code == 400
    cross_site = requests.post(f"{pipeline.url}/", data={"numbers": "1 2", "operations": "sum"}, timeout=30)
    assert cross_site.status_code == 400


# --- the API ------------------------------------------------------------------------------------------

JSON = "application/json"
API_CASES = [
    # (body, content type, status, error code, field)
    ("{not json", JSON, 400, "invalid_json", "body"),
    ('{"numbers": [1, 2]', JSON, 400, "invalid_json", "body"),
    (b"\xff\xfe\x00", JSON, 400, "invalid_json", "body"),
    ("[" * 100_000, JSON, 400, "invalid_json", "body"),
    ("", JSON, 400, "invalid_json", "body"),
    ('{"numbers": [1]}', "text/plain", 415, "unsupported_media_type", "body"),
    ("numbers=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type", "body"),
    ('{"numbers": [1]}', None, 415, "unsupported_media_type", "body"),
    ("[1, 2]", JSON, 400, "invalid_body", "body"),
    ('"1 2 3"', JSON, 400, "invalid_body", "body"),
    ("{}", JSON, 400, "missing_field", "numbers"),
    ('{"numbers": [1], "op": ["sum"]}', JSON, 400, "unknown_field", "op"),
    ('{"numbers": null}', JSON, 400, "invalid_field", "numbers"),
    ('{"numbers": "1 2 3"}', JSON, 400, "invalid_field", "numbers"),
    ('{"numbers": {"a": 1}}', JSON, 400, "invalid_field", "numbers"),
    ('{"numbers": []}', JSON, 400, "empty", "numbers"),
    ('{"numbers": [1, 2.0]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [1e3]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": ["1e3"]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [NaN]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [Infinity]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": ["0x1F"]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": ["\\u0661\\u0662"]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [" 1"]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [""]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [true]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [null]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [[1]]}', JSON, 400, "invalid_number", "numbers"),
    ('{"numbers": [1000000000000000001]}', JSON, 400, "number_too_large", "numbers"),
    ('{"numbers": [-1000000000000000001]}', JSON, 400, "number_too_large", "numbers"),
    ('{"numbers": ["99999999999999999999999"]}', JSON, 400, "number_too_large", "numbers"),
    ('{"numbers": [' + "9" * 100_000 + "]}", JSON, 400, "number_too_large", "numbers"),
    ('{"numbers": ' + json.dumps(list(range(10_001))) + "}", JSON, 400, "too_many_numbers", "numbers"),
    ('{"numbers": [1], "operations": []}', JSON, 400, "no_operations", "operations"),
    ('{"numbers": [1], "operations": ["sum", "sum"]}', JSON, 400, "duplicate_operation", "operations"),
    ('{"numbers": [1], "operations": ["avg"]}', JSON, 400, "unknown_operation", "operations"),
    (
        '{"numbers": [1], "operations": ["<img src=x onerror=alert(1)>"]}',
        JSON,
        400,
        "unknown_operation",
        "operations",
    ),
    ('{"numbers": [1], "operations": "sum"}', JSON, 400, "invalid_field", "operations"),
    ('{"numbers": [1], "operations": [1]}', JSON, 400, "invalid_field", "operations"),
    ('{"numbers": [' + "1," * 600_000 + "1]}", JSON, 413, "body_too_large", "body"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code", "field"), API_CASES)
def test_bad_api_input_gets_a_clear_error(pipeline, body, content_type, status, code, field) -> None:
    started = time.monotonic()
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(f"{pipeline.url}/api/requests", data=body, headers=headers, timeout=30)
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["field"]) == (status, code, field), response.text
    assert error["message"]
    assert "Traceback" not in response.text
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ([10**18, -(10**18)], {"sum": 0}),
        (["+5", "007", "-0"], {"sum": 12}),
        (["123456789012345678"], {"sum": 123456789012345678}),
    ],
)
def test_integers_at_the_limits_are_accepted(pipeline, numbers: list, expected: dict) -> None:
    assert client.compute(pipeline.url, numbers, ["sum"])["results"] == expected


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("post", "/api/requests?wait=soon", 400, "invalid_wait"),
        ("post", "/api/requests?wait=31", 400, "invalid_wait"),
        ("put", "/api/requests", 405, "method_not_allowed"),
        ("get", "/api/requests/00000000-0000-7000-8000-000000000000", 404, "not_found"),
        ("get", "/api/nothing-here", 404, "not_found"),
    ],
)
def test_wrong_methods_paths_and_parameters(pipeline, method: str, path: str, status: int, code: str) -> None:
    response = getattr(requests, method)(f"{pipeline.url}{path}", json={"numbers": [1]}, timeout=30)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


# --- raw messages on the request queue (the worker never trusts a queue) ----------------------------


def _envelope(**changes) -> dict:
    document = contract.request_message(
        contract.new_request_id(SECRET_KEY.encode()),
        [1, 2, 3],
        ["sum"],
        reply_to=None,
        correlation_id="catalog",
        submitted_at=contract.utc_now(),
    )
    document.update(changes)
    return document


def _dead_letter_reason(stack, queue: str, body: str) -> str:
    """Wait for the message with this body in a dead-letter queue, remove it, return its reason."""
    url = queue_url(stack, queue)

    def found() -> dict | None:
        return next((m for m in dlq.peek(stack.clients, url, 50) if m["Body"] == body), None)

    message = eventually(found, timeout=60, what=f"the message in {queue}")
    stack.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return message["MessageAttributes"]["poison_reason"]["StringValue"]


POISON_REQUESTS = [
    # (body, the reason recorded with it in the dead-letter queue)
    ("plain text", "not JSON"),
    (" ", "not JSON"),  # SQS refuses an empty body; a lone space is as unreadable
    ("[1, 2, 3]", "not a JSON object"),
    ('{"numbers": [1, 2]}', "unsupported contract version None"),
    (json.dumps(_envelope(v=2)), "unsupported contract version 2"),
    (json.dumps(_envelope(id="not-a-uuid")), "invalid request id"),
    (json.dumps(_envelope(correlation_id=None)), "missing or invalid 'correlation_id'"),
    (json.dumps(_envelope(submitted_at="yesterday")), "invalid submitted_at"),
    (json.dumps(_envelope(reply_to=["x"])), "missing or invalid 'reply_to'"),
]


@pytest.mark.parametrize(("body", "reason"), POISON_REQUESTS)
def test_unreadable_requests_go_to_the_dead_letter_queue_with_the_reason(
    pipeline, body: str, reason: str
) -> None:
    stack = pipeline.stack
    stack.clients.sqs.send_message(QueueUrl=queue_url(stack, "requests_queue"), MessageBody=body)
    assert reason in _dead_letter_reason(stack, "requests_dlq", body)
    worker = next(p for p in pipeline.services.started if p.name == "worker")
    assert worker.process.poll() is None


ERROR_REQUESTS = [
    # (numbers, operations, the error code of the answer)
    ("1 2 3", ["sum"], "invalid_field"),
    ([1, 2.5], ["sum"], "invalid_number"),
    ([1, "two"], ["sum"], "invalid_number"),
    ([10**50], ["sum"], "number_too_large"),
    ([], ["sum"], "empty"),
    (list(range(10_001)), ["sum"], "too_many_numbers"),
    ([1], ["sum", "cube"], "unknown_operation"),
    ([1], [], "no_operations"),
    ([1], ["sum", "sum"], "duplicate_operation"),
]


@pytest.mark.parametrize(("numbers", "operations", "code"), ERROR_REQUESTS)
def test_bad_content_in_a_readable_request_gets_an_error_answer(pipeline, numbers, operations, code) -> None:
    stack = pipeline.stack
    replies = own_reply_queue(stack)
    request = _envelope(numbers=numbers, operations=operations, reply_to=replies)
    stack.clients.sqs.send_message(
        QueueUrl=queue_url(stack, "requests_queue"), MessageBody=json.dumps(request)
    )

    def answered() -> list:
        return stack.clients.sqs.receive_message(QueueUrl=replies, WaitTimeSeconds=2).get("Messages", [])

    (message,) = eventually(answered, timeout=60, what="the error answer")
    reply = json.loads(message["Body"])
    assert (reply["id"], reply["status"], reply["error"]["code"]) == (request["id"], "error", code)
    record = eventually(
        lambda: client.result(pipeline.url, request["id"]).json().get("error"), what="the log"
    )
    assert record["code"] == code


def test_extra_fields_and_a_missing_reply_queue_are_tolerated(pipeline) -> None:
    stack = pipeline.stack
    request = _envelope(numbers=[20, 22], operations=["sum"], priority="high", reply_to=None)
    stack.clients.sqs.send_message(
        QueueUrl=queue_url(stack, "requests_queue"), MessageBody=json.dumps(request)
    )
    answer = client.until_done(pipeline.url, request["id"])
    assert answer["results"] == {"sum": 42}


# --- raw messages on the log queue (the logger never trusts a queue either) -----------------------------

POISON_RECORDS = [
    ("not a record", "not JSON"),
    ('{"v": 1, "id": "nope", "status": "done"}', "invalid request id"),
    (
        json.dumps({"v": 7, "id": contract.new_request_id(b"x"), "status": "done"}),
        "unsupported contract version 7",
    ),
    (json.dumps({"v": 1, "id": contract.new_request_id(b"x"), "correlation_id": "c"}), "invalid status None"),
    (
        json.dumps({"v": 1, "id": contract.new_request_id(b"x"), "correlation_id": "c", "status": "done"}),
        "missing timings",
    ),
]


@pytest.mark.parametrize(("body", "reason"), POISON_RECORDS)
def test_unreadable_records_go_to_the_log_dead_letter_queue(pipeline, body: str, reason: str) -> None:
    stack = pipeline.stack
    stack.clients.sns.publish(TopicArn=stack.clients.names.results_topic_arn, Message=body)
    assert reason in _dead_letter_reason(stack, "log_dlq", body)
    logger = next(p for p in pipeline.services.started if p.name == "logger")
    assert logger.process.poll() is None
