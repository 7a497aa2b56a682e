"""The worker's life: settings, clients, the request loop, and a warm stop on SIGTERM."""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from qcompute import aws, contract, logs, payloads
from qcompute.consumer import (
    Consumer,
    Message,
    Outage,
    Outcome,
    Poison,
    Retry,
    failure,
    install_stop_signals,
)
from qcompute.settings import ConfigError
from qcompute.validation import loads_untrusted
from worker.cancels import CancelMarkers
from worker.compute import Calculator, ComputeFailed, answer, cancelled
from worker.settings import WorkerSettings

log = logs.get_logger("worker")


# Pauses before a reply refused by a new reply queue is sent again (see RequestHandler._send_patiently).
# "Not found" is also what a queue of a process that died answers, so it gets less patience.
REPLY_DENIED_PAUSES = (0.5, 1.0, 1.5, 2.0, 2.0)
REPLY_NOT_FOUND_PAUSES = (0.5, 1.0)


class RequestHandler:
    """Compute a batch, reply to each requester, publish every result; report each message's outcome.

    A message is done when its result is published (the logger's copy, which is what the pages read
    when a reply does not come). Its reply is sent too, and tried again for a few seconds if refused;
    a reply that cannot be sent is logged, not a reason to compute again. A failed publish is retried:
    redelivery is harmless, as the result lands on the same S3 key and the frontend shows one reply
    per request.
    """

    def __init__(self, clients: aws.Clients, settings: WorkerSettings, calculator: Calculator):
        self.clients = clients
        self.settings = settings
        self.calculator = calculator
        # One request large enough to travel through S3 at a time: its numbers are the worker's memory.
        self.large = threading.BoundedSemaphore(1)
        # Which requests someone cancelled, listed at most once per CANCEL_CHECK_SECONDS for all loops.
        self.cancels = CancelMarkers(clients.s3, clients.names.log_bucket, settings.cancel_check_seconds)

    def __call__(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        records: dict[str, dict[str, Any]] = {}
        replies: dict[str, str | None] = {}
        requests: dict[str, dict[str, Any]] = {}
        for message in messages:
            with structlog.contextvars.bound_contextvars(message_id=message.message_id, queue="requests"):
                try:
                    requests[message.message_id] = contract.decode_request(message.body)
                except contract.MalformedMessage as error:
                    outcomes[message.message_id] = Poison(str(error))
        skipped = self.cancels.among([request["id"] for request in requests.values()])
        for message in messages:
            if message.message_id not in requests:
                continue
            request = requests[message.message_id]
            with structlog.contextvars.bound_contextvars(
                message_id=message.message_id, queue="requests", request_id=request["id"]
            ):
                try:
                    if request["id"] in skipped:
                        handled = self._skip(message, request)
                    else:
                        handled = self._answer(message, request)
                except contract.MalformedMessage as error:
                    outcomes[message.message_id] = Poison(str(error))
                    continue
                except (BotoCoreError, ClientError) as error:
                    outcomes[message.message_id] = failure("payload storage failed", error)
                    continue
                except ComputeFailed as error:
                    log.error("compute_failed", error=str(error))
                    outcomes[message.message_id] = Retry(str(error))
                    continue
                if handled is None:
                    continue  # done long ago: its record is logged and its payloads cleaned up
                records[message.message_id], replies[message.message_id] = handled
        # The replies first, then the publish: someone waits on each reply, nobody on the log's copy.
        # Sent together, the two calls slowed each other (the worker's GIL, and the emulator's), and a
        # lone request's reply took 6 ms instead of 2. The batch now takes both calls in turn; the
        # other receive loops keep the queue moving meanwhile. (A failed publish brings the message
        # back, and its reply is sent again: the frontend keeps the first.)
        self._send_replies(records, replies)
        outcomes.update(self._publish(records))
        return outcomes

    def _skip(self, message: Message, request: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """A cancelled request: not computed; its cancelled record goes the way of any result."""
        record = cancelled(
            request, self.settings.limits, worker=self.settings.worker_name, attempt=message.receive_count
        )
        log.info("cancelled", count=record["request"]["count"], attempt=message.receive_count)
        return self._fit(record), request.get("reply_to")

    def _answer(self, message: Message, request: dict[str, Any]) -> tuple[dict[str, Any], str | None] | None:
        """The request's record (fitted to a message) and where to reply, or None if long done."""
        if "numbers_ref" not in request:
            return self._compute(message, request, request.get("numbers"))
        with self.large:
            numbers = self._stored_numbers(request)
            if numbers is None:
                return None
            return self._compute(message, request, numbers)

    def _compute(
        self, message: Message, request: dict[str, Any], numbers: Any
    ) -> tuple[dict[str, Any], str | None]:
        record = answer(
            request, numbers, self.calculator, worker=self.settings.worker_name, attempt=message.receive_count
        )
        log.info(
            "computed",
            status=record["status"],
            count=record["request"]["count"],
            operations=len(record["request"]["operations"]),
            compute_ms=record["timings"]["compute_ms"],
            parallel=self.calculator.in_parallel(
                record["request"]["count"] or 0, record["request"]["operations"]
            ),
            attempt=message.receive_count,
        )
        return self._fit(record), request.get("reply_to")

    def _stored_numbers(self, request: dict[str, Any]) -> Any:
        s3, bucket = self.clients.s3, self.clients.names.log_bucket
        stored = payloads.get(s3, bucket, request["numbers_ref"])
        if stored is not None:
            try:
                return loads_untrusted(stored)
            except (ValueError, RecursionError) as error:
                raise contract.MalformedMessage(f"stored numbers are not JSON: {error}") from None
        if payloads.exists(s3, bucket, contract.log_key(request["id"])):
            log.info("already_logged_redelivery")
            return None
        raise contract.MalformedMessage("its stored numbers are gone and it was never logged")

    def _fit(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store what does not fit in a message (results first, then the echoed numbers) in S3."""
        limit = self.settings.limits.max_message_bytes
        # A result list longer than half the limit cannot fit (an item takes two bytes at least):
        # then the record is not encoded whole just to learn so.
        surely_too_long = any(isinstance(v, list) and 2 * len(v) > limit for v in record["results"].values())
        if not surely_too_long and contract.fits(contract.encode(record), limit):
            return record
        s3, bucket = self.clients.s3, self.clients.names.log_bucket
        payloads.put(s3, bucket, contract.payload_key(record["id"], "result"), record["results"])
        record = contract.with_results_stored(record)
        numbers = record["request"].get("numbers")
        if numbers is not None and not contract.fits(contract.encode(record), limit):
            payloads.put(s3, bucket, contract.payload_key(record["id"], "request"), numbers)
            light = {k: v for k, v in record["request"].items() if k != "numbers"}
            record = {
                **record,
                "request": {**light, "numbers_ref": contract.payload_key(record["id"], "request")},
            }
        return record

    def _send_replies(self, records: dict[str, dict[str, Any]], reply_to: dict[str, str | None]) -> None:
        by_queue: dict[str, list[dict[str, str]]] = defaultdict(list)
        for message_id, record in records.items():
            if reply_to[message_id]:
                body = contract.encode(contract.reply_from_record(record))
                by_queue[reply_to[message_id]].append({"Id": message_id, "MessageBody": body})
        for queue_url, entries in by_queue.items():
            for batch in aws.batches(entries, "MessageBody", self.settings.limits.max_message_bytes):
                self._send_reply_batch(queue_url, batch, records)

    def _send_reply_batch(
        self, queue_url: str, batch: list[dict[str, str]], records: dict[str, dict[str, Any]]
    ) -> None:
        """Send replies; log any that cannot be delivered (their requesters find the results in the log)."""
        try:
            response = self._send_patiently(queue_url, batch)
        except (BotoCoreError, ClientError) as error:
            gone = isinstance(error, ClientError) and aws.is_missing_queue(error)
            for entry in batch:
                log.warning(
                    "reply_queue_gone" if gone else "reply_failed",
                    request_id=records[entry["Id"]]["id"],
                    queue=queue_url,
                    error=str(error),
                )
            return
        for failed in response.get("Failed", []):
            log.warning(
                "reply_failed",
                request_id=records[failed["Id"]]["id"],
                code=failed.get("Code"),
                error=failed.get("Message"),
            )

    def _send_patiently(self, queue_url: str, batch: list[dict[str, str]]) -> dict[str, Any]:
        """SendMessageBatch to a reply queue, waiting out what a new queue may answer at first: not
        found for a second or so after its creation, and access denied while IAM catches up with its
        tags (eventual consistency). Computing again would not help; waiting a little does."""
        denied, not_found = iter(REPLY_DENIED_PAUSES), iter(REPLY_NOT_FOUND_PAUSES)
        while True:
            try:
                return self.clients.sqs.send_message_batch(QueueUrl=queue_url, Entries=batch)
            except ClientError as error:
                if aws.is_access_denied(error):
                    pause = next(denied, None)
                elif aws.is_missing_queue(error):
                    pause = next(not_found, None)
                else:
                    raise
                if pause is None:
                    raise
                log.info("reply_refused_retrying", queue=queue_url, error=str(error), retry_in_seconds=pause)
                time.sleep(pause)

    def _publish(self, records: dict[str, dict[str, Any]]) -> dict[str, Outcome]:
        entries = [
            {"Id": message_id, "Message": contract.encode(record)} for message_id, record in records.items()
        ]
        outcomes: dict[str, Outcome] = {}
        topic = self.clients.names.results_topic_arn
        for batch in aws.batches(entries, "Message", self.settings.limits.max_message_bytes):
            try:
                response = self.clients.sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=batch)
            except (BotoCoreError, ClientError) as error:
                outcomes.update({entry["Id"]: failure("publish failed", error) for entry in batch})
                continue
            for failed in response.get("Failed", []):
                reason = f"publish failed: {failed.get('Code')} {failed.get('Message')}"
                # An entry SNS failed on its side (not the sender's fault) is an outage, like a 5xx.
                outcomes[failed["Id"]] = Retry(reason) if failed.get("SenderFault") else Outage(reason)
        return outcomes


def main() -> None:
    try:
        settings = WorkerSettings.from_env()
    except ConfigError as error:
        sys.exit(f"worker: configuration error: {error}")
    logs.configure("worker", settings.log_level, settings.log_format)
    contract.allow_big_integers()
    try:
        clients = aws.connect(settings.stack, pool_size=4 * settings.loops)
        names = clients.names
        queue_url = aws.queue_url(clients.sqs, names.requests_queue)
        dead_letter_url = aws.queue_url(clients.sqs, names.requests_dlq)
    except (BotoCoreError, ClientError) as error:
        log.error("startup_failed", error=str(error), hint=aws.STARTUP_HINT)
        sys.exit(1)
    calculator = Calculator(settings.limits, settings.processes, settings.parallel_from)
    consumer = Consumer(
        clients.sqs,
        queue_url,
        dead_letter_url,
        RequestHandler(clients, settings, calculator),
        wait_seconds=settings.long_poll_seconds,
        health_file=settings.health_file,
        loops=settings.loops,
    )
    install_stop_signals(consumer.stop)
    log.info("worker_started", stack=names.stack, worker=settings.worker_name, processes=settings.processes)
    try:
        consumer.run()
    finally:
        calculator.close()
