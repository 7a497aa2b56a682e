"""The logger's life: settings, clients, the log-queue loop, and a warm stop on SIGTERM."""

from __future__ import annotations

import re
import secrets
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from logger.settings import LoggerSettings
from logger.stats_writer import StatsWriter
from qcompute import aws, contract, logs, payloads
from qcompute.consumer import Consumer, Message, Outcome, Poison, Retry, failure, install_stop_signals
from qcompute.settings import ConfigError
from qcompute.validation import read_integer

log = logs.get_logger("logger")
# After a warm stop (a long poll of at most 20 s, then the batch in hand), the last window's one PUT
# must still fit in compose's 30 s stop grace period.
STATS_FINAL_WRITE_SECONDS = 5
# Object metadata naming the PUT that created a log object (see RecordWriter._create).
WRITE_ID_KEY = "write-id"


class RecordWriter:
    """Write each result record to `logs/YYYY/MM/DD/<request-id>.json`, the batch in parallel.

    The key comes from the request id alone and the write is conditional (If-None-Match: *), so a
    redelivered record finds its object already there and leaves it as the first write made it.
    Numbers and results that travelled through S3 (claim checks) are written into the record, so a
    log object always holds the whole request; their payload objects are deleted afterwards, as is
    the cancel marker of a cancelled request.
    """

    def __init__(
        self, clients: aws.Clients, loops: int, on_logged: Callable[[dict[str, Any]], None] | None = None
    ):
        self.clients = clients
        # Told of each record written for the first time: the status page's counts.
        self.on_logged = on_logged
        self.bucket = clients.names.log_bucket
        self.pool = ThreadPoolExecutor(max_workers=10 * loops, thread_name_prefix="s3-write")
        # One record with stored payloads at a time: a million numbers and their sorted copy are the
        # logger's memory.
        self.large = threading.BoundedSemaphore(1)

    def __call__(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        outcomes = self.pool.map(self._write, messages)
        return {message.message_id: outcome for message, outcome in zip(messages, outcomes, strict=True)}

    def _write(self, message: Message) -> Outcome:
        with structlog.contextvars.bound_contextvars(message_id=message.message_id, queue="logs"):
            try:
                # Long integers stay text: the record is written back without converting them.
                record = contract.decode_result(message.body, parse_int=read_integer)
            except contract.MalformedMessage as error:
                return Poison(str(error))
            structlog.contextvars.bind_contextvars(request_id=record["id"])
            key = contract.log_key(record["id"])
            try:
                if not _payload_keys(record):
                    outcome = self._store(record, message.body, key)
                else:
                    with self.large:
                        outcome = self._store(record, message.body, key)
                if outcome is None and record.get("user"):
                    self._add_to_history(record)
                return outcome
            except (BotoCoreError, ClientError) as error:
                return failure("S3 write failed", error)

    def _add_to_history(self, record: dict[str, Any]) -> None:
        """The account's own history entry, written after the log so it never names a missing one;
        a failure retries the message, and writing the entry again is harmless."""
        self.clients.s3.put_object(
            Bucket=self.bucket,
            Key=contract.user_key(record["user"], record["id"]),
            Body=b"",
            ContentType="application/json",
            Metadata=_summary(record),
        )

    def _store(self, record: dict[str, Any], body: str, key: str) -> Outcome:
        stored = _payload_keys(record)
        parts = [body.encode()]
        if stored:
            whole = self._with_payloads(record, stored)
            if whole is None:
                if payloads.exists(self.clients.s3, self.bucket, key):
                    log.info("already_logged", key=key)  # and its payloads cleaned up
                    return None
                return Retry("a stored payload of this record is missing")
            parts = whole
        upload = payloads.Joined(parts)
        if self._create(key, upload, _summary(record)):
            log.info("logged", key=key, status=record["status"], bytes=upload.size)
            self._count(record)
        else:
            log.info("already_logged", key=key)
        # A cancelled request's marker has done its work once its record is written.
        done_with = [
            *stored.values(),
            *([contract.cancel_key(record["id"])] if record["status"] == "cancelled" else []),
        ]
        if done_with:
            try:
                payloads.delete(self.clients.s3, self.bucket, done_with)
            except (BotoCoreError, ClientError) as error:
                # Harmless: the bucket's lifecycle rule removes payloads left behind.
                log.warning("payload_cleanup_failed", error=str(error))
        return None

    def _create(self, key: str, upload: payloads.Joined, metadata: dict[str, str]) -> bool:
        """Create the object unless it exists; True if this call created it.

        A PUT that took effect but whose answer was lost (a reset, a 500 after the write) is retried by
        the SDK and refused as if the record were a redelivery's. The id in the object's metadata
        tells the two apart: this call's own write is counted, once."""
        write_id = secrets.token_hex(8)
        try:
            self.clients.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=upload,
                ContentLength=upload.size,
                ContentType="application/json",
                Metadata={**metadata, WRITE_ID_KEY: write_id},
                IfNoneMatch="*",
            )
        except ClientError as error:
            if aws.error_code(error) != "PreconditionFailed":
                raise
            found = self.clients.s3.head_object(Bucket=self.bucket, Key=key)["Metadata"]
            return found.get(WRITE_ID_KEY) == write_id
        return True

    def _count(self, record: dict[str, Any]) -> None:
        if self.on_logged is None:
            return
        try:
            self.on_logged(record)
        except Exception:  # counting for the charts must never fail a record
            log.exception("stats_count_failed")

    def _with_payloads(self, record: dict[str, Any], stored: dict[str, str]) -> list[bytes] | None:
        """The record with its stored numbers and results written in, as parts to upload one after
        the other (the payloads as S3 gave them, never joined or converted), or None if one is missing."""
        found = {part: payloads.get(self.clients.s3, self.bucket, key) for part, key in stored.items()}
        if None in found.values():
            return None
        # Each payload's place in the record is marked, then the marks are replaced by the payloads.
        marks = {part: f"@@{secrets.token_hex(8)}-{part}@@" for part in found}
        whole = {k: v for k, v in record.items() if k != "results_ref"}
        if "results" in found:
            whole["results"] = contract.RawJSON(marks["results"])
        if "numbers" in found:
            request = {k: v for k, v in record["request"].items() if k != "numbers_ref"}
            whole["request"] = {**request, "numbers": contract.RawJSON(marks["numbers"])}
        parts: list[bytes] = []
        by_mark = {mark: part for part, mark in marks.items()}
        for piece in re.split(f"({'|'.join(map(re.escape, by_mark))})", contract.encode_raw(whole)):
            parts.append(found[by_mark[piece]] if piece in by_mark else piece.encode())
        return parts


def _payload_keys(record: dict[str, Any]) -> dict[str, str]:
    keys = {}
    if "results_ref" in record:
        keys["results"] = record["results_ref"]
    if "numbers_ref" in record.get("request", {}):
        keys["numbers"] = record["request"]["numbers_ref"]
    return keys


def _summary(record: dict[str, Any]) -> dict[str, str]:
    """What the history page shows, as object metadata: it reads no object body to list requests."""
    request, timings = record.get("request", {}), record["timings"]
    return {
        **({"user": record["user"]} if record.get("user") else {}),
        "status": record["status"],
        "operations": ",".join(str(name) for name in request.get("operations", []))[:1000],
        "count": str(request.get("count", "")),
        "total-ms": str(contract.millis_between(timings["submitted_at"], timings["computed_at"])),
    }


def main() -> None:
    try:
        settings = LoggerSettings.from_env()
    except ConfigError as error:
        sys.exit(f"logger: configuration error: {error}")
    logs.configure("logger", settings.log_level, settings.log_format)
    try:
        clients = aws.connect(settings.stack, pool_size=10 * settings.loops)
        queue_url = aws.queue_url(clients.sqs, clients.names.log_queue)
        dead_letter_url = aws.queue_url(clients.sqs, clients.names.log_dlq)
    except (BotoCoreError, ClientError) as error:
        log.error("startup_failed", error=str(error), hint=aws.STARTUP_HINT)
        sys.exit(1)
    stats_writer = StatsWriter(clients, settings.logger_name, settings.stats_flush_seconds)
    consumer = Consumer(
        clients.sqs,
        queue_url,
        dead_letter_url,
        RecordWriter(clients, settings.loops, stats_writer.logged),
        wait_seconds=settings.long_poll_seconds,
        health_file=settings.health_file,
        loops=settings.loops,
    )
    install_stop_signals(consumer.stop)
    log.info(
        "logger_started",
        stack=clients.names.stack,
        bucket=clients.names.log_bucket,
        name=settings.logger_name,
    )
    stats_writer.start()
    consumer.run()
    # A warm stop: the last window, with what the last batches counted (a forced one skips it).
    stats_writer.stop(timeout=STATS_FINAL_WRITE_SECONDS)
