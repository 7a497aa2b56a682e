"""Each frontend process owns one reply queue: replies reach the process that is waiting for them.

A shared reply queue read by several processes hands replies to the wrong process (AWS's
request-response guidance: never share one). So every process creates its own queue at start, names
it in each request (`reply_to`), deletes it at a clean exit, and tags it with a heartbeat; queues of
processes that died without cleaning up are swept by the others once their heartbeat is stale.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from qcompute import aws, contract
from qcompute.logs import get_logger
from qcompute.names import StackNames
from qcompute.provision import reply_queues

log = get_logger(__name__)

HEARTBEAT_TAG = "qcompute:heartbeat"
# Replies nobody reads are worthless after a few minutes.
REPLY_RETENTION_SECONDS = 300
# Completed replies kept in memory for GET /api/requests/<id> from this process.
COMPLETED_CACHE_SIZE = 5_000


@dataclass
class Waiter:
    request_id: str
    correlation_id: str
    numbers: list[int]
    event: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    received_at: str | None = None


def reply_queue_name(names: StackNames) -> str:
    """Unique per process: host, pid and a random token, within SQS's 80-character limit."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32]
    return f"{names.reply_queue_prefix}{host}-{os.getpid()}-{secrets.token_hex(4)}"


class ReplyChannel:
    def __init__(
        self,
        sqs: Any,
        names: StackNames,
        *,
        poll_seconds: int = 10,
        heartbeat_seconds: int = 60,
        idle_seconds: int = 900,
    ):
        self.sqs = sqs
        self.names = names
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.idle_seconds = idle_seconds
        self.queue_url: str | None = None
        self._lock = threading.Lock()
        self._waiters: dict[str, Waiter] = {}
        self._completed: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self._last_sweep = 0.0

    # --- life -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._create_queue()
        self.sweep()
        self._thread = threading.Thread(target=self._listen, name="reply-listener", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and delete the queue; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self.queue_url:
            try:
                self.sqs.delete_queue(QueueUrl=self.queue_url)
                log.info("reply_queue_deleted", queue=self.queue_url)
            except (BotoCoreError, ClientError) as error:
                log.warning("reply_queue_delete_failed", queue=self.queue_url, error=str(error))
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _create_queue(self) -> None:
        name = reply_queue_name(self.names)
        self.queue_url = self.sqs.create_queue(
            QueueName=name,
            Attributes={"MessageRetentionPeriod": str(REPLY_RETENTION_SECONDS), "VisibilityTimeout": "30"},
            tags={**self.names.tags, HEARTBEAT_TAG: str(int(time.time()))},
        )["QueueUrl"]
        self._last_heartbeat = time.monotonic()
        log.info("reply_queue_created", queue=self.queue_url)

    def is_ready(self) -> bool:
        """Whether this process's reply queue exists and answers."""
        try:
            self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except (BotoCoreError, ClientError):
            return False
        return self._thread is not None and self._thread.is_alive()

    # --- waiting for replies --------------------------------------------------------------------------

    def expect(self, request_id: str, correlation_id: str, numbers: list[int]) -> Waiter:
        """Register interest before the request is sent, so an early reply is never missed."""
        waiter = Waiter(request_id, correlation_id, numbers)
        with self._lock:
            self._waiters[request_id] = waiter
        return waiter

    def wait(self, waiter: Waiter, timeout: float) -> bool:
        """Wait for the reply; the waiter stops being registered either way."""
        try:
            return waiter.event.wait(timeout)
        finally:
            with self._lock:
                self._waiters.pop(waiter.request_id, None)
                if waiter.reply is not None:
                    self._remember(waiter.reply, waiter.received_at or contract.utc_now())

    def forget(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.pop(waiter.request_id, None)

    def completed(self, request_id: str) -> tuple[dict[str, Any], str] | None:
        """A reply this process received (and when), if it still remembers it."""
        with self._lock:
            return self._completed.get(request_id)

    def _remember(self, reply: dict[str, Any], received_at: str) -> None:
        self._completed[reply["id"]] = (reply, received_at)
        self._completed.move_to_end(reply["id"])
        while len(self._completed) > COMPLETED_CACHE_SIZE:
            self._completed.popitem(last=False)

    def _deliver(self, body: str) -> None:
        received_at = contract.utc_now()
        try:
            reply = contract.decode_result(body)
        except contract.MalformedMessage as error:
            log.warning("reply_malformed", error=str(error))
            return
        request_id = reply["id"]
        with self._lock, structlog.contextvars.bound_contextvars(request_id=request_id):
            if request_id in self._completed:
                log.info("reply_duplicate_ignored")
                return
            waiter = self._waiters.get(request_id)
            if waiter is None:
                # The request gave up waiting (it answered 202); keep the reply for a later GET.
                self._remember(reply, received_at)
                log.info("reply_after_wait")
                return
            if reply["correlation_id"] != waiter.correlation_id:
                log.warning("reply_correlation_mismatch")
                return
            if waiter.reply is not None:
                log.info("reply_duplicate_ignored")  # a redelivery before the waiter woke up
                return
            waiter.reply, waiter.received_at = reply, received_at
            waiter.event.set()

    # --- the listener thread --------------------------------------------------------------------------

    def _listen(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._heartbeat()
                response = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.poll_seconds
                )
                failures = 0
            except (BotoCoreError, ClientError) as error:
                if self._stopping.is_set():
                    return  # close() deleted the queue under the poll
                if isinstance(error, ClientError) and aws.is_missing_queue(error):
                    # Deleted under us (a sweep, an operator): carry on with a new queue.
                    log.warning("reply_queue_missing", queue=self.queue_url)
                    self._recreate()
                else:
                    failures += 1
                    self._pause(failures, error)
                continue
            messages = response.get("Messages", [])
            for message in messages:
                self._deliver(message["Body"])
            if messages:
                self._delete(messages)

    def _pause(self, failures: int, error: Exception) -> None:
        delay = min(30, 2**failures)
        log.warning("reply_receive_failed", error=str(error), retry_in_seconds=delay)
        self._stopping.wait(delay)

    def _recreate(self) -> None:
        try:
            self._create_queue()
        except (BotoCoreError, ClientError) as error:
            log.warning("reply_queue_create_failed", error=str(error))
            self._stopping.wait(2)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        try:
            response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as error:
            # Not deleted means seen again; duplicates are ignored above.
            log.warning("reply_delete_failed", error=str(error))
            return
        for failure in response.get("Failed", []):
            log.warning("reply_delete_entry_failed", code=failure.get("Code"))

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat >= self.heartbeat_seconds:
            self.sqs.tag_queue(QueueUrl=self.queue_url, Tags={HEARTBEAT_TAG: str(int(time.time()))})
            self._last_heartbeat = time.monotonic()
        # Every process sweeps, but only a few times per idle period: each sweep lists all queues.
        if time.monotonic() - self._last_sweep >= self.idle_seconds / 3:
            self.sweep()

    # --- sweeping the queues of dead processes -----------------------------------------------------------

    def sweep(self) -> list[str]:
        """Delete reply queues whose heartbeat is older than the idle period; return their URLs."""
        self._last_sweep = time.monotonic()
        swept = []
        now = time.time()
        try:
            queues = reply_queues(self.sqs, self.names)
        except (BotoCoreError, ClientError) as error:
            log.warning("reply_sweep_failed", error=str(error))
            return swept
        for url, tags in queues.items():
            try:
                idle = now - float(tags.get(HEARTBEAT_TAG, "0"))
            except ValueError:
                idle = now
            if url == self.queue_url or idle <= self.idle_seconds:
                continue
            try:
                self.sqs.delete_queue(QueueUrl=url)
            except (BotoCoreError, ClientError) as error:
                log.info("reply_sweep_skipped", queue=url, error=str(error))
                continue
            swept.append(url)
            log.info("reply_queue_swept", queue=url, idle_seconds=int(idle))
        return swept
