"""DELETE /api/requests/<id> (and the pending page's Cancel button) cancels a request still queued:
the worker skips it, the logger logs it "cancelled", and its result reads so."""

from __future__ import annotations

import re

import pytest
import requests

from harness import client
from harness.fixtures import log_keys, read_log
from harness.waiting import eventually
from qcompute import contract

pytestmark = pytest.mark.integration


def test_a_queued_request_cancelled_is_skipped_logged_and_reads_cancelled(stack, run) -> None:
    run.logger()
    mine, other = (run.frontend(name, WEB_WORKERS=1, REPLY_WAIT_SECONDS=1) for name in ("front-a", "front-b"))
    request_id = client.submit(mine.url, [6, 7], ["product"], wait=0).json()["id"]

    # Any process may cancel: the marker is in S3, not in the process that took the request.
    cancelling = client.cancel(other.url, request_id)
    assert cancelling.status_code == 202, cancelling.text
    assert cancelling.json() == {"id": request_id, "status": "cancelling"}
    assert client.cancel(mine.url, request_id).status_code == 202, "asking twice is harmless"

    # The page's Cancel button: a form with its CSRF token.
    session = requests.Session()
    form = client.submit_form(session, mine.url, "2 3 4", ["sum"])
    assert form.status_code == 303
    page = session.get(mine.url + form.headers["Location"], timeout=30)
    assert page.status_code == 202
    button = re.search(
        r'<form method="post" action="([^"]+)" id="cancel">.*?value="([^"]+)"', page.text, re.S
    )
    assert button, "the pending page has a Cancel button"
    forged = session.post(mine.url + button.group(1), data={}, timeout=30, allow_redirects=False)
    assert forged.status_code == 400, "not without the form's CSRF token"
    pressed = session.post(
        mine.url + button.group(1), data={"csrf_token": button.group(2)}, timeout=30, allow_redirects=False
    )
    assert (pressed.status_code, pressed.headers["Location"]) == (303, form.headers["Location"])
    page_id = form.headers["Location"].rsplit("/", 1)[-1]

    worker = run.worker()
    answer = client.result(mine.url, request_id, wait=30)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert (document["status"], document["error"]["code"]) == ("cancelled", "cancelled")
    assert "results" not in document
    assert client.until_done(other.url, request_id)["status"] == "cancelled"

    # One record each, as every request has; the worker computed neither; the markers are cleaned up.
    for cancelled_id, numbers in ((request_id, [6, 7]), (page_id, [2, 3, 4])):
        record = eventually(lambda i=cancelled_id: read_log(stack, i), what=f"the log of {cancelled_id}")
        assert (record["status"], record["results"], record["request"]["numbers"]) == (
            "cancelled",
            {},
            numbers,
        )
    assert not worker.events("computed")
    assert {event["request_id"] for event in worker.events("cancelled")} == {request_id, page_id}
    eventually(lambda: not log_keys(stack, contract.CANCEL_PREFIX), what="the cancel markers deleted")
    html = client.result_page(session, mine.url, form)
    assert "cancelled before it was computed" in html

    again = client.cancel(mine.url, request_id)
    assert (again.status_code, again.json()) == (200, {"id": request_id, "status": "cancelled"})

    finished = client.compute(mine.url, [1, 2], ["sum"])
    # (The process that got the reply knows at once; any other once the log is written.)
    late = client.cancel(mine.url, finished["id"])
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "already_done"
    assert client.result(mine.url, finished["id"]).json()["status"] == "done"

    # An id this stack never issued (or another account's): exactly what an unknown id gets.
    stranger = contract.new_request_id(b"another stack's secret")
    unknown = client.cancel(mine.url, stranger)
    assert (unknown.status_code, unknown.json()) == (404, client.result(mine.url, stranger).json())
    assert client.cancel(mine.url, "not-an-id").status_code == 404
