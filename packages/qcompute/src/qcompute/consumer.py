"""The queue-consumer loop shared by the worker and the logger.

Long-poll a batch, hand it to the handler, delete the successes in one call, push retryable failures
back with a visibility delay that grows with the receive count, and move poison messages to the
dead-letter queue with the reason attached. While a batch is being handled, a heartbeat keeps its
messages invisible, so a slow batch is never handed to a second consumer.

Stopping: `stop()` (the first SIGTERM) lets the batch in hand finish; a second signal exits at once,
and whatever was not deleted simply reappears after its visibility timeout.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from qcompute.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int

    @classmethod
    def from_sqs(cls, raw: dict[str, Any]) -> Message:
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw["Body"],
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
        )


@dataclass(frozen=True)
class Retry:
    """Try again later: a transient failure such as an AWS error."""

    reason: str


@dataclass(frozen=True)
class Poison:
    """Never retry: the message cannot be understood. It goes to the dead-letter queue."""

    reason: str


Outcome = Retry | Poison | None  # None: done, delete it


class BatchHandler(Protocol):
    def __call__(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        """Handle a batch; return each message's outcome by message id (missing means done)."""
        ...


def retry_delay(receive_count: int, base: int = 2, ceiling: int = 300) -> int:
    """Seconds before a failed message is visible again: 2, 4, 8, ... up to five minutes."""
    return min(ceiling, base * 2 ** max(0, receive_count - 1))


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
                failures = 0
            except (BotoCoreError, ClientError) as error:
                # botocore has already retried with backoff; wait longer before asking again.
                failures += 1
                pause = min(30, 2**failures)
                log.warning("receive_failed", error=str(error), retry_in_seconds=pause)
                self._stopping.wait(pause)
                continue
            if messages:
                self._handle(messages)
                with self._lock:
                    self.handled += len(messages)
            if (not messages and self.stop_when_idle) or (
                self.max_messages is not None and self.handled >= self.max_messages
            ):
                return

    def _beat(self) -> None:
        """Touch the health file: the container's healthcheck reads its age to tell a live loop."""
        if self.health_file is not None:
            self.health_file.touch()

    def _receive(self) -> list[Message]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [Message.from_sqs(raw) for raw in response.get("Messages", [])]

    def _handle(self, messages: list[Message]) -> None:
        log.info("batch_received", count=len(messages), queue=self.queue_url)
        with self._heartbeat(messages):
            try:
                outcomes = self.handler(messages)
            except Exception as error:  # a bug in the handler must not stop the consumer
                log.exception("batch_failed", count=len(messages))
                outcomes = {message.message_id: Retry(f"handler error: {error!r}") for message in messages}
        done, retry = [], []
        for message in messages:
            outcome = outcomes.get(message.message_id)
            if isinstance(outcome, Poison) and not self._dead_letter(message, outcome.reason):
                outcome = Retry("could not move the poison message to the dead-letter queue")
            if isinstance(outcome, Retry):
                log.warning(
                    "message_retry",
                    message_id=message.message_id,
                    reason=outcome.reason,
                    receive_count=message.receive_count,
                )
                retry.append(message)
            else:
                done.append(message)
        self._delete(done)
        self._delay(retry)

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
        for failure in response.get("Failed", []):
            log.warning(
                f"{operation}_entry_failed",
                message_id=messages[int(failure["Id"])].message_id,
                code=failure.get("Code"),
                error=failure.get("Message"),
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
