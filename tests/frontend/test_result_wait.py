"""GET /api/requests/<id>?wait=S answers as soon as the result is there, whichever frontend process
serves it, or after S seconds with 202 pending."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import client

pytestmark = pytest.mark.integration


def test_a_waiting_get_answers_when_the_result_arrives_on_any_frontend(stack, run) -> None:
    run.logger()
    # One process each: the submitting frontend gets the reply on its own queue, the other finds the
    # result only in the S3 log.
    mine, other = (run.frontend(name, WEB_WORKERS=1) for name in ("frontend-a", "frontend-b"))
    request_id = client.submit(mine.url, [6, 7], ["product"], wait=0).json()["id"]

    started = time.monotonic()
    pending = client.result(other.url, request_id, wait=2)
    assert pending.status_code == 202
    assert pending.json() == {"id": request_id, "status": "pending"}
    assert 2 <= time.monotonic() - started < 10, "waits as long as asked while pending"

    with ThreadPoolExecutor(max_workers=2) as pool:
        waits = [pool.submit(client.result, front.url, request_id, wait=30) for front in (mine, other)]
        time.sleep(1)
        run.worker()
        answers = [wait.result() for wait in waits]
        # Both answered long before the 30 s were up: the worker's start is most of this.
        done_after = time.monotonic() - started
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["results"]) == ("done", {"product": 42})
    assert done_after < 2 + 25

    assert client.result(other.url, request_id, wait=31).json()["error"]["code"] == "invalid_wait"
    assert client.result(other.url, request_id, wait="soon").status_code == 400
