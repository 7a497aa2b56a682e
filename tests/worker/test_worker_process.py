"""The worker as a real process: warm stop on SIGTERM, poison messages, vanished requesters, dying
compute processes, replies refused while IAM catches up."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from harness import client
from harness.fixtures import drain, own_reply_queue, queue_depth, queue_url, read_log, send_request
from harness.waiting import eventually

pytestmark = pytest.mark.integration


def test_sigterm_mid_batch_finishes_the_batch_and_loses_nothing(stack, run) -> None:
    replies = own_reply_queue(stack)
    rng = random.Random(7)
    # lcm over thousands of large integers takes a good fraction of a second: a batch of ten is
    # still being computed when SIGTERM arrives. One receive loop: moto's receive is not safe
    # against concurrent receivers, and here no delivery may be doubled by the emulator.
    requests = [[rng.randint(1, 10**18) for _ in range(6_000)] for _ in range(20)]
    sent = [send_request(stack, numbers, ["lcm", "count"], reply_to=replies) for numbers in requests]
    logger = run.logger()
    first = run.worker("worker-1", CONSUMER_LOOPS=1)
    first.wait_for_event("computed", timeout=120)
    first.terminate()
    assert first.wait(timeout=120) == 0, first.tail()

    finished = first.events("computed")
    stopped = first.events("consumer_stopped")
    assert len(stopped) == 1
    assert stopped[0]["handled"] == len(finished), "the batch in hand was finished"
    assert 0 < len(finished) < len(sent), "SIGTERM arrived in the middle of the work"
    # What the first worker did not take is still queued, and nothing it took is in flight.
    assert queue_depth(stack, queue_url(stack, "requests_queue")) == len(sent) - len(finished)

    second = run.worker("worker-2", CONSUMER_LOOPS=1)
    answered: Counter = Counter()

    def refused() -> set[str]:
        return {event["request_id"] for worker in (first, second) for event in worker.events("reply_failed")}

    def every_request_answered_or_refused() -> bool:
        answered.update(json.loads(message["Body"])["id"] for message in drain(stack, replies, until=0))
        return set(sent) - set(answered) <= refused()

    # A reply goes missing only when AWS refused to send it (the strict stages fail 1% of calls,
    # entries of a batch included): the worker says so, and the requester finds the result in the
    # log, checked below for every request. SQS may also deliver a reply twice (at least once), which
    # the frontend tolerates; what must hold is that no request was computed twice.
    eventually(every_request_answered_or_refused, timeout=240, interval=0, what="every reply or its failure")
    assert set(answered) <= set(sent)
    assert len(first.events("computed")) + len(second.events("computed")) == len(sent), "each computed once"
    for request_id, numbers in zip(sent, requests, strict=True):
        record = eventually(
            lambda rid=request_id: read_log(stack, rid), timeout=120, what=f"log {request_id}"
        )
        assert record["results"]["count"] == len(numbers)
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 0
    assert logger.process.poll() is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("this is not json", "not JSON"),
        ('{"v": 1}', "invalid request id"),
        ('{"v": 99, "id": "x"}', "unsupported contract version 99"),
        ("[]", "not a JSON object"),
    ],
)
def test_a_poison_message_goes_to_the_dead_letter_queue_and_the_worker_keeps_serving(
    stack, run, body: str, reason: str
) -> None:
    worker = run.worker()
    sqs = stack.clients.sqs
    sqs.send_message(QueueUrl=queue_url(stack, "requests_queue"), MessageBody=body)
    dead = drain(stack, queue_url(stack, "requests_dlq"), until=1)
    assert dead[0]["Body"] == body
    assert reason in dead[0]["MessageAttributes"]["poison_reason"]["StringValue"]
    assert worker.events("message_poisoned")

    replies = own_reply_queue(stack)
    request_id = send_request(stack, [1, 2, 3], ["sum"], reply_to=replies)
    reply = json.loads(drain(stack, replies, until=1)[0]["Body"])
    assert (reply["id"], reply["results"]) == (request_id, {"sum": 6})
    assert worker.process.poll() is None


def test_bad_content_in_a_valid_message_gets_an_error_result(stack, run) -> None:
    run.worker()
    run.logger()
    replies = own_reply_queue(stack)
    request_id = send_request(stack, [1, 10**19], ["sum"], reply_to=replies)
    reply = json.loads(drain(stack, replies, until=1)[0]["Body"])
    assert reply["status"] == "error"
    assert reply["error"]["code"] == "number_too_large"
    record = eventually(lambda: read_log(stack, request_id), what="error record in S3")
    assert record["error"]["code"] == "number_too_large"
    assert record["request"]["numbers"] == [1, 10**19]


def test_a_reply_whose_queue_is_gone_is_dropped_and_the_result_still_logged(stack, run) -> None:
    worker = run.worker()
    run.logger()
    gone = own_reply_queue(stack)
    stack.clients.sqs.delete_queue(QueueUrl=gone)
    request_id = send_request(stack, [5, 6], ["sum"], reply_to=gone)
    record = eventually(lambda: read_log(stack, request_id), what="record in S3")
    assert record["results"] == {"sum": 11}
    (gone_event,) = worker.wait_for_event("reply_queue_gone", timeout=30)
    assert gone_event["request_id"] == request_id
    assert queue_depth(stack, queue_url(stack, "requests_queue")) == 0
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 0


def _pool_processes(worker_pid: int) -> list[int]:
    """The compute processes of a worker: children of its forkserver, which is a child of the worker."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    servers = [
        pid
        for pid in children.get(worker_pid, [])
        if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return [pid for server in servers for pid in children.get(server, [])]


LARGE = {"WORKER_PROCESSES": 2, "PARALLEL_FROM_NUMBERS": 1000, "CONSUMER_LOOPS": 1}


def test_a_killed_compute_process_is_replaced_and_the_next_request_computed(stack, run) -> None:
    worker = run.worker(**LARGE)
    replies = own_reply_queue(stack)
    numbers = list(range(1, 5001))
    operations = ["sum", "median", "max", "sorted", "mode"]  # two heavy ones: computed in the pool
    first = send_request(stack, numbers, operations, reply_to=replies)
    drain(stack, replies, until=1)
    pool = eventually(lambda: _pool_processes(worker.pid), what="the compute processes")
    os.kill(pool[0], signal.SIGKILL)  # as the kernel's OOM killer would
    time.sleep(1)

    second = send_request(stack, numbers, operations, reply_to=replies)
    reply = json.loads(drain(stack, replies, until=1)[0]["Body"])
    assert reply["id"] == second
    assert {name: reply["results"][name] for name in ("sum", "median", "max")} == {
        "sum": 12_502_500,
        "median": 2500.5,
        "max": 5000,
    }
    assert reply["results"]["sorted"] == numbers
    assert worker.events("pool_replaced"), "a new pool took the broken one's place"
    assert [e["request_id"] for e in worker.events("computed")] == [first, second], "computed once each"
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 0
    # The broken pool's other process, stuck on a lock the dead one held, does not keep it from exiting.
    assert worker.stop(timeout=30) == 0


def test_a_compute_process_killed_mid_request_is_replaced_and_the_request_computed(stack, run) -> None:
    worker = run.worker(**LARGE)
    run.logger()
    replies = own_reply_queue(stack)
    rng = random.Random(3)
    numbers = [rng.randint(10**17, 10**18) for _ in range(8_000)]  # an lcm of seconds
    request_id = send_request(stack, numbers, ["lcm", "sorted", "count"], reply_to=replies)
    worker.wait_for_event("batch_received", timeout=60)
    pool = eventually(lambda: _pool_processes(worker.pid), what="the compute processes at work")
    os.kill(pool[0], signal.SIGKILL)
    reply = json.loads(drain(stack, replies, until=1, timeout=240)[0]["Body"])
    assert reply["id"] == request_id
    record = eventually(lambda: read_log(stack, request_id), timeout=120, what="the record in S3")
    assert record["results"]["count"] == 8_000
    assert record["results"]["lcm"] % numbers[0] == 0
    assert worker.events("pool_broken")
    assert worker.events("pool_replaced")
    assert len(worker.events("computed")) == 1, "computed in the new pool, not retried as a message"
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 0
    assert worker.stop(timeout=30) == 0


def test_a_reply_refused_while_iam_catches_up_is_sent_again_not_computed_again(stack, run, strict) -> None:
    # Sends to a reply queue younger than 6 s are denied, as a tag-conditioned permission may be. Long
    # enough for a loaded machine to start the frontend and submit within it; short enough for the
    # worker's pauses (7 s in all) to outlast it whenever the first send came.
    strict.configure(authorization_delay_seconds=6, new_queue_settle_seconds=0)  # settling: its own test
    worker = run.worker(AWS_ENDPOINT_URL=strict.endpoint)
    front = run.frontend(WEB_WORKERS=1, AWS_ENDPOINT_URL=strict.endpoint)
    response = client.submit(front.url, [20, 22], ["sum"], wait=20)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == {"sum": 42}
    assert worker.events("reply_refused_retrying"), "the refusal happened and was waited out"
    assert len(worker.events("computed")) == 1
    assert any(f["reason"].startswith("queue created less than") for f in strict.faults())
