"""Each frontend process owns one reply queue: replies reach the process that is waiting for them.

A shared reply queue read by several processes hands replies to the wrong process (AWS's
request-response guidance: never share one). So every process creates its own queue at start, names
it in each request (`reply_to`), deletes it at a clean exit, and tags it with a heartbeat; queues of
processes that died without cleaning up are swept by the others once their heartbeat is stale.

Two threads: the listener only receives replies, so nothing else can hold them up; the housekeeper
re-tags the queue, sweeps, and logs `replies_stalled` each round while replies have stalled. SQS
limits tagging calls per account, so they are few and bounded: one heartbeat a minute, a sweep every
third of the idle period, and the status page's view of the reply queues is cached rather than read
per viewer.
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

from frontend.shared_replies import SharedReplies
from qcompute import aws, contract
from qcompute.logs import REPLIES_STALLED, get_logger
from qcompute.messages import N_, Sentence
from qcompute.names import StackNames
from qcompute.provision import reply_queues

log = get_logger(__name__)

HEARTBEAT_TAG = "qcompute:heartbeat"
# Replies nobody reads are worthless after a few minutes.
REPLY_RETENTION_SECONDS = 300
# Completed replies kept in memory for GET /api/requests/<id> from this process.
COMPLETED_CACHE_SIZE = 5_000
# Requests whose reply is awaited, remembered to tell when replies have stalled.
OUTSTANDING_LIMIT = 100_000
# The status page's list of reply queues (and their tags) is read at most this often per process.
QUEUE_LIST_MAX_AGE_SECONDS = 30
# How long a new queue may take to answer (SQS: "wait at least one second" after CreateQueue).
QUEUE_SETTLE_SECONDS = 15
LISTENER_MAX_PAUSE_SECONDS = 5
# How long the listener lets the requests it has just woken run before its own next AWS call (see
# ReplyChannel._hand_over); a bound, not a pause: it goes on as soon as they have their replies.
HANDOVER_SECONDS = 0.01
# A failed heartbeat is tried again this soon, so a live queue is never left looking stale for long.
HEARTBEAT_RETRY_SECONDS = 10


@dataclass
class Waiter:
    request_id: str
    correlation_id: str
    numbers: list[int]
    event: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    # Set once the waiting thread has woken up (see ReplyChannel._hand_over).
    taken: threading.Event = field(default_factory=threading.Event)


def heartbeat_of(tags: dict[str, str]) -> float:
    """When a reply queue's process last beat, from its tags (0 if never, or unreadable)."""
    try:
        return float(tags.get(HEARTBEAT_TAG, "0"))
    except ValueError:
        return 0.0


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
        stall_seconds: int = 60,
        pending_timeout_seconds: int = 600,
        shared: SharedReplies | None = None,
    ):
        self.sqs = sqs
        # The replies of this container's other processes, and where this one shares its own.
        self.shared = shared
        self.names = names
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.idle_seconds = idle_seconds
        self.stall_seconds = stall_seconds
        self.pending_timeout_seconds = pending_timeout_seconds
        self.queue_url: str | None = None
        self._lock = threading.Lock()
        # Notified whenever a reply arrives or the process drains: wakes GETs waiting for a result.
        self._arrived = threading.Condition(self._lock)
        self._waiters: dict[str, Waiter] = {}
        self._completed: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Requests sent from this process whose reply has not come: id -> when sent (monotonic).
        self._outstanding: OrderedDict[str, float] = OrderedDict()
        self._last_reply = time.monotonic()
        self._receive_failing_since: float | None = None
        self._receive_error = ""
        # When this process last saw SQS fail, or answer again after failing (epoch): a queue's
        # heartbeat only counts as stale for the time since, or a sweep right after an outage would
        # delete the queues of live processes that could not beat during it.
        self._last_trouble = 0.0
        self._in_trouble = False
        self._stopping = threading.Event()
        self._draining = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queue_list: tuple[float, dict[str, dict[str, str]]] | None = None
        self._queue_list_lock = threading.Lock()

    # --- life -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._create_queue()
        for target, name in ((self._listen, "reply-listener"), (self._housekeep, "reply-housekeeper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def drain(self) -> None:
        """Stop waiting: every request waiting for its reply answers now, with its id (on SIGTERM)."""
        self._draining.set()
        with self._lock:
            waiters = list(self._waiters.values())
            self._arrived.notify_all()
        for waiter in waiters:
            waiter.event.set()

    def close(self) -> None:
        """Stop listening and delete the queue; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.drain()
        if self.queue_url:
            try:
                self.sqs.delete_queue(QueueUrl=self.queue_url)
                log.info("reply_queue_deleted", queue=self.queue_url)
            except (BotoCoreError, ClientError) as error:
                log.warning("reply_queue_delete_failed", queue=self.queue_url, error=str(error))
        for thread in self._threads:
            thread.join(timeout=1)

    def _create_queue(self) -> None:
        name = reply_queue_name(self.names)
        url = self.sqs.create_queue(
            QueueName=name,
            Attributes={"MessageRetentionPeriod": str(REPLY_RETENTION_SECONDS), "VisibilityTimeout": "30"},
            tags={**self.names.tags, HEARTBEAT_TAG: str(int(time.time()))},
        )["QueueUrl"]
        self._settle(url)
        self.queue_url = url
        log.info("reply_queue_created", queue=url)

    def _settle(self, url: str) -> None:
        """Wait until a new queue answers: SQS asks for a second or so after CreateQueue before use,
        and a request naming it earlier could have its reply refused."""
        deadline = time.monotonic() + QUEUE_SETTLE_SECONDS
        while True:
            try:
                self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
                return
            except ClientError as error:
                if not aws.is_missing_queue(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.25)

    def is_ready(self) -> bool:
        """Whether this process's reply queue exists and its threads run."""
        try:
            self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except (BotoCoreError, ClientError):
            return False
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def health(self) -> dict[str, Any]:
        """Whether replies reach this process: for /readyz and /status."""
        now = time.monotonic()
        with self._lock:
            self._forget_expired(now)
            oldest = next(iter(self._outstanding.values()), None)
            outstanding = len(self._outstanding)
        waited = now - oldest if oldest is not None else 0.0
        silent = now - self._last_reply
        failing = now - self._receive_failing_since if self._receive_failing_since is not None else 0.0
        stalled = outstanding > 0 and waited > self.stall_seconds and silent > self.stall_seconds
        problems = []
        if failing > self.stall_seconds / 2:
            problems.append(
                Sentence(
                    N_("receiving replies has failed for %(seconds)s s: %(error)s"),
                    seconds=round(failing),
                    error=self._receive_error,
                )
            )
        if stalled:
            problems.append(
                Sentence(
                    N_(
                        "replies have stalled: %(count)s request(s) waiting, the oldest for %(waited)s s, "
                        "no reply for %(silent)s s"
                    ),
                    count=outstanding,
                    waited=round(waited),
                    silent=round(silent),
                )
            )
        return {
            "ok": not problems,
            "problems": problems,
            "stalled": stalled,
            "outstanding": outstanding,
            "oldest_outstanding_seconds": round(waited, 1),
            "seconds_since_last_reply": round(silent, 1),
            "receive_failing_seconds": round(failing, 1),
        }

    # --- waiting for replies --------------------------------------------------------------------------

    def expect(self, request_id: str, correlation_id: str, numbers: list[int]) -> Waiter:
        """Register interest before the request is sent, so an early reply is never missed."""
        waiter = Waiter(request_id, correlation_id, numbers)
        with self._lock:
            self._waiters[request_id] = waiter
            self._outstanding[request_id] = time.monotonic()
            while len(self._outstanding) > OUTSTANDING_LIMIT:
                self._outstanding.popitem(last=False)
        return waiter

    def wait(self, waiter: Waiter, timeout: float) -> bool:
        """Wait for the reply (not at all once draining); the waiter stops being registered either way."""
        try:
            if not self._draining.is_set():
                waiter.event.wait(timeout)
            return waiter.reply is not None
        finally:
            waiter.taken.set()
            with self._lock:
                self._waiters.pop(waiter.request_id, None)
                if waiter.reply is not None:
                    self._remember(waiter.reply)
            # Shared before the request answers: a GET that follows, served by a sibling process
            # before the log record exists, finds it too.
            if waiter.reply is not None and self.shared is not None:
                self.shared.put(waiter.reply)

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def await_completed(self, request_id: str, timeout: float) -> bool:
        """Wait up to `timeout` for this request's reply to reach this process (a request sent from
        here whose first wait ended); return whether it is here. Never waits once draining."""
        with self._arrived:
            return (
                self._arrived.wait_for(
                    lambda: request_id in self._completed or self._draining.is_set(), timeout
                )
                and request_id in self._completed
            )

    def forget(self, waiter: Waiter) -> None:
        """The request was never sent."""
        with self._lock:
            self._waiters.pop(waiter.request_id, None)
            self._outstanding.pop(waiter.request_id, None)

    def resolved(self, request_id: str) -> None:
        """Its result was found another way (the log): its reply is no longer awaited."""
        with self._lock:
            self._outstanding.pop(request_id, None)

    def completed(self, request_id: str) -> dict[str, Any] | None:
        """A reply this process received, or another process of its container, if still remembered."""
        with self._lock:
            reply = self._completed.get(request_id)
        if reply is None and self.shared is not None:
            reply = self.shared.get(request_id)
        return reply

    def _remember(self, reply: dict[str, Any]) -> None:
        self._completed[reply["id"]] = reply
        self._completed.move_to_end(reply["id"])
        while len(self._completed) > COMPLETED_CACHE_SIZE:
            self._completed.popitem(last=False)

    def _forget_expired(self, now: float) -> None:
        """Requests older than the pending timeout are reported expired: stop awaiting them."""
        while self._outstanding:
            request_id, sent = next(iter(self._outstanding.items()))
            if now - sent <= self.pending_timeout_seconds:
                return
            del self._outstanding[request_id]

    def _deliver(self, body: str) -> Waiter | None:
        """Hand the reply to the request waiting for it; return that request's waiter if one was woken."""
        try:
            reply = contract.decode_result(body)
        except contract.MalformedMessage as error:
            log.warning("reply_malformed", error=str(error))
            return None
        request_id = reply["id"]
        with self._lock, structlog.contextvars.bound_contextvars(request_id=request_id):
            self._last_reply = time.monotonic()
            self._outstanding.pop(request_id, None)
            self._arrived.notify_all()
            if request_id in self._completed:
                log.info("reply_duplicate_ignored")
                return None
            waiter = self._waiters.get(request_id)
            if waiter is None:
                # The request gave up waiting (it answered 202); keep the reply for a later GET.
                self._remember(reply)
            elif reply["correlation_id"] != waiter.correlation_id:
                log.warning("reply_correlation_mismatch")
                return None
            elif waiter.reply is not None:
                log.info("reply_duplicate_ignored")  # a redelivery before the waiter woke up
                return None
            else:
                waiter.reply = reply
                waiter.event.set()
                return waiter
        if self.shared is not None:
            self.shared.put(reply)  # outside the lock: the waiting requests need it
        # Once every process of the container can find it.
        log.info("reply_after_wait", request_id=request_id)
        return None

    # --- the listener thread: replies only ----------------------------------------------------------------

    def _listen(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                response = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.poll_seconds
                )
            except (BotoCoreError, ClientError) as error:
                if self._stopping.is_set():
                    return  # close() deleted the queue under the poll
                if isinstance(error, ClientError) and aws.is_missing_queue(error):
                    # Deleted under us (a sweep, an operator): carry on with a new queue.
                    log.warning("reply_queue_missing", queue=self.queue_url)
                    self._recreate()
                else:
                    self._trouble(error)
                    failures += 1
                    # botocore has already retried this call for seconds; a waiting user wants the
                    # listener back as soon as SQS is, so the extra pause stays short.
                    delay = min(LISTENER_MAX_PAUSE_SECONDS, 2**failures)
                    log.warning("reply_receive_failed", error=str(error), retry_in_seconds=delay)
                    self._stopping.wait(delay)
                continue
            failures = 0
            self._receive_failing_since = None
            self._recovered()
            messages = response.get("Messages", [])
            woken = [waiter for message in messages if (waiter := self._deliver(message["Body"]))]
            self._hand_over(woken)
            if messages:
                self._delete(messages)

    def _hand_over(self, woken: list[Waiter]) -> None:
        """Let the requests just woken answer before this thread's next AWS call.

        Both need the GIL, and botocore holds it for a millisecond or two building a call before it
        waits on the network: a woken request used to wait that long to run (measured: 1.9 ms of a
        lone request's 26). Waiting here hands the GIL over; the delete and the next long poll follow
        as soon as the requests have their replies, or after HANDOVER_SECONDS at most.
        """
        deadline = time.monotonic() + HANDOVER_SECONDS
        for waiter in woken:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not waiter.taken.wait(remaining):
                return

    def _trouble(self, error: Exception | None = None) -> None:
        self._last_trouble, self._in_trouble = time.time(), True
        if error is not None:
            if self._receive_failing_since is None:
                self._receive_failing_since = time.monotonic()
            self._receive_error = str(error)[:300]

    def _recovered(self) -> None:
        if self._in_trouble:
            self._last_trouble, self._in_trouble = time.time(), False

    def _recreate(self) -> None:
        try:
            self._create_queue()
        except (BotoCoreError, ClientError) as error:
            log.warning("reply_queue_create_failed", error=str(error))
            self._stopping.wait(2)
            return
        # Replies to the old queue are gone: their requests are found in the log instead.
        with self._lock:
            self._outstanding.clear()

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

    # --- the housekeeper thread: heartbeat and sweep -------------------------------------------------------

    def _housekeep(self) -> None:
        next_sweep = time.monotonic()  # a first sweep at start
        while not self._stopping.is_set():
            wait = (
                self.heartbeat_seconds
                if self._heartbeat()
                else min(self.heartbeat_seconds, HEARTBEAT_RETRY_SECONDS)
            )
            self._report_stall()
            if time.monotonic() >= next_sweep:
                self.sweep()
                # Every process sweeps, but only a few times per idle period: each sweep lists all queues.
                next_sweep = time.monotonic() + self.idle_seconds / 3
            self._stopping.wait(min(wait, max(1.0, next_sweep - time.monotonic())))

    def _report_stall(self) -> None:
        """While replies are stalled, say so once a round: the stack's "replies stalled" CloudWatch
        alarm counts these lines (a metric filter on the frontend's log group, deploy/alerts.py)."""
        health = self.health()
        if health["stalled"]:
            log.warning(
                REPLIES_STALLED,
                outstanding=health["outstanding"],
                oldest_outstanding_seconds=health["oldest_outstanding_seconds"],
                seconds_since_last_reply=health["seconds_since_last_reply"],
            )

    def _heartbeat(self) -> bool:
        try:
            self.sqs.tag_queue(QueueUrl=self.queue_url, Tags={HEARTBEAT_TAG: str(int(time.time()))})
        except (BotoCoreError, ClientError) as error:
            self._trouble()
            log.warning("reply_heartbeat_failed", error=str(error))
            return False
        self._recovered()
        return True

    # --- sweeping the queues of dead processes -----------------------------------------------------------

    def sweep(self) -> list[str]:
        """Delete reply queues whose heartbeat is older than the idle period; return their URLs."""
        swept = []
        try:
            queues = self.reply_queues(max_age=0)
        except (BotoCoreError, ClientError) as error:
            self._trouble()
            log.warning("reply_sweep_failed", error=str(error))
            return swept
        now = time.time()
        for url, tags in queues.items():
            heartbeat = heartbeat_of(tags)
            # Nobody could beat while SQS failed: staleness counts from when this process saw it answer again.
            idle = now - max(heartbeat, self._last_trouble)
            if url == self.queue_url or idle <= self.idle_seconds:
                continue
            try:
                self.sqs.delete_queue(QueueUrl=url)
            except (BotoCoreError, ClientError) as error:
                log.info("reply_sweep_skipped", queue=url, error=str(error))
                continue
            swept.append(url)
            log.info("reply_queue_swept", queue=url, idle_seconds=int(now - heartbeat))
        return swept

    def reply_queues(self, max_age: float = QUEUE_LIST_MAX_AGE_SECONDS) -> dict[str, dict[str, str]]:
        """The stack's reply queues and their tags, read again only if the last read is older than
        `max_age`: however many people watch the status page, the tag calls stay bounded."""
        with self._queue_list_lock:
            if self._queue_list is None or time.monotonic() - self._queue_list[0] > max_age:
                self._queue_list = (time.monotonic(), reply_queues(self.sqs, self.names))
            return self._queue_list[1]
