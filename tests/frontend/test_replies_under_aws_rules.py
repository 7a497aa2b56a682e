"""The reply channel under AWS's own rules, through the strict layer: throttled tagging, queues that
vanish or are not usable yet, SQS outages, stalled replies, and a SIGTERM while requests wait."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
import requests

from frontend.replies import HEARTBEAT_TAG
from harness import client
from harness.fixtures import clients_via
from harness.waiting import eventually
from qcompute.deploy import alerts
from qcompute.logs import REPLIES_STALLED
from qcompute.provision import reply_queues

pytestmark = pytest.mark.integration

TAG_APIS = ("sqs:TagQueue", "sqs:ListQueueTags", "sqs:UntagQueue")


def _tag_calls(strict) -> int:
    calls = strict.stats()["calls"]
    return sum(calls.get(api, 0) for api in TAG_APIS)


def test_replies_arrive_while_tagging_is_throttled(stack, run, strict) -> None:
    # Every tag call is throttled (one allowed per 100 s): heartbeats and sweeps keep failing.
    strict.configure(tag_calls_per_second=0.01, new_queue_settle_seconds=0)  # settling: its own test
    run.worker()
    front = run.frontend(
        WEB_WORKERS=1, AWS_ENDPOINT_URL=strict.endpoint, REPLY_QUEUE_HEARTBEAT_SECONDS=5, REPLY_POLL_SECONDS=2
    )

    def throttled() -> list[dict]:
        return [f for f in strict.faults() if f["api"] in TAG_APIS and f["fault"] == "limit"]

    eventually(lambda: len(throttled()) >= 6, timeout=120, what="tagging throttled for a while")
    for n in range(5):
        response = client.submit(front.url, [n, 1], ["sum"], wait=15)
        assert response.status_code == 200, response.text
        assert response.json()["results"] == {"sum": n + 1}
    assert requests.get(f"{front.url}/readyz", timeout=30).status_code == 200


def test_status_viewers_do_not_add_tag_calls(stack, run, strict) -> None:
    """However many people watch the status page, a process reads the reply queues' tags at most
    every 30 s (and the rest of the status every few seconds)."""
    strict.configure(new_queue_settle_seconds=0)  # that rule has its own test
    front = run.frontend(WEB_WORKERS=2, AWS_ENDPOINT_URL=strict.endpoint)
    eventually(lambda: len(reply_queues(stack.clients.sqs, stack.clients.names)) == 2, what="2 reply queues")
    window = 15.0

    def tag_calls_during(viewers: int) -> int:
        before = _tag_calls(strict)
        stop = time.monotonic() + window

        def watch() -> None:
            with requests.Session() as session:
                while time.monotonic() < stop:
                    assert session.get(f"{front.url}/api/status", timeout=30).status_code == 200
                    time.sleep(0.5)

        threads = [threading.Thread(target=watch) for _ in range(viewers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(max(0.0, stop - time.monotonic()))
        return _tag_calls(strict) - before

    alone, watched = tag_calls_during(0), tag_calls_during(10)
    print(f"tag calls in {window:.0f} s: {alone} with no viewer, {watched} with 10 viewers")
    # Two processes, each: its own heartbeat (1 a minute) and two reply queues' tags per 30 s.
    assert watched <= 2 * (1 + 2 * (window // 30 + 1)), (alone, watched)


def test_a_reply_queue_deleted_but_still_listed_does_not_break_the_status_page(stack, run, strict) -> None:
    names = stack.clients.names
    strict.configure(new_queue_settle_seconds=0)  # that rule has its own test
    sqs = clients_via(stack, strict.endpoint).sqs
    # A process's queue, deleted as it exits: for a while AWS still lists it and may answer for it.
    gone = sqs.create_queue(
        QueueName=f"{names.reply_queue_prefix}gone-1-abcd",
        tags={**names.tags, HEARTBEAT_TAG: str(int(time.time()))},
    )["QueueUrl"]
    sqs.delete_queue(QueueUrl=gone)
    front = run.frontend(WEB_WORKERS=1, AWS_ENDPOINT_URL=strict.endpoint)
    response = requests.get(f"{front.url}/api/status", timeout=30)
    assert response.status_code == 200, response.text
    listed = [queue["name"] for queue in response.json()["reply_queues"]]
    assert len(listed) == 1
    assert "gone-1-abcd" not in listed[0]
    assert any(f["fault"] == "stale" for f in strict.faults()), "it was listed, with its tags"


def test_a_queue_usable_only_seconds_after_its_creation_is_waited_for(stack, run, strict) -> None:
    strict.configure(new_queue_settle_seconds=3)
    run.worker(AWS_ENDPOINT_URL=strict.endpoint)
    front = run.frontend(WEB_WORKERS=1, AWS_ENDPOINT_URL=strict.endpoint)
    assert client.submit(front.url, [2, 2], ["sum"], wait=15).json()["results"] == {"sum": 4}
    assert len(front.events("reply_queue_created")) == 1, "the new queue was waited for, not replaced"
    assert front.events("reply_queue_missing") == []


def test_a_sweep_after_an_sqs_outage_spares_queues_that_could_not_beat(stack, run, strict) -> None:
    names, sqs = stack.clients.names, stack.clients.sqs
    strict.configure(new_queue_settle_seconds=0)  # that rule has its own test
    front = run.frontend(
        WEB_WORKERS=1,
        AWS_ENDPOINT_URL=strict.endpoint,
        REPLY_QUEUE_HEARTBEAT_SECONDS=5,
        REPLY_QUEUE_IDLE_SECONDS=20,
        REPLY_POLL_SECONDS=1,
    )
    front.wait_for_event("reply_queue_created")
    # Another live process's queue: it beat 8 s ago, and cannot beat again while SQS is down.
    peer = sqs.create_queue(
        QueueName=f"{names.reply_queue_prefix}peer-1-abcd",
        tags={**names.tags, HEARTBEAT_TAG: str(int(time.time()) - 8)},
    )["QueueUrl"]
    strict.outage("sqs", 10)
    front.wait_for_event("reply_receive_failed", timeout=30)
    eventually(lambda: not strict.stats()["outages"], timeout=60, interval=0.1, what="the outage's end")
    ended = time.monotonic()
    # Soon after, its heartbeat is older than the 20 s idle period: but only because SQS was down.
    time.sleep(15)
    assert front.events("reply_queue_swept") == []
    assert peer in sqs.list_queues(QueueNamePrefix=names.reply_queue_prefix)["QueueUrls"]
    # A queue that stays silent once SQS answers again is swept an idle period later.
    swept = front.wait_for_event("reply_queue_swept", timeout=60)
    assert swept[0]["queue"].endswith("peer-1-abcd")
    assert time.monotonic() - ended >= 19, "swept an idle period after SQS answered again"


def test_stalled_replies_are_reported_until_replies_flow_again(stack, run) -> None:
    heartbeat = 2  # the housekeeper's round, when it also logs a stall
    front = run.frontend(WEB_WORKERS=1, REPLY_STALL_SECONDS=5, REPLY_QUEUE_HEARTBEAT_SECONDS=heartbeat)
    assert requests.get(f"{front.url}/readyz", timeout=30).status_code == 200
    pending = client.submit(front.url, [1, 2], ["sum"], wait=0)  # no worker: no reply will come
    assert pending.status_code == 202

    def not_ready() -> dict | None:
        response = requests.get(f"{front.url}/readyz", timeout=30)
        return response.json() if response.status_code == 503 else None

    ready = eventually(not_ready, timeout=30, what="/readyz to report the stall")
    assert ready["checks"]["replies"] is False
    (problem,) = ready["problems"]
    assert problem.startswith("replies have stalled: 1 request(s) waiting")
    status = requests.get(f"{front.url}/api/status", timeout=30).json()
    assert status["health"]["ok"] is False
    assert status["health"]["replies"]["outstanding"] == 1
    assert status["health"]["replies"]["stalled"] is True

    # The line the stack's "replies stalled" alarm counts (through a metric filter on the log group).
    (stalled, *_) = front.wait_for_event(REPLIES_STALLED, timeout=30)
    assert stalled["level"] == "warning"
    assert stalled["outstanding"] == 1
    assert stalled["oldest_outstanding_seconds"] >= 5  # reported to a tenth: 5.04 reads 5.0
    assert stalled["seconds_since_last_reply"] >= 5
    _matches_the_alarms_metric_filter(front, stack.clients.names)

    run.worker()
    eventually(lambda: requests.get(f"{front.url}/readyz", timeout=30).status_code == 200, what="ready again")
    assert client.until_done(front.url, pending.json()["id"])["results"] == {"sum": 3}
    # A round that began before the reply may still finish its line; after that, none.
    time.sleep(heartbeat + 1)
    settled = len(front.events(REPLIES_STALLED))
    time.sleep(3 * heartbeat + 1)
    assert len(front.events(REPLIES_STALLED)) == settled, "no stall lines once replies flow again"


def _matches_the_alarms_metric_filter(front, names) -> None:
    """CloudWatch Logs' JSON pattern `{ $.event = "X" }` selects the log events that are JSON objects
    whose top-level field `event` is X. Neither emulator evaluates patterns, so both ends are checked
    against that rule: the filter's pattern is exactly that, for the shared name, on the frontend's
    group; and each stall line, as printed (one per line, as the awslogs driver sends it), is such an
    object."""
    wanted = alerts.metric_filter(names)
    assert wanted["logGroupName"] == names.log_group("frontend")
    assert wanted["filterPattern"] == '{ $.event = "replies_stalled" }'
    assert wanted["filterPattern"] == f'{{ $.event = "{REPLIES_STALLED}" }}'
    lines = [line for line in front.log_path.read_text().splitlines() if REPLIES_STALLED in line]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict)
        assert entry["event"] == REPLIES_STALLED


def test_sigterm_answers_waiting_requests_at_once_with_their_id(stack, run) -> None:
    front = run.frontend(WEB_WORKERS=1)
    answers: list[requests.Response] = []
    waiting = threading.Thread(
        target=lambda: answers.append(client.submit(front.url, [6, 7], ["sum"], wait=30))
    )
    waiting.start()
    front.wait_for_event("submitted", timeout=30)
    signalled = time.monotonic()
    front.send(signal.SIGTERM)
    waiting.join(timeout=30)
    (answer,) = answers
    assert time.monotonic() - signalled < 10, "answered well before gunicorn's graceful timeout"
    assert answer.status_code == 202
    request_id = answer.json()["id"]
    assert front.wait(timeout=60) == 0

    # The request was sent: once a worker and the logger run, any frontend finds its result.
    run.worker()
    run.logger()
    later = run.frontend("frontend-2", WEB_WORKERS=1)
    assert client.until_done(later.url, request_id, timeout=120)["results"] == {"sum": 13}
