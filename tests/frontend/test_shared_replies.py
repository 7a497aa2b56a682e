"""A result one gunicorn process has answered is found at once by its siblings, before the log has it.

No logger runs here, so the S3 log never has the record: a sibling can only know the result through
the replies the container's processes share (frontend/shared_replies.py). Each step stops one process
(SIGSTOP) so the other is sure to serve the next call.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests

from frontend.shared_replies import KEEP_SECONDS, MAX_ROWS, SETUP_RETRY_SECONDS, SharedReplies
from harness import client
from harness.waiting import eventually
from qcompute import contract
from qcompute.provision import reply_queues

pytestmark = pytest.mark.integration


@contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """The process neither accepts nor answers meanwhile (kept short: gunicorn's timeout is 30 s)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _pids(stack) -> list[int]:
    queues = eventually(
        lambda: len(found := reply_queues(stack.clients.sqs, stack.clients.names)) == 2 and found,
        what="two reply queues",
    )
    return [int(url.rsplit("/", 1)[-1].split("-")[-2]) for url in queues]  # names carry the pid


def _replied_after_wait(front, request_id: str) -> bool:
    """The late reply reached the process that sent the request, which has shared it."""
    return any(e.get("request_id") == request_id for e in front.events("reply_after_wait"))


def test_a_result_answered_by_one_process_is_found_by_its_sibling_without_the_log(
    stack, run, backend
) -> None:
    run.worker()
    front = run.frontend(WEB_WORKERS=2)
    first, second = _pids(stack)

    with _stopped(first):
        answered = client.submit(front.url, [4, 5, 6], ["sum", "max"])  # served by `second`
    request_id = answered.json()["id"]
    if backend.strict and answered.status_code == 202:
        # A lost ReceiveMessage answer (1% of calls fail there) hides the reply for the reply queue's
        # 30 s visibility timeout, as on AWS: longer than the POST's wait. Its sender still shares it.
        eventually(lambda: _replied_after_wait(front, request_id), what="the late reply, shared")
    else:
        assert answered.status_code == 200, answered.text
    with _stopped(second):
        found = client.result(front.url, request_id)  # served by `first`, which never saw the reply
        page = requests.get(f"{front.url}/requests/{request_id}", timeout=30)
    assert found.status_code == 200, found.text
    assert found.json()["status"] == "done"
    assert found.json()["results"] == {"sum": 15, "max": 6}
    # The page has the results; the input only the log record holds, and it says so meanwhile.
    assert page.status_code == 200
    assert re.search(r'id="result-sum">.*?<td class="value">15</td>', page.text, re.S)
    assert "the result log does not hold them yet" in page.text

    # Asked with its numbers and a wait, the answer waits for the log record that holds them.
    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(client.result, front.url, request_id, numbers=1, wait=30)
        time.sleep(1)
        assert not asked.done(), "still waiting for the numbers"
        run.logger()
        with_numbers = asked.result()
    assert with_numbers.status_code == 200
    assert with_numbers.json()["numbers"] == [4, 5, 6]


def test_a_reply_that_came_after_the_wait_is_found_by_the_sibling_too(stack, run) -> None:
    front = run.frontend(WEB_WORKERS=2)
    first, second = _pids(stack)
    with _stopped(first):
        pending = client.submit(front.url, [7, 8], ["product"], wait=0)  # no worker yet
    assert pending.status_code == 202
    request_id = pending.json()["id"]

    run.worker()
    eventually(lambda: _replied_after_wait(front, request_id), what="the reply reaching its sender")
    with _stopped(second):
        found = client.result(front.url, request_id)
    assert found.status_code == 200, found.text
    assert found.json()["results"] == {"product": 56}


def test_the_table_keeps_only_the_latest_small_replies(tmp_path) -> None:
    now = [1_000.0]
    shared = SharedReplies(tmp_path, clock=lambda: now[0])
    ids = [contract.new_request_id(b"secret") for _ in range(MAX_ROWS + 7)]
    record = {
        "v": contract.VERSION,
        "correlation_id": "c",
        "status": "done",
        "results": {"sum": 1},
        "timings": {"submitted_at": "2026-12-05T00:00:00Z"},
    }
    for request_id in ids[: MAX_ROWS + 5]:
        shared.put({**record, "id": request_id})
    assert shared.get(ids[0]) is None, "the oldest beyond MAX_ROWS are gone"
    assert shared.get(ids[4]) is None
    assert shared.get(ids[5])["results"] == {"sum": 1}
    assert shared.get(ids[MAX_ROWS + 4])["results"] == {"sum": 1}

    big, huge = ids[-2:]
    shared.put({**record, "id": big, "results": {"sum": 10**1_000 + 1}})  # 1,001 digits, exact
    shared.put({**record, "id": huge, "results": {"values": list(range(10_000))}})
    assert shared.get(big)["results"] == {"sum": 10**1_000 + 1}
    assert shared.get(huge) is None, "over MAX_REPLY_BYTES: left to the log"

    now[0] += KEEP_SECONDS + 1
    assert shared.get(big) is None, "older than KEEP_SECONDS"


def test_a_table_locked_at_start_is_set_up_later_and_never_fails_a_reply(tmp_path) -> None:
    """Processes start together: one may find the file locked while another sets it up. The table is
    tried again (at start for SETUP_SECONDS, then at most once a second); meanwhile nothing fails."""
    blocker = sqlite3.connect(tmp_path / "qcompute-replies.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    shared = SharedReplies(tmp_path)
    assert not shared.ready
    reply = {
        "v": contract.VERSION,
        "id": contract.new_request_id(b"secret"),
        "correlation_id": "c",
        "status": "done",
        "results": {"sum": 3},
        "timings": {"submitted_at": "2026-12-05T00:00:00Z"},
    }
    shared.put(reply)  # neither raises nor waits long
    assert shared.get(reply["id"]) is None
    blocker.execute("ROLLBACK")
    time.sleep(SETUP_RETRY_SECONDS + 0.1)
    shared.put(reply)
    assert shared.ready
    assert shared.get(reply["id"])["results"] == {"sum": 3}
