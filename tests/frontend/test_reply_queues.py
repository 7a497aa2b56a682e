"""Each frontend process owns a reply queue: created at start, deleted at a clean exit, swept when dead."""

from __future__ import annotations

import os
import signal
import time

import pytest

from frontend.replies import HEARTBEAT_TAG, ReplyChannel
from harness import client
from harness.fixtures import queue_depth, send_request
from harness.waiting import eventually
from qcompute.names import STACK_TAG
from qcompute.provision import reply_queues

pytestmark = pytest.mark.integration


def _own_queues(stack) -> dict[str, dict[str, str]]:
    return reply_queues(stack.clients.sqs, stack.clients.names)


def _name(url: str) -> str:
    """A queue's name: its URL's host is the endpoint it was reached through, which may differ."""
    return url.rsplit("/", 1)[-1]


def test_one_reply_queue_per_process_deleted_at_a_clean_exit(stack, run) -> None:
    run.worker()
    front = run.frontend(WEB_WORKERS=3)
    queues = eventually(lambda: len(_own_queues(stack)) == 3 and _own_queues(stack), what="3 reply queues")
    for tags in queues.values():
        assert tags[STACK_TAG] == stack.name
        assert abs(time.time() - float(tags[HEARTBEAT_TAG])) < 120
    assert client.compute(front.url, [1, 2], ["sum"])["results"] == {"sum": 3}

    assert front.stop(timeout=60) == 0
    assert _own_queues(stack) == {}


def test_queues_of_dead_processes_are_swept_and_others_left_alone(stack, run) -> None:
    sqs, names = stack.clients.sqs, stack.clients.names
    stale = sqs.create_queue(
        QueueName=f"{names.reply_queue_prefix}deadhost-1-aaaa",
        tags={**names.tags, HEARTBEAT_TAG: str(int(time.time()) - 7200)},
    )["QueueUrl"]
    fresh = sqs.create_queue(
        QueueName=f"{names.reply_queue_prefix}livehost-2-bbbb",
        tags={**names.tags, HEARTBEAT_TAG: str(int(time.time()))},
    )["QueueUrl"]
    # A stack named "<ours>-reply" has queues that match our prefix: they are not ours to sweep.
    neighbour = sqs.create_queue(
        QueueName=f"{names.reply_queue_prefix}requests", tags={STACK_TAG: f"{stack.name}-reply"}
    )["QueueUrl"]
    try:
        front = run.frontend(REPLY_QUEUE_IDLE_SECONDS=600)
        swept = eventually(lambda: front.events("reply_queue_swept"), what="a sweep")
        assert [_name(event["queue"]) for event in swept] == [_name(stale)]
        urls = sqs.list_queues(QueueNamePrefix=names.reply_queue_prefix)["QueueUrls"]
        assert stale not in urls
        assert fresh in urls
        assert neighbour in urls
    finally:
        sqs.delete_queue(QueueUrl=neighbour)


def test_a_killed_process_is_swept_after_the_idle_period_and_its_requests_found_in_s3(stack, run) -> None:
    settings = {"WEB_WORKERS": 1, "REPLY_QUEUE_IDLE_SECONDS": 15, "REPLY_QUEUE_HEARTBEAT_SECONDS": 5}
    front = run.frontend(**settings)
    (doomed,) = eventually(lambda: list(_own_queues(stack)), what="the reply queue")
    # No worker yet: the request waits in the queue, addressed to this process's reply queue.
    pending = client.submit(front.url, [20, 22], ["sum"], wait=0)
    assert pending.status_code == 202
    request_id = pending.json()["id"]

    pid = int(doomed.rsplit("/", 1)[-1].split("-")[-2])  # reply queue names carry the pid
    os.kill(pid, signal.SIGKILL)
    # gunicorn replaces the killed process; the new one has a queue of its own.
    eventually(lambda: len(_own_queues(stack)) == 2, what="the replacement's reply queue")

    run.worker()
    run.logger()
    assert client.until_done(front.url, request_id)["results"] == {"sum": 42}, "found through the S3 log"
    swept = eventually(lambda: front.events("reply_queue_swept"), timeout=90, what="the sweep")
    assert [_name(event["queue"]) for event in swept] == [_name(doomed)]
    assert doomed not in _own_queues(stack)


def test_a_reply_queue_deleted_under_a_live_frontend_is_recreated(stack, run) -> None:
    run.worker()
    front = run.frontend(WEB_WORKERS=1, REPLY_POLL_SECONDS=1)
    (first,) = eventually(lambda: list(_own_queues(stack)), what="the reply queue")
    stack.clients.sqs.delete_queue(QueueUrl=first)
    created = eventually(lambda: len(front.events("reply_queue_created")) >= 2, what="a new reply queue")
    assert created
    (second,) = eventually(lambda: list(_own_queues(stack)), what="exactly one live reply queue")
    assert second != first
    assert client.compute(front.url, [2, 3], ["sum"])["results"] == {"sum": 5}


def test_a_woken_request_that_never_runs_does_not_hold_the_listener(stack, run) -> None:
    """The listener lets a woken request run before its next AWS call, but only for a bounded time:
    replies keep being delivered and deleted even if a woken request's thread never takes its reply."""
    run.worker()
    channel = ReplyChannel(stack.clients.sqs, stack.clients.names, poll_seconds=1)
    channel.start()
    try:
        waiters = []
        for numbers in ([1, 2], [3, 4]):
            request_id = send_request(stack, numbers, ["sum"], reply_to=channel.queue_url)
            # Registered, never waited on: nothing ever sets `taken`.
            waiters.append(channel.expect(request_id, f"corr-{request_id}", numbers))
        for waiter in waiters:
            assert waiter.event.wait(60), "the reply was delivered"
            assert waiter.reply is not None
            assert not waiter.taken.is_set()
        assert [w.reply["results"]["sum"] for w in waiters] == [3, 7]
        eventually(lambda: queue_depth(stack, channel.queue_url) == 0, timeout=30, what="replies deleted")
    finally:
        channel.close()
