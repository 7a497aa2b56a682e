"""What the pages and the API do: submit a request, wait for its reply, find a result, list history.

Both the web pages and the JSON API call these methods, so they share one code path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from frontend.history import NewestFirst, NoPage
from frontend.memory import LARGE_BYTES
from frontend.replies import ReplyChannel, Waiter
from frontend.settings import FrontendSettings
from qcompute import aws, contract, payloads
from qcompute.logs import get_logger
from qcompute.messages import N_, Explained

log = get_logger(__name__)


class Unavailable(Explained):
    """AWS could not be reached (after botocore's retries): the user should try again shortly."""


class Overloaded(Explained):
    """More requests wait in the request queue than MAX_BACKLOG: new ones must wait outside."""


# How long a process believes the request queue's depth: admission control costs one call per interval.
BACKLOG_CHECK_SECONDS = 2.0
# A GET that waits for a result reads the S3 log this often: the reply may have gone to another
# process's reply queue, and the log is where every process finds it. One GetObject per interval and
# waiting client (a 30 s wait makes 60 of them) is far below what S3 serves a prefix per second, and the
# result shows at most this late; a reply to this process's own queue wakes the wait at once.
LOG_POLL_SECONDS = 0.5
# How often a finished request's log record is read while a wait asks for its numbers (it is usually
# written within tens of milliseconds of the reply).
NUMBERS_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Viewer:
    """Whose requests someone may see: their own account's ("" is nobody's: open mode), or, for
    admins and in open mode, everyone's (`names` then lists every known submitter, for ids that have
    no record yet)."""

    names: frozenset[str]
    everyone: bool = False

    @property
    def own(self) -> str:
        return next(iter(self.names))


# Open mode, and the status page (admins only): every request.
EVERYONE = Viewer(frozenset({""}), everyone=True)


@dataclass(frozen=True)
class Outcome:
    """A finished request as the pages and the API show it."""

    id: str
    status: str  # "done", "error" or "cancelled"
    numbers: list[int] | None  # None when neither the reply nor the log holds them
    numbers_count: int
    operations: list[str]
    results: dict[str, Any]
    errors: dict[str, dict[str, str]]
    error: dict[str, str] | None
    timings: dict[str, Any]
    worker: str

    @classmethod
    def from_record(cls, record: dict[str, Any], *, numbers: list[int] | None = None) -> Outcome:
        request = record["request"]
        if numbers is None and isinstance(request.get("numbers"), list):
            numbers = request["numbers"]
        count = request.get("count") if isinstance(request.get("count"), int) else len(numbers or [])
        timings = dict(record["timings"])
        # Submitted to computed, as the logger notes it for the history: one "total" for a request,
        # whichever page or process shows it (the reply's own trip back is not the request's work).
        timings["total_ms"] = contract.millis_between(timings["submitted_at"], timings["computed_at"])
        return cls(
            id=record["id"],
            status=record["status"],
            numbers=numbers,
            numbers_count=len(numbers) if numbers is not None else count,
            operations=list(request.get("operations") or []),
            results=record.get("results") or {},
            errors=record.get("errors") or {},
            error=record.get("error"),
            timings=timings,
            worker=record.get("worker", ""),
        )

    def as_api(self, *, with_numbers: bool = False, integers_as_text: bool = False) -> dict[str, Any]:
        """The API's document; `integers_as_text` writes every integer of the results and numbers as a
        decimal string, exact for any client (JavaScript's numbers lose digits beyond 2**53)."""
        text = integers_as_text
        document: dict[str, Any] = {"id": self.id, "status": self.status}
        if with_numbers:
            document["numbers"] = _integers_as_text(self.numbers) if text else self.numbers
        if self.error:
            document["error"] = self.error
        else:
            document["results"] = _integers_as_text(self.results) if text else self.results
            document["errors"] = self.errors
        document.update(
            operations=self.operations, count=self.numbers_count, timings=self.timings, worker=self.worker
        )
        return document


def _integers_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return [_integers_as_text(item) for item in value]
    if isinstance(value, dict):
        return {key: _integers_as_text(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Lookup:
    status: str  # "done", "error", "cancelled", "pending", "expired" or "unknown"
    outcome: Outcome | None = None
    # Finished, but known only from a reply: the numbers asked for are in the log record, not here yet.
    without_numbers: bool = False


class Submissions:
    def __init__(
        self,
        clients: aws.Clients,
        settings: FrontendSettings,
        channel: ReplyChannel,
        reserve_large: Callable[[], None] = lambda: None,
    ):
        self.clients = clients
        self.settings = settings
        self.channel = channel
        # Called before a large object is read: it may wait, or raise memory.Busy.
        self.reserve_large = reserve_large
        self.secret = settings.secret_key.encode()
        self.requests_url = aws.queue_url(clients.sqs, clients.names.requests_queue)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-read")
        self.backlog = (0, -BACKLOG_CHECK_SECONDS)  # (depth, when read)
        self.newest = NewestFirst(clients.s3, clients.names.log_bucket)

    # --- submitting -----------------------------------------------------------------------------------

    def admit(self) -> None:
        """Admission control: refuse new work while the request queue holds more than MAX_BACKLOG."""
        depth, read_at = self.backlog
        if time.monotonic() - read_at >= BACKLOG_CHECK_SECONDS:
            try:
                attributes = self.clients.sqs.get_queue_attributes(
                    QueueUrl=self.requests_url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
            except (BotoCoreError, ClientError) as error:
                raise Unavailable(
                    N_("the request queue cannot be reached; please try again shortly")
                ) from error
            depth = int(attributes.get("ApproximateNumberOfMessages", 0))
            self.backlog = (depth, time.monotonic())
        if depth > self.settings.max_backlog:
            log.warning("backlog_full", depth=depth, limit=self.settings.max_backlog)
            raise Overloaded(
                N_("%(depth)s requests are waiting to be computed; please try again in a minute"), depth=depth
            )

    def submit(self, numbers: list[int], operations: list[str], user: str = "") -> Waiter:
        """Send the request; the returned waiter is registered before the send, so no reply is missed.
        `user` is the submitting account ("" when open): the id is signed for it, the record names it."""
        request_id = contract.new_request_id(self.secret, user=user)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        correlation_id = contract.new_request_id(self.secret)
        message = contract.request_message(
            request_id,
            numbers,
            operations,
            reply_to=self.channel.queue_url,
            correlation_id=correlation_id,
            submitted_at=contract.utc_now(),
            user=user or None,
        )
        limit = self.settings.limits.max_message_bytes
        # A number takes two bytes at least (a digit and a comma): more than half the limit of them
        # cannot fit, and is not encoded to find out (85 ms for a million).
        body = contract.encode(message) if len(numbers) * 2 <= limit else None
        if body is None or not contract.fits(body, limit):
            # Too large for a message: the numbers wait in S3 and the message carries their key.
            del body
            message = contract.with_numbers_stored(message)
            self._store(message["numbers_ref"], numbers)
            body = contract.encode(message)
        waiter = self.channel.expect(request_id, correlation_id, numbers)
        try:
            self.clients.sqs.send_message(QueueUrl=self.requests_url, MessageBody=body)
        except (BotoCoreError, ClientError) as error:
            self.channel.forget(waiter)
            log.error("submit_failed", error=str(error))
            raise Unavailable(N_("the request queue cannot be reached; please try again shortly")) from error
        log.info(
            "submitted",
            numbers=len(numbers),
            operations=len(operations),
            stored="numbers_ref" in message,
        )
        return waiter

    def _store(self, key: str, numbers: list[int]) -> None:
        try:
            payloads.put(self.clients.s3, self.clients.names.log_bucket, key, numbers)
        except (BotoCoreError, ClientError) as error:
            log.error("store_failed", key=key, error=str(error))
            raise Unavailable(N_("the request cannot be stored; please try again shortly")) from error

    def wait(self, waiter: Waiter, timeout: float) -> Outcome | None:
        if not self.channel.wait(waiter, timeout):
            log.info("reply_pending", waited_seconds=timeout)
            return None
        assert waiter.reply is not None
        record = self._with_results(waiter.reply)
        return Outcome.from_record(record, numbers=waiter.numbers)

    def _with_results(self, record: dict[str, Any]) -> dict[str, Any]:
        """A reply whose results were stored in S3, with them read back (from the log if the
        logger has already written it and cleaned the payload up)."""
        if "results_ref" not in record:
            return record
        stored = self._get(record["results_ref"], N_("the results cannot be read; please try again shortly"))
        if stored is not None:
            return {**record, "results": json.loads(stored)}
        logged = self._read_record(contract.log_key(record["id"]))
        if logged is None:
            raise Unavailable(N_("the results are being written; please try again shortly"))
        return {**record, "results": logged["results"]}

    # --- finding results ----------------------------------------------------------------------------------

    def find(
        self,
        request_id: str,
        viewer: Viewer,
        *,
        with_numbers: bool = False,
        wait: float = 0,
        numbers_grace: float | None = None,
    ) -> Lookup:
        """The request's state; while it is pending, wait up to `wait` seconds for its result (the
        process's own replies wake the wait, the log is read every LOG_POLL_SECONDS).

        A result known only from a reply lacks the numbers, which the log record brings a moment
        later: `with_numbers` waits for them too, until the wait ends or, with `numbers_grace`, for
        that long once the result is known, whatever the wait (a page shows the result soon either way).
        """
        deadline = time.monotonic() + wait
        while True:
            lookup = self._find_once(request_id, viewer, with_numbers=with_numbers)
            if lookup.without_numbers:
                if numbers_grace is not None:
                    deadline = time.monotonic() + numbers_grace
                return self._with_logged_numbers(request_id, viewer, lookup, deadline)
            remaining = deadline - time.monotonic()
            if lookup.status != "pending" or remaining <= 0 or self.channel.draining:
                return lookup
            self.channel.await_completed(request_id, min(LOG_POLL_SECONDS, remaining))

    def _with_logged_numbers(self, request_id: str, viewer: Viewer, known: Lookup, deadline: float) -> Lookup:
        """The result known from a reply, from its log record (with the numbers) once that is written:
        only the record is read again, every NUMBERS_POLL_SECONDS until `deadline`; then as known."""
        key = contract.log_key(request_id)
        while (remaining := deadline - time.monotonic()) > 0 and not self.channel.draining:
            time.sleep(min(NUMBERS_POLL_SECONDS, remaining))
            record = self._read_record(key)
            if record is not None:
                return self._finished(request_id, record, self._signer(request_id, viewer))
        return known

    def _find_once(self, request_id: str, viewer: Viewer, *, with_numbers: bool = False) -> Lookup:
        """This process's replies first, then the S3 log, then what the id itself tells.

        Replies carry no numbers: `with_numbers` prefers the log, which has them once written.
        Another account's request is "unknown", exactly like one that never was.
        """
        signer = self._signer(request_id, viewer)
        if signer is None:
            return Lookup("unknown")
        completed = self.channel.completed(request_id)
        if completed is not None and not with_numbers:
            outcome = Outcome.from_record(self._with_results(completed))
            return Lookup(outcome.status, outcome)
        record = self._read_record(contract.log_key(request_id))
        logged = record is not None
        if record is None and completed is not None:
            record = self._with_results(completed)
        if record is not None:
            return self._finished(request_id, record, signer, without_numbers=with_numbers and not logged)
        age = time.time() - contract.request_time(request_id).timestamp()
        return Lookup("pending" if age < self.settings.pending_timeout_seconds else "expired")

    def _finished(
        self, request_id: str, record: dict[str, Any], signer: str | None, *, without_numbers: bool = False
    ) -> Lookup:
        """A finished request's lookup from its record (the log's, or a reply)."""
        if record.get("user", "") != signer:
            return Lookup("unknown")  # the id's signature and the record disagree: trust neither
        self.channel.resolved(request_id)
        outcome = Outcome.from_record(record)
        return Lookup(outcome.status, outcome, without_numbers=without_numbers)

    def cancel(self, request_id: str, viewer: Viewer) -> str:
        """Ask the workers to skip a request still pending: "cancelling"; otherwise its status as
        `find` tells it ("done", "error", "cancelled", "expired" or "unknown").

        The marker is an S3 object the workers list (worker/cancels.py): no new service or queue.
        Each worker process lists them at most once per CANCEL_CHECK_SECONDS, so a cancel stored
        longer than that before a worker takes the request is honoured; one stored later, or once a
        worker has begun the request, may be computed all the same.
        """
        lookup = self.find(request_id, viewer)
        if lookup.status != "pending":
            return lookup.status
        marker = {
            "id": request_id,
            "user": self._signer(request_id, viewer),
            "cancelled_at": contract.utc_now(),
        }
        try:
            self.clients.s3.put_object(
                Bucket=self.clients.names.log_bucket,
                Key=contract.cancel_key(request_id),
                Body=contract.encode(marker).encode(),
                ContentType="application/json",
            )
        except (BotoCoreError, ClientError) as error:
            raise Unavailable(N_("the cancellation cannot be stored; please try again shortly")) from error
        log.info("cancel_requested", request_id=request_id)
        return "cancelling"

    def _signer(self, request_id: str, viewer: Viewer) -> str | None:
        """Which of the viewer's accounts issued this id, if any ("" for open mode)."""
        if not contract.is_request_id(request_id):
            return None
        return next(
            (name for name in viewer.names if contract.is_signed_by(request_id, self.secret, name)), None
        )

    def _read_record(self, key: str) -> dict[str, Any] | None:
        stored = self._get(key, N_("the result log cannot be read; please try again shortly"))
        if stored is None:
            return None
        try:
            return contract.decode_result(stored)
        except (contract.MalformedMessage, UnicodeDecodeError) as error:
            log.warning("log_record_malformed", key=key, error=str(error))
            return None

    def _get(self, key: str, failure: str) -> bytes | None:
        """An object of the bucket, or None if there is none; a large one waits for a large-request
        slot before it is read (see memory.py)."""
        try:
            response = self.clients.s3.get_object(Bucket=self.clients.names.log_bucket, Key=key)
            if response["ContentLength"] > LARGE_BYTES:
                self.reserve_large()
            return response["Body"].read()
        except ClientError as error:
            if aws.error_code(error) in {"NoSuchKey", "404"}:
                return None
            raise Unavailable(failure) from error
        except BotoCoreError as error:
            raise Unavailable(failure) from error

    # --- history ------------------------------------------------------------------------------------------

    def history(
        self, before: str | None, limit: int, viewer: Viewer
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of past requests, newest first, and the cursor (a request id) of the next page:
        everyone's from the log, or one account's from its own entries."""
        if viewer.everyone:
            prefix, key_of = contract.LOG_PREFIX, contract.log_key
        else:
            prefix, key_of = f"{contract.USER_PREFIX}{viewer.own}/", partial(contract.user_key, viewer.own)
        before_key = key_of(before) if before and contract.is_request_id(before) else None
        try:
            keys = self.newest.before(prefix, before_key, limit + 1)
            summaries = list(self.pool.map(self._summary, keys[:limit]))
        except (BotoCoreError, ClientError, NoPage) as error:
            raise Unavailable(N_("the result log cannot be read; please try again shortly")) from error
        entries = []
        for key, summary in zip(keys[:limit], summaries, strict=True):
            request_id = key.rsplit("/", 1)[-1].removesuffix(".json")
            entries.append(
                {
                    "id": request_id,
                    "submitted_at": contract.format_time(contract.request_time(request_id)),
                    **summary,
                }
            )
        next_cursor = entries[-1]["id"] if len(keys) > limit else None
        return entries, next_cursor

    def _summary(self, key: str) -> dict[str, Any]:
        """What the logger noted in the object's metadata: no body is read, however large."""
        metadata = self.clients.s3.head_object(Bucket=self.clients.names.log_bucket, Key=key)["Metadata"]
        summary: dict[str, Any] = {"status": metadata.get("status", "")}
        if metadata.get("user"):
            summary["user"] = metadata["user"]
        if metadata.get("operations"):
            summary["operations"] = metadata["operations"].split(",")
        if metadata.get("count", "").isdigit():
            summary["count"] = int(metadata["count"])
        if metadata.get("total-ms"):
            summary["total_ms"] = float(metadata["total-ms"])
        return summary
