"""Large requests take turns for memory: one holding a slot makes another wait, then be refused with
503 and Retry-After; small requests never wait. (The containers under their memory limits: tests/compose.)"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
import requests

from harness import client

pytestmark = pytest.mark.integration

LARGE = list(range(10**12, 10**12 + 150_000))  # 2 MB of JSON: above the 1 MiB line


def _hold_the_slot(front) -> object:
    """Take the container's one large-request slot, as another process's large request would."""
    handle = (Path(front.env["WORKER_TMP_DIR"]) / "qcompute-large-0.lock").open("a+b")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def test_a_large_request_waits_for_its_turn_then_is_refused_and_small_ones_never_wait(stack, run) -> None:
    run.worker()
    run.logger()
    front = run.frontend(WEB_WORKERS=2, LARGE_REQUEST_WAIT_SECONDS=1)
    held = _hold_the_slot(front)
    try:
        refused = client.submit(front.url, LARGE, ["sum", "sorted"])
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"] == {
            "code": "busy",
            "message": "the service is busy with other large requests; please try again in a few seconds",
            "field": None,
        }
        assert client.compute(front.url, [1, 2], ["sum"])["results"] == {"sum": 3}, "small ones pass"
    finally:
        held.close()
    done = client.compute(front.url, LARGE, ["sum", "sorted"])
    assert done["results"]["sum"] == sum(LARGE)
    assert done["results"]["sorted"] == LARGE

    # Reading a large result back (its log object is over 1 MiB) takes a turn too.
    other = run.frontend("frontend-2", WEB_WORKERS=1, LARGE_REQUEST_WAIT_SECONDS=1)
    held = _hold_the_slot(other)
    try:
        assert client.result(other.url, done["id"]).status_code == 503
    finally:
        held.close()
    assert client.until_done(other.url, done["id"])["results"]["sum"] == sum(LARGE)
    assert requests.get(f"{front.url}/readyz", timeout=30).status_code == 200
