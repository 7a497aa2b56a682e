"""Worker hosts, locally: compose projects of their own that run only workers and share the local stack's
request queue, as the fleet's hosts share the web host's on AWS (scripts/local worker-host,
compose.worker-host.local.yaml).

Requests arrive steadily while the web host's own worker is stopped: one host takes it, a
second joins in the middle, the first leaves in the middle with a warm stop, and the web host's worker
comes back for whatever is left. Every request is
computed once, answered and logged once, and nothing reaches a dead-letter queue.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from harness import client
from harness.services import ROOT
from harness.waiting import eventually

pytestmark = pytest.mark.compose

RATE = 22  # requests a second, for as long as the hosts come and go
MAX_REQUESTS = 4_000
NUMBERS = 1_000
OPERATIONS = ["sum", "mean", "median", "histogram"]
HOST_FILE = "compose.worker-host.local.yaml"


def _host_env(composed) -> dict[str, str]:
    """The test stack's compose environment, its network named (scripts/local's default is qcompute's)."""
    return {**composed.env, "STACK_NETWORK": f"{composed.project}_default"}


def _host(composed, name: str, *command: str) -> subprocess.CompletedProcess:
    """scripts/local worker-host NAME ..., joined to the test stack's network."""
    done = subprocess.run(
        [str(ROOT / "scripts/local"), "worker-host", name, *command],
        cwd=ROOT,
        env=_host_env(composed),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"worker-host {name} {' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done


def _events(logs: str, event: str) -> list[dict[str, Any]]:
    found = []
    for line in logs.splitlines():
        try:
            document = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if document.get("event") == event:
            found.append(document)
    return found


def _computed(logs: str, ids: set[str]) -> Counter[str]:
    return Counter(e["request_id"] for e in _events(logs, "computed") if e.get("request_id") in ids)


def _submit_paced(url: str, submitted: list[str], answered: set[str], enough: threading.Event) -> list[str]:
    """Requests at about RATE a second until `enough` is set (at most MAX_REQUESTS), each id appended
    to `submitted` as it is accepted, and to `answered` if its reply came within the POST itself
    (wait=0 still takes a reply that is already there)."""
    began = time.monotonic()
    for index in range(MAX_REQUESTS):
        if enough.is_set():
            break
        time.sleep(max(0.0, began + index / RATE - time.monotonic()))
        response = client.submit(url, list(range(index, index + NUMBERS)), OPERATIONS, wait=0)
        assert response.status_code in (200, 202), response.text
        submitted.append(response.json()["id"])
        if response.status_code == 200:
            answered.add(response.json()["id"])
    return list(submitted)


def _depth(sqs: Any, name: str) -> int:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return sum(
        int(attributes[key])
        for key in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    )


def test_worker_hosts_join_and_leave_a_burst_and_nothing_is_lost_or_doubled(composed) -> None:
    # Whatever ran before (test_compose.py's last test stops the whole stack), it is up and healthy.
    composed.compose("up", "--detach", "--wait", "--no-build", timeout=600)
    sqs = composed.aws("sqs")
    requests_queue = "local-requests"
    composed.compose("stop", "worker", timeout=300)  # the burst waits for the hosts
    # The hosts' projects, to read their logs and stop them as `scripts/local worker-host` runs them.
    hosts = {
        name: replace(
            composed,
            project=f"qcompute-host-{name}",
            files=["--env-file", "compose.local.env", "-f", "compose.yaml", "-f", HOST_FILE],
            env=_host_env(composed),
        )
        for name in ("t1", "t2")
    }
    try:
        _host(composed, "t1", "up", "1")
        # The burst arrives over about 40 s, so there is work while hosts come and go.
        submitted: list[str] = []
        answered: set[str] = set()
        enough = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as feeder:
            feeding = feeder.submit(_submit_paced, composed.url, submitted, answered, enough)

            def host_computed(name: str) -> Counter[str]:
                logs = hosts[name].compose("logs", "--no-color", "--no-log-prefix", "worker").stdout
                return _computed(logs, set(submitted))

            eventually(lambda: len(submitted) >= 200 or feeding.done(), timeout=120, what="200 submitted")
            assert not feeding.done(), feeding.exception()
            _host(composed, "t2", "up", "1")
            eventually(lambda: sum(host_computed("t2").values()) >= 20, timeout=120, what="host t2 at work")

            # t1 leaves in the middle of the burst: a warm stop (SIGTERM, the batch in hand finishes).
            assert not feeding.done(), feeding.exception()
            assert sum(host_computed("t1").values()) > 0
            hosts["t1"].compose("stop", timeout=300)
            after_t1 = len(submitted) + 100
            eventually(lambda: len(submitted) >= after_t1 or feeding.done(), timeout=120, what="more")
            enough.set()
            ids = feeding.result()
        wanted = set(ids)
        (t1,) = hosts["t1"].containers("worker")
        assert (t1["State"]["Status"], t1["State"]["ExitCode"]) == ("exited", 0)
        t1_logs = hosts["t1"].compose("logs", "--no-color", "--no-log-prefix", "worker").stdout
        assert _events(t1_logs, "consumer_stopped"), "a warm stop"
        assert not _events(t1_logs, "forced_stop")
        by_t1 = _computed(t1_logs, wanted)
        _host(composed, "t1", "down")

        composed.compose("start", "worker", timeout=300)  # the web host's own worker, for the rest
        eventually(lambda: _depth(sqs, requests_queue) == 0, timeout=300, what="the queue drained")
        by_t2 = _computed(
            hosts["t2"].compose("logs", "--no-color", "--no-log-prefix", "worker").stdout, wanted
        )
        _host(composed, "t2", "down")
        web_logs = composed.compose("logs", "--no-color", "--no-log-prefix", "worker").stdout
        by_web = _computed(web_logs, wanted)

        computed = by_t1 + by_t2 + by_web
        assert set(computed) == wanted, f"{len(wanted - set(computed))} never computed"
        assert max(computed.values()) == 1, f"computed twice: {[i for i, n in computed.items() if n > 1]}"
        assert by_t1, "host t1 took part"
        assert by_t2, "host t2 took part"
        print(f"computed: host t1 {len(by_t1)}, host t2 {len(by_t2)}, web host {len(by_web)}")

        def logged() -> Counter[str]:
            logs = composed.compose("logs", "--no-color", "--no-log-prefix", "logger").stdout
            return Counter(e["request_id"] for e in _events(logs, "logged") if e.get("request_id") in wanted)

        records = eventually(lambda: len(found := logged()) == len(ids) and found, timeout=300, what="logged")
        assert max(records.values()) == 1, "logged once each"
        # Answered once: each reply reached the frontend process that sent the request, once (within
        # the POST, or after it).
        front_logs = composed.compose("logs", "--no-color", "--no-log-prefix", "frontend").stdout
        replies = Counter(e.get("request_id") for e in _events(front_logs, "reply_after_wait"))
        assert all(replies[request_id] == (request_id not in answered) for request_id in wanted)
        assert not _events(front_logs, "reply_duplicate_ignored")
        for index in (0, len(ids) // 2, len(ids) - 1):  # and the API has each result
            done = client.until_done(composed.url, ids[index], timeout=60)
            assert done["results"]["sum"] == sum(range(index, index + NUMBERS))
        for dead_letters in ("local-requests-dlq", "local-logs-dlq"):
            assert _depth(sqs, dead_letters) == 0, dead_letters
    finally:
        for host in hosts.values():
            host.compose("down", "--remove-orphans", check=False, timeout=300)
        composed.compose("start", "worker", check=False, timeout=300)
