"""The logger's life: settings, clients, the log-queue loop, and a warm stop on SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from logger.settings import LoggerSettings
from qcompute import aws, contract, logs
from qcompute.consumer import Consumer, Message, Outcome, Poison, Retry, install_stop_signals
from qcompute.settings import ConfigError
from qcompute.validation import read_integer

log = logs.get_logger("logger")


class RecordWriter:
    """Write each result record to `logs/YYYY/MM/DD/<request-id>.json`, the batch in parallel.

    The key comes from the request id alone and the write is conditional (If-None-Match: *), so a
    redelivered record finds its object already there and leaves it as the first write made it.
    """

    def __init__(self, clients: aws.Clients):
        self.clients = clients
        self.pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="s3-write")

    def __call__(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        outcomes = self.pool.map(self._write, messages)
        return {message.message_id: outcome for message, outcome in zip(messages, outcomes, strict=True)}

    def _write(self, message: Message) -> Outcome:
        with structlog.contextvars.bound_contextvars(message_id=message.message_id, queue="logs"):
            try:
                # The record is stored as it came; long integers in it need never become ints.
                record = contract.decode_result(message.body, parse_int=read_integer)
            except contract.MalformedMessage as error:
                return Poison(str(error))
            key = contract.log_key(record["id"])
            try:
                self.clients.s3.put_object(
                    Bucket=self.clients.names.log_bucket,
                    Key=key,
                    Body=message.body.encode(),
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
            except ClientError as error:
                if aws.error_code(error) == "PreconditionFailed":
                    log.info("already_logged", request_id=record["id"], key=key)
                    return None
                return Retry(f"S3 write failed: {error}")
            except BotoCoreError as error:
                return Retry(f"S3 write failed: {error}")
            log.info("logged", request_id=record["id"], key=key, status=record["status"])
            return None


def main() -> None:
    try:
        settings = LoggerSettings.from_env()
    except ConfigError as error:
        sys.exit(f"logger: configuration error: {error}")
    logs.configure("logger", settings.log_level, settings.log_format)
    try:
        clients = aws.connect(settings.stack)
        queue_url = aws.queue_url(clients.sqs, clients.names.log_queue)
        dead_letter_url = aws.queue_url(clients.sqs, clients.names.log_dlq)
    except (BotoCoreError, ClientError) as error:
        log.error("startup_failed", error=str(error), hint=aws.STARTUP_HINT)
        sys.exit(1)
    consumer = Consumer(
        clients.sqs,
        queue_url,
        dead_letter_url,
        RecordWriter(clients),
        wait_seconds=settings.long_poll_seconds,
        health_file=settings.health_file,
    )
    install_stop_signals(consumer.stop)
    log.info("logger_started", stack=clients.names.stack, bucket=clients.names.log_bucket)
    consumer.run()
