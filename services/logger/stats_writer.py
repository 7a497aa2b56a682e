"""The logger's last-hour window (qcompute.stats): counted as records are written, sampled and written
to S3 by a thread of its own, so writing it never delays or endangers a record.

Cost, per logger at the default STATS_FLUSH_SECONDS=60: one PUT (~$0.005 per 1,000) and four
GetQueueAttributes (~$0.40 per million) a minute, about $0.22 and $0.07 a month.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qcompute import aws, contract, logs, stats

log = logs.get_logger("logger")


class StatsWriter:
    def __init__(self, clients: aws.Clients, name: str, interval_seconds: float):
        self.clients = clients
        self.bucket = clients.names.log_bucket
        self.interval = interval_seconds
        self.window = stats.Window(name, _now())
        self.queue_names = dict(
            zip(
                stats.QUEUES,
                (
                    clients.names.requests_queue,
                    clients.names.requests_dlq,
                    clients.names.log_queue,
                    clients.names.log_dlq,
                ),
                strict=True,
            )
        )
        self._queue_urls: dict[str, str] = {}
        self._continued = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Write the last window and return, or give up after `timeout` (AWS failing at shutdown must
        not outlast the container's stop grace period)."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("stats_final_write_timed_out", seconds=timeout)

    def logged(self, record: dict[str, Any]) -> None:
        """Count a record just written for the first time (a redelivery is not counted again)."""
        try:
            timings = record["timings"]
            finished = contract.parse_time(timings["computed_at"])
            total = contract.millis_between(timings["submitted_at"], timings["computed_at"])
        except (KeyError, TypeError, ValueError):
            finished, total = _now(), None
        self.window.record(record["status"], total, finished, _now())

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.flush()
        # The last write skips the depths: four SQS calls could eat the time its PUT has.
        if self.flush(sample_depths=False):
            log.info("stats_final_write", key=contract.stats_key(self.window.logger))

    def _continue_own_window(self) -> bool:
        """Read back what this container's previous run wrote, once; until that read succeeds nothing
        is written, or its window would be overwritten."""
        if self._continued:
            return True
        try:
            before = stats.read_own(self.clients.s3, self.bucket, self.window.logger)
        except (BotoCoreError, ClientError) as error:
            log.warning("stats_read_failed", error=str(error))
            return False
        if before:
            self.window.absorb(before)
            log.info("stats_continued", key=contract.stats_key(self.window.logger))
        self._continued = True
        return True

    def flush(self, *, sample_depths: bool = True) -> bool:
        """Sample the depths and write the window; a failure waits for the next turn."""
        if not self._continue_own_window():
            return False
        try:
            if sample_depths:
                self.window.sample(self._depths(), _now())
        except (BotoCoreError, ClientError) as error:
            log.warning("stats_depths_failed", error=str(error))
        try:
            stats.write(self.clients.s3, self.bucket, self.window.document(_now()))
        except (BotoCoreError, ClientError) as error:
            log.warning("stats_write_failed", error=str(error))
            return False
        return True

    def _depths(self) -> dict[str, dict[str, int]]:
        sqs, depths = self.clients.sqs, {}
        for queue, name in self.queue_names.items():
            if queue not in self._queue_urls:
                self._queue_urls[queue] = aws.queue_url(sqs, name)
            found = aws.queue_depths(sqs, self._queue_urls[queue])
            depths[queue] = {key: found[key] for key in ("visible", "in_flight")}
        return depths


def _now() -> datetime:
    return datetime.now(UTC)
