"""The queue-consumer loop shared by the worker and the logger.

Long-poll a batch, hand it to the handler, delete the successes in one call, and act on each failure
by its kind:
- `Poison`: the message cannot be understood. It goes to the dead-letter queue at once, with the reason.
- `Retry`: handling it failed. It comes back after a delay growing with its receive count, and SQS
  moves it to the dead-letter queue after `maxReceiveCount` tries (provision.py).
- `Outage`: AWS itself failed (5xx, throttling, a dropped connection) after botocore's own retries.
  That says nothing about the message, so it must not spend its tries: the message is sent again as a
  new one (its receive count starts over) with a delay, and the consumer backs off, pausing longer
  between batches (up to 30 s) until one succeeds. Poison met meanwhile still goes to the dead-letter
  queue at once. An outage of any length lands nothing in the dead-letter
  queue, until it has lasted `OUTAGE_GIVE_UP_SECONDS`.
While a batch is being handled, a heartbeat keeps its messages invisible, so a slow batch is never
handed to a second consumer.

Stopping: `stop()` (the first SIGTERM) lets the batch in hand finish; a second signal exits at once,
and whatever was not deleted simply reappears after its visibility timeout.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from qcompute import aws
from qcompute.contract import format_time, parse_time, utc_now
from qcompute.logs import get_logger

log = get_logger(__name__)

# How many times, and since when, a message has been put back because AWS was failing.
OUTAGE_RETRIES = "qcompute-outage-retries"
OUTAGE_SINCE = "qcompute-outage-since"
# An outage longer than this is not one any more: the message goes to the dead-letter queue.
OUTAGE_GIVE_UP_SECONDS = 24 * 3600
# The longest pause between probes while AWS fails, and the longest delay of a message put back:
# both bound how long after an outage ends the backlog starts moving again.
MAX_BACKOFF_SECONDS = 30
MAX_OUTAGE_DELAY_SECONDS = 60


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_sqs(cls, raw: dict[str, Any]) -> Message:
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw["Body"],
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            attributes=raw.get("MessageAttributes", {}),
        )

    @property
    def outage_retries(self) -> int:
        value = self.attributes.get(OUTAGE_RETRIES, {}).get("StringValue", "0")
        return int(value) if value.isdigit() else 0

    @property
    def outage_since(self) -> str | None:
        return self.attributes.get(OUTAGE_SINCE, {}).get("StringValue")


@dataclass(frozen=True)
class Retry:
    """Try again later: handling this message failed. Repeated failures lead to the dead-letter queue."""

    reason: str


@dataclass(frozen=True)
class Outage:
    """AWS failed, not the message: try again once it is back, without spending the message's tries."""

    reason: str


@dataclass(frozen=True)
class Poison:
    """Never retry: the message cannot be understood. It goes to the dead-letter queue."""

    reason: str


Outcome = Retry | Outage | Poison | None  # None: done, delete it


def failure(what: str, error: Exception) -> Retry | Outage:
    """The outcome of an AWS error: an outage when it is AWS's fault, a retry otherwise."""
    reason = f"{what}: {error}"
    return Outage(reason) if aws.is_transient(error) else Retry(reason)


class BatchHandler(Protocol):
    def __call__(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        """Handle a batch; return each message's outcome by message id (missing means done)."""
        ...


def retry_delay(receive_count: int, base: int = 2, ceiling: int = 300) -> int:
    """Seconds before a failed message is visible again: 2, 4, 8, ... up to five minutes."""
    return min(ceiling, base * 2 ** max(0, receive_count - 1))


def outage_delay(outage_retries: int, ceiling: int = MAX_OUTAGE_DELAY_SECONDS) -> int:
    """Seconds before a message put back during an outage is delivered again: 5, 10, 20, 40, 60, 60..."""
    return min(ceiling, 5 * 2**outage_retries)


class Backoff:
    """Shared by a consumer's loops: how long to wait before receiving again while AWS fails."""

    def __init__(self, ceiling: float = MAX_BACKOFF_SECONDS) -> None:
        self.ceiling = ceiling
        self._lock = threading.Lock()
        self.streak = 0
        self.since: float | None = None
        self.reason = ""

    def failed(self, reason: str) -> float:
        with self._lock:
            self.streak += 1
            if self.since is None:
                self.since = time.time()
                log.warning("consumer_backing_off", reason=reason)
            self.reason = reason
            return min(self.ceiling, 2**self.streak)

    def succeeded(self) -> None:
        with self._lock:
            if self.since is not None:
                log.info("consumer_resumed", backed_off_seconds=round(time.time() - self.since, 1))
            self.streak, self.since, self.reason = 0, None, ""

    def state(self) -> dict[str, Any]:
        with self._lock:
            if self.since is None:
                return {"state": "polling"}
            return {
                "state": "backing_off",
                "since": format_time(datetime.fromtimestamp(self.since, UTC)),
                "reason": self.reason[:500],
            }


class Consumer:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        dead_letter_url: str,
        handler: BatchHandler,
        *,
        wait_seconds: int = 10,
        batch_size: int = 10,
        stop_when_idle: bool = False,
        max_messages: int | None = None,
        health_file: Path | None = None,
        loops: int = 1,
        max_backoff_seconds: float = MAX_BACKOFF_SECONDS,
        max_outage_delay_seconds: int = MAX_OUTAGE_DELAY_SECONDS,
    ):
        self.sqs = sqs
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self.handler = handler
        self.wait_seconds = wait_seconds
        self.batch_size = batch_size
        self.stop_when_idle = stop_when_idle
        self.max_messages = max_messages
        self.health_file = health_file
        self.loops = loops
        self.handled = 0
        self.receive_error = ""
        self.backoff = Backoff(max_backoff_seconds)
        self.max_outage_delay_seconds = max_outage_delay_seconds
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        visibility = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
        self.visibility_timeout = int(visibility["Attributes"]["VisibilityTimeout"])

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """Poll with `loops` threads, this one among them, until stopped or a stop policy says so.

        Waiting on SQS is most of a batch's time, so overlapping batches raises throughput; on a warm
        stop every loop finishes its batch and this returns once all have.
        """
        log.info("consumer_started", queue=self.queue_url, wait_seconds=self.wait_seconds, loops=self.loops)
        others = [
            threading.Thread(target=self._loop, name=f"consumer-{n}", daemon=True)
            for n in range(1, self.loops)
        ]
        for thread in others:
            thread.start()
        try:
            self._loop()
        except BaseException:
            self._stopping.set()
            raise  # a forced stop: the other loops die with the process, their batches undeleted
        self._stopping.set()  # one loop ending (stop policy) ends them all
        for thread in others:
            thread.join()
        log.info("consumer_stopped", queue=self.queue_url, handled=self.handled)

    def _loop(self) -> None:
        failures = 0
        while not self.stopping:
            self._beat()
            try:
                messages = self._receive()
            except (BotoCoreError, ClientError) as error:
                # botocore has already retried with backoff; wait longer before asking again.
                failures += 1
                pause = min(self.backoff.ceiling, 2**failures)
                self.receive_error = str(error)[:500]
                log.warning("receive_failed", error=str(error), retry_in_seconds=pause)
                self._stopping.wait(pause)
                continue
            if failures:
                log.info("receive_resumed", failures=failures)
                failures, self.receive_error = 0, ""
            if messages:
                pause = self._handle(messages)
                with self._lock:
                    self.handled += len(messages)
                if pause:
                    self._stopping.wait(pause)
            if (not messages and self.stop_when_idle) or (
                self.max_messages is not None and self.handled >= self.max_messages
            ):
                return

    def _beat(self) -> None:
        """Write the health file: the container's healthcheck reads its age, an operator its state."""
        if self.health_file is not None:
            state = self.backoff.state()
            if self.receive_error:
                state = {"state": "backing_off", "reason": f"receiving failed: {self.receive_error}"}
            # Written aside and renamed: a reader never sees half a file, whichever loop wrote it.
            partial = self.health_file.with_name(f".{self.health_file.name}.{threading.get_ident()}")
            partial.write_text(json.dumps({**state, "handled": self.handled}))
            partial.replace(self.health_file)

    def _receive(self) -> list[Message]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=[OUTAGE_RETRIES, OUTAGE_SINCE],
        )
        return [Message.from_sqs(raw) for raw in response.get("Messages", [])]

    def _handle(self, messages: list[Message]) -> float:
        """Handle a batch and settle each message; return how long to pause before the next receive."""
        log.info("batch_received", count=len(messages), queue=self.queue_url)
        with self._heartbeat(messages):
            try:
                outcomes = self.handler(messages)
            except Exception as error:  # a bug in the handler must not stop the consumer
                log.exception("batch_failed", count=len(messages))
                outcomes = {message.message_id: Retry(f"handler error: {error!r}") for message in messages}
        done, retry, held = [], [], []
        for message in messages:
            outcome = outcomes.get(message.message_id)
            if isinstance(outcome, Poison) and not self._dead_letter(message, outcome.reason):
                outcome = Retry("could not move the poison message to the dead-letter queue")
            if isinstance(outcome, Retry | Outage):
                log.warning(
                    "message_retry",
                    message_id=message.message_id,
                    reason=outcome.reason,
                    receive_count=message.receive_count,
                    outage=isinstance(outcome, Outage),
                )
                (held if isinstance(outcome, Outage) else retry).append(message)
            else:
                done.append(message)
        self._delete(done)
        self._delay(retry)
        self._hold(held, [outcomes[m.message_id].reason for m in held])
        # AWS is back once a message goes through; poison, dead-lettered, says nothing either way.
        succeeded = [m for m in done if not isinstance(outcomes.get(m.message_id), Poison)]
        if held and not succeeded:
            return self.backoff.failed(outcomes[held[0].message_id].reason)
        if succeeded:
            self.backoff.succeeded()
        return 0

    def _dead_letter(self, message: Message, reason: str) -> bool:
        log.error("message_poisoned", message_id=message.message_id, reason=reason)
        try:
            self.sqs.send_message(
                QueueUrl=self.dead_letter_url,
                MessageBody=message.body or "(empty)",
                MessageAttributes={
                    "poison_reason": {"DataType": "String", "StringValue": reason[:1000]},
                    "source_queue": {"DataType": "String", "StringValue": self.queue_url},
                    "source_message_id": {"DataType": "String", "StringValue": message.message_id},
                },
            )
            return True
        except (BotoCoreError, ClientError) as error:
            log.warning("dead_letter_failed", message_id=message.message_id, error=str(error))
            return False

    def _delete(self, messages: list[Message]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)]
        self._batch_call("delete_message_batch", entries, messages)

    def _delay(self, messages: list[Message]) -> None:
        entries = [
            {
                "Id": str(i),
                "ReceiptHandle": m.receipt_handle,
                "VisibilityTimeout": retry_delay(m.receive_count),
            }
            for i, m in enumerate(messages)
        ]
        self._batch_call("change_message_visibility_batch", entries, messages)

    def _hold(self, messages: list[Message], reasons: list[str]) -> None:
        """Put messages AWS failed on back as new messages: their receive count starts over.

        Sent first, deleted after: a failure between the two leaves a duplicate, which is harmless
        (handling is idempotent), never a loss. What cannot be sent is only hidden for a while.
        """
        now = time.time()
        entries, kept, given_up = [], [], []
        for message, reason in zip(messages, reasons, strict=True):
            since = message.outage_since or utc_now()
            if now - parse_time(since).timestamp() > OUTAGE_GIVE_UP_SECONDS:
                given_up.append((message, reason))
                continue
            retries = message.outage_retries
            entries.append(
                {
                    "Id": str(len(entries)),
                    "MessageBody": message.body,
                    "DelaySeconds": outage_delay(retries, self.max_outage_delay_seconds),
                    "MessageAttributes": {
                        OUTAGE_RETRIES: {"DataType": "Number", "StringValue": str(retries + 1)},
                        OUTAGE_SINCE: {"DataType": "String", "StringValue": since},
                    },
                }
            )
            kept.append(message)
        for message, reason in given_up:
            hours = OUTAGE_GIVE_UP_SECONDS / 3600
            if self._dead_letter(message, f"AWS kept failing for over {hours:g} h: {reason}"):
                self._delete([message])
        sent: list[Message] = []
        for batch in aws.batches(entries, "MessageBody"):
            try:
                response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=batch)
            except (BotoCoreError, ClientError) as error:
                log.warning("requeue_failed", count=len(batch), error=str(error))
                continue
            sent += [kept[int(entry["Id"])] for entry in response.get("Successful", [])]
        self._delete(sent)
        unsent = [message for message in kept if message not in sent]
        if unsent:
            log.info("requeue_fallback_to_visibility", count=len(unsent))
            self._delay(unsent)

    def _batch_call(self, operation: str, entries: list[dict], messages: list[Message]) -> None:
        """Call a batch API, logging every entry it reports as failed; nothing is retried here:
        a message left undeleted simply comes back after its visibility timeout."""
        if not entries:
            return
        try:
            response = getattr(self.sqs, operation)(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as error:
            log.warning(f"{operation}_failed", count=len(entries), error=str(error))
            return
        for failure_entry in response.get("Failed", []):
            log.warning(
                f"{operation}_entry_failed",
                message_id=messages[int(failure_entry["Id"])].message_id,
                code=failure_entry.get("Code"),
                error=failure_entry.get("Message"),
            )

    @contextmanager
    def _heartbeat(self, messages: list[Message]) -> Iterator[None]:
        """Keep the batch invisible to other consumers for as long as it is being handled."""
        done = threading.Event()
        interval = max(1.0, self.visibility_timeout / 3)
        entries = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": self.visibility_timeout}
            for i, m in enumerate(messages)
        ]

        def extend() -> None:
            while not done.wait(interval):
                self._batch_call("change_message_visibility_batch", entries, messages)
                log.info("visibility_extended", count=len(entries), seconds=self.visibility_timeout)

        thread = threading.Thread(target=extend, name="visibility-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def install_stop_signals(stop: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: warm stop (finish the batch in hand). Second: exit now."""
    received = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            log.info("stop_requested", signal=signal.Signals(signum).name)
            stop()
        else:
            log.warning("forced_stop", signal=signal.Signals(signum).name)
            raise SystemExit(1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
