"""The consumer loop against a real emulator, through the strict layer: an outage puts messages back
without spending their tries, the loop backs off and probes with one message, poison still goes to the
dead-letter queue at once, and an outage that never ends gives up after a day."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest

from harness.fixtures import clients_via, queue_depth
from harness.waiting import eventually
from qcompute import consumer
from qcompute.consumer import Consumer, Message, Outage, Outcome, Poison

pytestmark = pytest.mark.integration


@pytest.fixture
def queues(stack, unique) -> tuple[str, str]:
    """A queue whose messages go to its own dead-letter queue after two receives."""
    sqs, names = stack.clients.sqs, stack.clients.names
    dead = sqs.create_queue(QueueName=unique("dead"))["QueueUrl"]
    redrive = json.dumps(
        {"deadLetterTargetArn": names.queue_arn(dead.rsplit("/", 1)[-1]), "maxReceiveCount": 2}
    )
    source = sqs.create_queue(
        QueueName=unique("work"), Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "30"}
    )["QueueUrl"]
    return source, dead


class Recorder:
    """A handler that answers what `decide` says and remembers every delivery it saw."""

    def __init__(self, decide: Callable[[Message], Outcome]):
        self.decide = decide
        self.deliveries: list[Message] = []
        self.batch_times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        with self._lock:
            self.deliveries += messages
            self.batch_times.append(time.monotonic())
        return {m.message_id: self.decide(m) for m in messages}

    def bodies(self) -> list[str]:
        with self._lock:
            return [m.body for m in self.deliveries]


@contextmanager
def consuming(strict, stack, source: str, dead: str, handler: Recorder, **options) -> Iterator[Consumer]:
    clients = clients_via(stack, strict.endpoint)
    loop = Consumer(
        clients.sqs,
        source,
        dead,
        handler,
        wait_seconds=1,
        max_backoff_seconds=2,
        max_outage_delay_seconds=1,
        **options,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(timeout=60)


def test_an_outage_puts_the_message_back_without_spending_its_tries(strict, stack, queues) -> None:
    source, dead = queues
    handler = Recorder(lambda m: Outage("SNS is down") if m.outage_retries < 4 else None)
    stack.clients.sqs.send_message(QueueUrl=source, MessageBody="work")
    with consuming(strict, stack, source, dead, handler):
        eventually(lambda: len(handler.deliveries) == 5, timeout=90, what="five deliveries")
        eventually(lambda: queue_depth(stack, source) == 0, timeout=30, what="the queue drained")
    # Two receives would have sent it to the dead-letter queue; five outages did not.
    assert [m.outage_retries for m in handler.deliveries] == [0, 1, 2, 3, 4]
    assert {m.receive_count for m in handler.deliveries} == {1}, "each put-back starts its count over"
    assert handler.bodies() == ["work"] * 5
    since = {m.outage_since for m in handler.deliveries[1:]}
    assert len(since) == 1, "the outage's start travels with the message"
    assert queue_depth(stack, dead) == 0


def test_poison_goes_to_the_dead_letter_queue_at_once_during_an_outage(strict, stack, queues) -> None:
    source, dead = queues
    handler = Recorder(lambda m: Poison("not JSON") if m.body == "poison" else Outage("S3 is down"))
    for body in ("poison", "work"):
        stack.clients.sqs.send_message(QueueUrl=source, MessageBody=body)
    with consuming(strict, stack, source, dead, handler):
        eventually(lambda: queue_depth(stack, dead) == 1, timeout=30, what="the poison in the DLQ")
        eventually(lambda: handler.bodies().count("work") >= 3, timeout=60, what="the work retried")
    assert handler.bodies().count("poison") == 1
    (message,) = stack.clients.sqs.receive_message(QueueUrl=dead, MessageAttributeNames=["All"])["Messages"]
    assert message["Body"] == "poison"
    assert message["MessageAttributes"]["poison_reason"]["StringValue"] == "not JSON"


def test_while_aws_fails_the_loop_backs_off_then_resumes(strict, stack, queues, tmp_path) -> None:
    source, dead = queues
    failing = threading.Event()
    failing.set()
    handler = Recorder(lambda m: Outage("S3 is down") if failing.is_set() else None)
    health = tmp_path / "consumer.alive"
    for n in range(30):
        stack.clients.sqs.send_message(QueueUrl=source, MessageBody=str(n))
    with consuming(strict, stack, source, dead, handler, health_file=health):
        eventually(lambda: len(handler.batch_times) >= 4, timeout=60, what="a few batches")
        first = handler.batch_times[:4]
        assert min(b - a for a, b in itertools.pairwise(first)) >= 1.5, "it paused between them"
        state = json.loads(health.read_text())
        assert state["state"] == "backing_off"
        assert state["reason"] == "S3 is down"
        failing.clear()
        done = eventually(lambda: queue_depth(stack, source) == 0, timeout=120, what="the backlog handled")
        assert done
        eventually(lambda: json.loads(health.read_text())["state"] == "polling", what="polling again")
    assert sorted({int(body) for body in handler.bodies()}) == list(range(30))
    assert queue_depth(stack, dead) == 0


def test_an_outage_longer_than_a_day_gives_the_message_up(strict, stack, queues) -> None:
    source, dead = queues
    handler = Recorder(lambda m: Outage("SNS is down"))
    day_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 25 * 3600))
    stack.clients.sqs.send_message(
        QueueUrl=source,
        MessageBody="old",
        MessageAttributes={
            consumer.OUTAGE_SINCE: {"DataType": "String", "StringValue": day_ago},
            consumer.OUTAGE_RETRIES: {"DataType": "Number", "StringValue": "1400"},
        },
    )
    with consuming(strict, stack, source, dead, handler):
        eventually(lambda: queue_depth(stack, dead) == 1, timeout=30, what="the message given up")
    (message,) = stack.clients.sqs.receive_message(QueueUrl=dead, MessageAttributeNames=["All"])["Messages"]
    assert message["MessageAttributes"]["poison_reason"]["StringValue"].startswith(
        "AWS kept failing for over 24 h"
    )
    assert queue_depth(stack, source) == 0
