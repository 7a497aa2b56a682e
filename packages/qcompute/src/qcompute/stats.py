"""The last hour minute by minute: what each logger counts and the status page charts.

A logger keeps, for each UTC minute of the last hour it ran: the requests it logged by status, a
histogram of their total times (submitted to computed), and the highest queue depths it sampled. It
writes that window as its own object, `stats/loggers/<logger>.json` (`contract.stats_key`), and a
restarted container (same host name and pid) reads its object back and goes on with it.

Why one object per logger: two loggers run at once during a rollout, or when scaled. Each writes
only its own counts, so none overwrites another's; the status page lists the objects (one LIST),
reads the newest few and adds them up. Counts and histograms add up exactly, which percentiles do
not: that is why the object holds histograms. A minute no logger covered is a gap (None), a minute
a logger covered without requests is a zero.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from qcompute import aws, contract

VERSION = 1
WINDOW_MINUTES = 60
# Latency buckets: bucket i holds the times nearest to BASE**i ms, each bucket about 9% wide, so a
# percentile read from them is within RELATIVE_ERROR of the exact one (~30 buckets span 1 ms to 10 s).
BASE = 2 ** (1 / 8)
RELATIVE_ERROR = math.sqrt(BASE) - 1
# Faster than this (or negative: the frontend's and the worker's clocks differ) counts as this.
SHORTEST_MS = 0.1
PERCENTILES = (50, 90, 99)
QUEUES = ("requests", "requests_dlq", "logs", "logs_dlq")
DEPTHS = ("visible", "in_flight")
# The status page reads at most this many loggers' objects (the newest): a crash loop writing a new
# object per restart cannot make one page view cost more.
MAX_OBJECTS = 10


def minute_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def window_minutes(now: datetime) -> list[str]:
    """The last hour's minutes, oldest first, ending with the current (unfinished) one."""
    return [minute_of(now - timedelta(minutes=back)) for back in range(WINDOW_MINUTES - 1, -1, -1)]


def bucket(ms: float) -> int:
    return round(math.log(max(ms, SHORTEST_MS), BASE))


def bucket_ms(index: int) -> float:
    return BASE**index


def percentile(histogram: dict[int, int], p: float) -> float | None:
    """The nearest-rank percentile (the smallest time at least p% of requests took), or None."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = math.ceil(p / 100 * total), 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return float(f"{bucket_ms(index):.3g}")
    raise AssertionError("unreachable: the ranks add up to the total")


def _empty_minute() -> dict[str, Any]:
    return {**dict.fromkeys(contract.STATUSES, 0), "latency_ms": {}}


class Window:
    """One logger's last hour, updated by the threads that write records and by the flusher."""

    def __init__(self, logger: str, now: datetime):
        self.logger = logger
        # Minutes from here on are covered even without a request: zeros, not gaps.
        self.started = minute_of(now)
        self.minutes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def record(self, status: str, total_ms: float | None, finished: datetime, now: datetime) -> None:
        """One request logged: counted in the minute it finished (a later one if that is the future)."""
        minute = minute_of(min(finished, now))
        if minute < minute_of(now - timedelta(minutes=WINDOW_MINUTES - 1)):
            return  # finished over an hour ago (a backlog after an outage): off the chart
        with self._lock:
            entry = self.minutes.setdefault(minute, _empty_minute())
            entry[status] += 1
            if total_ms is not None:
                histogram = entry["latency_ms"]
                histogram[bucket(total_ms)] = histogram.get(bucket(total_ms), 0) + 1

    def sample(self, depths: dict[str, dict[str, int]], now: datetime) -> None:
        """Queue depths seen now; a minute keeps the highest of its samples."""
        with self._lock:
            entry = self.minutes.setdefault(minute_of(now), _empty_minute())
            entry["depths"] = _highest([entry.get("depths"), depths])

    def document(self, now: datetime) -> dict[str, Any]:
        """The window as written to S3: the last hour only, every minute since the start present."""
        window = window_minutes(now)
        with self._lock:
            for minute in window:
                if minute >= self.started:
                    self.minutes.setdefault(minute, _empty_minute())
            self.minutes = {minute: self.minutes[minute] for minute in window if minute in self.minutes}
            minutes = json.loads(json.dumps(self.minutes))  # a copy, histogram keys as text
        return {
            "v": VERSION,
            "logger": self.logger,
            "written_at": contract.format_time(now),
            "minutes": minutes,
        }

    def absorb(self, document: dict[str, Any]) -> None:
        """Go on with a window written before (by this container's previous run): its counts are
        added to those of this run so far."""
        with self._lock:
            for minute, earlier in document.get("minutes", {}).items():
                entry = self.minutes.setdefault(minute, _empty_minute())
                for status in contract.STATUSES:
                    entry[status] += earlier.get(status, 0)
                histogram = entry["latency_ms"]
                for index, count in earlier.get("latency_ms", {}).items():
                    histogram[int(index)] = histogram.get(int(index), 0) + count
                depths = _highest([entry.get("depths"), earlier.get("depths")])
                if depths:
                    entry["depths"] = depths


def _highest(samples: Iterable[dict[str, dict[str, int]] | None]) -> dict[str, dict[str, int]] | None:
    present = [sample for sample in samples if sample]
    if not present:
        return None
    return {
        queue: {depth: max(s.get(queue, {}).get(depth, 0) for s in present) for depth in DEPTHS}
        for queue in QUEUES
    }


def merge(documents: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Several loggers' windows as one, series by series, as GET /api/status gives them: counts and
    histograms added, depths the highest. None marks a gap: no logger ran in that minute (counts), no
    request finished (latency), no depth was sampled (depths)."""
    minutes = window_minutes(now)
    requests: dict[str, list[int | None]] = {status: [] for status in contract.STATUSES}
    latency: dict[str, list[float | None]] = {f"p{p}": [] for p in PERCENTILES}
    depths: dict[str, dict[str, list[int | None]]] = {q: {d: [] for d in DEPTHS} for q in QUEUES}
    for minute in minutes:
        entries = [doc["minutes"][minute] for doc in documents if minute in doc.get("minutes", {})]
        histogram: dict[int, int] = {}
        for entry in entries:
            for index, count in entry.get("latency_ms", {}).items():
                histogram[int(index)] = histogram.get(int(index), 0) + count
        for status in contract.STATUSES:
            requests[status].append(sum(entry.get(status, 0) for entry in entries) if entries else None)
        for p in PERCENTILES:
            latency[f"p{p}"].append(percentile(histogram, p))
        highest = _highest(entry.get("depths") for entry in entries)
        for queue in QUEUES:
            for depth in DEPTHS:
                depths[queue][depth].append(highest[queue][depth] if highest else None)
    return {
        "minutes": minutes,
        "loggers": len(documents),
        "requests": requests,
        "latency_ms": latency,
        "depths": depths,
    }


# --- S3 ------------------------------------------------------------------------------------------------


def write(s3: Any, bucket: str, document: dict[str, Any]) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=contract.stats_key(document["logger"]),
        Body=json.dumps(document, separators=(",", ":")).encode(),
        ContentType="application/json",
    )


def _get(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object as JSON; None if it is gone (the lifecycle rule) or not a window."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if aws.error_code(error) in {"NoSuchKey", "404"}:
            return None
        raise
    try:
        document = json.loads(body)
    except ValueError:
        return None
    valid = isinstance(document, dict) and document.get("v") == VERSION
    return document if valid and isinstance(document.get("minutes"), dict) else None


def read_own(s3: Any, bucket: str, logger: str) -> dict[str, Any] | None:
    return _get(s3, bucket, contract.stats_key(logger))


def read_all(s3: Any, bucket: str, now: datetime) -> dict[str, Any]:
    """Every logger's last hour, merged: one LIST and at most MAX_OBJECTS GETs."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=contract.STATS_PREFIX)
    since = now - timedelta(minutes=WINDOW_MINUTES)
    fresh = [item for item in listing.get("Contents", []) if item["LastModified"] >= since]
    newest = sorted(fresh, key=lambda item: item["LastModified"], reverse=True)[:MAX_OBJECTS]
    documents = [_get(s3, bucket, item["Key"]) for item in newest]
    return merge([document for document in documents if document], now)
