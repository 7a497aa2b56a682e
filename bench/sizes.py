"""One request of 10 to 1,000,000 integers through the project: time end to end, each service's peak memory.

Each size gets fresh services, so a peak belongs to that request. Whatever the services answer is
recorded: a refusal ("refused (400: too_many_numbers)") is a result, not a crash of the benchmark.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests
from botocore.exceptions import ClientError

from bench import project
from bench.memory import peak_mib
from bench.results import SizeRow
from bench.workload import OPERATIONS, check, large_numbers
from harness.backend import Backend
from qcompute import contract

# A million integers may take a while on a slow emulator; nothing waits longer than this.
TIMEOUT_SECONDS = 180
POLL_SECONDS = 0.2


def measure(backend: Backend, log_dir: Path, sizes: list[int]) -> list[SizeRow]:
    rows = []
    for size in sizes:
        with project.running(backend, log_dir / f"size-{size}", workers=1) as deployment:
            row = SizeRow(backend=backend.name, size=size, status="failed")
            try:
                one_request(deployment, size, row)
            except Exception as error:  # noqa: BLE001 - one failed size is reported, the others still run
                row.status = f"failed: {type(error).__name__}: {error}"[:200]
            # Every service's peak so far, whatever happened: the processes are still running.
            row.peak_mib = {
                name.removesuffix("-0"): round(peak_mib(process.pid), 1)
                for name, process in deployment.processes.items()
            }
            rows.append(row)
    return rows


def one_request(deployment: project.Deployment, size: int, row: SizeRow) -> None:
    numbers = large_numbers(size)
    # Encoded before the clock starts: the client's JSON encoding is not the service's time.
    body = json.dumps({"numbers": numbers, "operations": OPERATIONS})
    url = deployment.frontend.url
    started = time.perf_counter()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    response = requests.post(
        f"{url}/api/requests",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT_SECONDS,
    )
    if response.status_code in (400, 413, 415):
        row.status = f"refused ({response.status_code}: {_error_code(response)})"
        return
    document = _finished(url, response, deadline)
    row.seconds = round(time.perf_counter() - started, 3)
    row.logged_seconds = _logged_after(deployment, document["id"], started, deadline)
    check(numbers, document.get("results"))
    row.status = "done"


def _error_code(response: requests.Response) -> str:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return response.text[:80]


def _finished(url: str, response: requests.Response, deadline: float) -> dict[str, Any]:
    """The result, following a 202 ("pending") with GETs until it is done."""
    while response.status_code == 202 and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        request_id = response.json()["id"]
        response = requests.get(f"{url}/api/requests/{request_id}", timeout=TIMEOUT_SECONDS)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    return response.json()


def _logged_after(deployment: project.Deployment, request_id: str, started: float, deadline: float) -> float:
    """Seconds from submission until the logger's record is in S3."""
    s3, bucket = deployment.stack.clients.s3, deployment.stack.clients.names.log_bucket
    while time.monotonic() < deadline:
        try:
            s3.head_object(Bucket=bucket, Key=contract.log_key(request_id))
            return round(time.perf_counter() - started, 3)
        except ClientError:
            time.sleep(POLL_SECONDS)
    raise TimeoutError(f"the record was not in S3 within {TIMEOUT_SECONDS} s")
