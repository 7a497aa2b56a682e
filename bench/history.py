"""The history at scale: a bucket holding many log records (a tenth of them today), and how fast the
frontend serves its first page and a page 1,000 entries deep, with how many S3 calls.

The records are written by a child process (`python -m bench.history fill ...`) with many threads, so
the bench's own call recorder does not note a million PUTs; the pages are read through the frontend's
HTTP API, whose AWS calls are recorded as in the load phases.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

from bench import calls, project
from bench.results import HistoryRow
from harness.backend import Backend
from qcompute import contract

DAY = 86_400.0
DEPTH = 1_000  # the deep page starts this many entries below the newest
FILL_PROCESSES = 4  # boto3 in one process tops out well below what an emulator takes
FILL_THREADS = 24
SECRET = b"bench-history"


def measure(backend: Backend, log_dir: Path, objects: int, pages: int, record: Path) -> list[HistoryRow]:
    """Fill a fresh stack's log with `objects` records, then read each page `pages` times; the
    frontend's calls are recorded in `record`."""
    # The stack is left in the emulator, which stops right after this phase: emptying a bucket of a
    # million records took LocalStack 9 minutes (each DeleteObjects after a listing it sorts whole).
    with project.running(backend, log_dir, workers=1, calls_dir=record, remove_stack=False) as deployment:
        bucket = deployment.stack.clients.names.log_bucket
        started = time.monotonic()
        ids = fill(bucket, objects, log_dir)
        fill_seconds = time.monotonic() - started
        newest = sorted(ids, reverse=True)
        listing_ms = _listing_ms(deployment.stack.clients.s3, bucket, newest[DEPTH])
        rows = []
        for name, cursor, expected in (
            ("first page", None, newest[:20]),
            (f"{DEPTH:,} deep", newest[DEPTH - 1], newest[DEPTH : DEPTH + 20]),
        ):
            row = HistoryRow(backend=backend.name, objects=objects, page=name)
            row.fill_seconds, row.listing_ms = round(fill_seconds, 1), listing_ms
            _read(deployment.frontend.url, cursor, expected, pages, row, record)
            rows.append(row)
        return rows


def _read(
    url: str, cursor: str | None, expected: list[str], pages: int, row: HistoryRow, record: Path
) -> None:
    session = requests.Session()
    params = {"before": cursor} if cursor else {}
    times = []
    window_start = time.time()
    for _ in range(pages):
        started = time.perf_counter()
        response = session.get(f"{url}/api/history", params=params, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        shown = [entry["id"] for entry in response.json()["entries"]]
        if shown != expected[: len(shown)] or len(shown) != len(expected):
            raise RuntimeError(f"history page {row.page}: {shown[:3]}... is not the newest {expected[:3]}...")
    made = calls.in_window(record, (window_start, time.time()))
    frontend = [c for c in made if c["process"] == "frontend" and c["service"] == "s3"]
    row.pages = pages
    row.p50_ms = round(statistics.median(times), 1)
    row.p95_ms = round(sorted(times)[max(0, round(0.95 * len(times)) - 1)], 1)
    row.max_ms = round(max(times), 1)
    row.lists_per_page = round(
        sum(c["calls"] for c in frontend if c["operation"] == "ListObjectsV2") / pages, 2
    )
    row.heads_per_page = round(sum(c["calls"] for c in frontend if c["operation"] == "HeadObject") / pages, 2)


def _listing_ms(s3: Any, bucket: str, request_id: str) -> float:
    """What the emulator itself takes for one listing of 100 keys in this bucket (median of five)."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        s3.list_objects_v2(
            Bucket=bucket, Prefix="logs/", StartAfter=contract.log_key(request_id), MaxKeys=100
        )
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def fill(bucket: str, objects: int, log_dir: Path) -> list[str]:
    """`objects` records in the log, nine tenths over the nine days before today and a tenth today;
    written by a child process so that this one's call recorder stays out of it. Returns their ids."""
    log_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    rng = random.Random(14)  # noqa: S311 - times of day, not secrets
    today = objects // 10
    moments = [rng.uniform(midnight, now) for _ in range(today)]
    moments += [rng.uniform(midnight - 9 * DAY, midnight) for _ in range(objects - today)]
    ids = [contract.new_request_id(SECRET, now=moment) for moment in moments]
    children = []
    for part in range(FILL_PROCESSES):
        part_file = log_dir / f"history-ids-{part}.txt"
        part_file.write_text("\n".join(ids[part::FILL_PROCESSES]) + "\n")
        children.append(
            subprocess.Popen([sys.executable, "-m", "bench.history", "fill", bucket, str(part_file)])
        )
    failed = [child.args for child in children if child.wait() != 0]
    if failed:
        raise RuntimeError(f"filling the log failed: {failed}")
    return ids


def _fill_child(bucket: str, ids_file: str) -> None:
    s3 = boto3.client("s3", config=Config(max_pool_connections=FILL_THREADS, retries={"mode": "standard"}))
    body = json.dumps({"status": "done"}).encode()
    metadata = {"status": "done", "operations": "sum,mean", "count": "10", "total-ms": "12.5"}

    def put(request_id: str) -> None:
        key = contract.log_key(request_id)
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType="application/json")

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        for _ in pool.map(put, Path(ids_file).read_text().split()):
            pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["fill"]:
        _fill_child(sys.argv[2], sys.argv[3])
