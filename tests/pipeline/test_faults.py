"""Faults: killed and slow workers, a stopped logger, failing S3, duplicates, a restarted emulator.

Each test uses real processes against a real emulator and asserts exact counts.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter

import pytest

from harness import client
from harness.backend import restartable_emulator
from harness.fixtures import (
    Services,
    drain,
    log_keys,
    new_stack,
    own_reply_queue,
    queue_depth,
    queue_url,
    read_log,
    send_request,
)
from harness.waiting import eventually
from qcompute import contract, dlq
from qcompute.provision import provision

pytestmark = pytest.mark.integration


def heavy(seed: int, count: int = 10_000) -> list[int]:
    """Integers whose lcm takes a second or more to compute."""
    rng = random.Random(seed)
    return [rng.randint(10**17, 10**18) for _ in range(count)]


def reply_ids(messages: list[dict]) -> Counter:
    return Counter(json.loads(message["Body"])["id"] for message in messages)


def test_a_worker_killed_mid_message_is_answered_once_after_the_visibility_timeout(stack, run) -> None:
    replies = own_reply_queue(stack)
    run.logger()
    request_id = send_request(stack, heavy(1), ["lcm", "count"], reply_to=replies)
    doomed = run.worker("doomed")
    doomed.wait_for_event("batch_received", timeout=120)
    doomed.send(signal.SIGKILL)
    doomed.wait(timeout=30)
    assert doomed.events("computed") == [], "killed while computing"

    survivor = run.worker("survivor")
    answered = drain(stack, replies, until=1, timeout=180)
    assert reply_ids(answered) == {request_id: 1}
    record = eventually(lambda: read_log(stack, request_id), what="the log record")
    assert record["results"]["count"] == 10_000
    assert record["attempt"] == 2, "the second delivery was the one answered"
    assert record["worker"] == "survivor"
    # Nothing more arrives: answered once, logged once.
    time.sleep(5)
    assert queue_depth(stack, replies) == 0
    assert queue_depth(stack, queue_url(stack, "requests_queue")) == 0
    assert log_keys(stack) == [contract.log_key(request_id)]
    assert len(survivor.events("computed")) == 1


def test_a_long_computation_keeps_its_messages_invisible_to_other_workers(stack, run) -> None:
    sqs = stack.clients.sqs
    requests_url = queue_url(stack, "requests_queue")
    # A visibility timeout far shorter than the batch: only the heartbeat keeps the batch hidden.
    sqs.set_queue_attributes(QueueUrl=requests_url, Attributes={"VisibilityTimeout": "3"})
    replies = own_reply_queue(stack)
    sent = [send_request(stack, heavy(seed, 6_000), ["lcm"], reply_to=replies) for seed in range(6)]
    first = run.worker("first")

    def received() -> int:
        return sum(batch["count"] for batch in first.events("batch_received"))

    # Its two receive loops may split them into two batches; either way the first worker holds all.
    eventually(lambda: received() >= len(sent), timeout=120, what="the first worker holding every request")
    assert received() == len(sent)
    second = run.worker("second")

    answered = drain(stack, replies, until=len(sent), timeout=240)
    assert reply_ids(answered) == dict.fromkeys(sent, 1)
    time.sleep(4)  # longer than the visibility timeout: a leaked message would be redelivered now
    assert queue_depth(stack, replies) == 0
    assert len(first.events("computed")) == len(sent)
    assert second.events("computed") == []
    assert first.events("visibility_extended"), "the heartbeat ran"


def test_the_logger_stopped_and_restarted_writes_every_record_once(stack, run) -> None:
    worker = run.worker()
    logger = run.logger("logger-1")
    first = [send_request(stack, [i, 1], ["sum"], reply_to=None) for i in range(20)]
    logger.wait_for_event("logged", count=5, timeout=120)
    assert logger.stop(timeout=60) == 0
    second = [send_request(stack, [i, 2], ["sum"], reply_to=None) for i in range(20)]
    worker.wait_for_event("computed", count=40, timeout=180)

    restarted = run.logger("logger-2")
    expected = {contract.log_key(request_id) for request_id in first + second}
    eventually(lambda: set(log_keys(stack)) == expected, timeout=180, what="all 40 log objects")
    assert len(log_keys(stack)) == 40
    # Written exactly once each (a redelivery, which SQS may make, is refused by the conditional put).
    written = (len(logger.events("logged")), len(restarted.events("logged")))
    assert sum(written) == 40, f"every record written exactly once: {written}"
    # A redelivered batch (SQS may make one) may still be in hand: refused, then deleted.
    eventually(lambda: queue_depth(stack, queue_url(stack, "log_queue")) == 0, what="the log queue empty")


def test_failing_s3_writes_are_retried_with_backoff_then_dead_lettered(stack, run) -> None:
    clients, names = stack.clients, stack.clients.names
    log_queue = queue_url(stack, "log_queue")
    # Two tries instead of five keep the test short; the retry path is the same.
    redrive = json.dumps({"deadLetterTargetArn": names.queue_arn(names.log_dlq), "maxReceiveCount": 2})
    clients.sqs.set_queue_attributes(QueueUrl=log_queue, Attributes={"RedrivePolicy": redrive})
    clients.s3.delete_bucket(Bucket=names.log_bucket)  # every write now fails

    logger = run.logger()
    run.worker()
    request_id = send_request(stack, [2, 3], ["sum"], reply_to=None)
    dead_letters = queue_url(stack, "log_dlq")
    eventually(lambda: queue_depth(stack, dead_letters) == 1, timeout=120, what="the record in the DLQ")
    (dead,) = dlq.peek(clients, dead_letters, 1)
    assert json.loads(dead["Body"])["id"] == request_id
    retries = [e for e in logger.events("message_retry") if "S3 write failed" in e["reason"]]
    assert [e["receive_count"] for e in retries] == [1, 2]
    assert logger.events("logged") == []
    assert logger.process.poll() is None, "the logger keeps running"
    assert queue_depth(stack, log_queue) == 0

    # Once S3 works again, an operator sends the record back and it is logged: nothing was lost.
    provision(clients)
    assert dlq.redrive(clients, "logs") == 1
    record = eventually(lambda: read_log(stack, request_id), what="the redriven record in S3")
    assert record["results"] == {"sum": 5}


def test_duplicate_deliveries_show_one_reply_and_write_one_log(stack, run) -> None:
    logger = run.logger()
    front = run.frontend(WEB_WORKERS=1)
    response = client.submit(front.url, [4, 5], ["sum"], wait=0)
    assert response.status_code == 202
    request_id = response.json()["id"]

    # Deliver the request twice, as SQS may: two copies of the same message.
    sqs, requests_url = stack.clients.sqs, queue_url(stack, "requests_queue")
    (message,) = sqs.receive_message(QueueUrl=requests_url, WaitTimeSeconds=5)["Messages"]
    for _ in range(2):
        sqs.send_message(QueueUrl=requests_url, MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=requests_url, ReceiptHandle=message["ReceiptHandle"])

    worker = run.worker(CONSUMER_LOOPS=1)  # exactly the two deliveries made here, none by moto's races
    worker.wait_for_event("computed", count=2, timeout=120)
    front.wait_for_event("reply_duplicate_ignored", timeout=60)
    assert client.until_done(front.url, request_id)["results"] == {"sum": 9}
    eventually(
        lambda: len(logger.events("logged")) + len(logger.events("already_logged")) == 2, what="2 records"
    )
    assert log_keys(stack) == [contract.log_key(request_id)]
    assert len(front.events("reply_duplicate_ignored")) == 1


def test_services_survive_an_emulator_restart_and_recover(tmp_path_factory) -> None:
    log_dir = tmp_path_factory.mktemp("restart")
    with restartable_emulator(log_dir) as emulator, new_stack(emulator.backend) as stack:
        services = Services(stack, log_dir)
        try:
            worker, logger = services.worker(), services.logger()
            front = services.frontend(WEB_WORKERS=1, REPLY_POLL_SECONDS=2)
            assert client.compute(front.url, [1, 2], ["sum"])["results"] == {"sum": 3}

            emulator.stop()
            outage = time.monotonic()
            down = client.submit(front.url, [3, 4], ["sum"])
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "unavailable"
            worker.wait_for_event("receive_failed", timeout=120)
            time.sleep(max(0.0, 20 - (time.monotonic() - outage)))
            for process in (worker, logger, front):
                assert process.process.poll() is None, f"{process.name} kept running"
            # Backing off, not spinning: a handful of attempts in 20 s, not hundreds.
            assert 1 <= len(worker.events("receive_failed")) <= 10
            assert 1 <= len(logger.events("receive_failed")) <= 10

            emulator.start()
            provision(stack.clients)  # the emulator forgot everything
            recovered = eventually(
                lambda: client.submit(front.url, [5, 6], ["sum"], wait=5).json().get("results"),
                timeout=180,
                interval=2,
                what="a request answered after the restart",
            )
            assert recovered == {"sum": 11}
            assert front.events("reply_queue_missing"), "the frontend made itself a new reply queue"
        finally:
            services.stop_all()
