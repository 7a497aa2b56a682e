"""A soak run: many requests at a fixed concurrency through the API, then an exact account of them.

    scripts/soak [--requests 10000] [--concurrency 32] [--workers 2] [--max-minutes 30] [--backend moto]

Runs on 127.0.0.1 only: --backend moto (the default) starts a moto server; --backend localstack
starts LocalStack 4.14.0 (scripts/soak does) or uses the one at LOCALSTACK_ENDPOINT. It prints
accepted = replied = logged, the duplicates seen (replies and log writes), the dead-letter counts and
each service's memory at the start and at the end, and exits non-zero if any of them is off.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness.backend import emulator
from harness.fixtures import Services, log_keys, new_stack, queue_depth, queue_url
from harness.services import ServiceProcess
from harness.waiting import eventually
from qcompute import contract

OPERATIONS = ["sum", "count", "max"]


@dataclass
class Summary:
    requests: int
    accepted: int = 0
    replied: int = 0
    wrong: int = 0
    logged: int = 0
    duplicate_replies: int = 0
    duplicate_writes: int = 0
    computed: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    memory_mb: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def redeliveries(self) -> int:
        """Messages SQS delivered more than once (it delivers at least once), all absorbed."""
        return self.computed - self.requests + self.duplicate_writes

    @property
    def ok(self) -> bool:
        # Redeliveries are allowed; what a user sees or what is stored twice is not.
        return (
            self.requests == self.accepted == self.replied == self.logged
            and self.wrong == self.dead_letters == 0
        )

    def table(self) -> str:
        rows = [
            ("requests sent", self.requests),
            ("accepted (200 or 202)", self.accepted),
            ("replied with their own results", self.replied),
            ("wrong results", self.wrong),
            ("logged in S3 (one object per request)", self.logged),
            ("dead letters", self.dead_letters),
            ("redeliveries absorbed: computed again", self.computed - self.requests),
            ("  duplicate replies ignored by frontends", self.duplicate_replies),
            ("  duplicate log writes refused by S3", self.duplicate_writes),
            ("seconds", f"{self.seconds:.1f}"),
            ("requests per second", f"{self.requests / self.seconds:.1f}" if self.seconds else "-"),
        ]
        rows += [
            (f"memory of {name} (MB, start -> end)", f"{a:.1f} -> {b:.1f}")
            for name, (a, b) in self.memory_mb.items()
        ]
        width = max(len(label) for label, _ in rows)
        verdict = "OK: accepted = replied = logged, no duplicate shown or stored, no dead letters"
        if not self.ok:
            verdict = "FAILED"
        return "\n".join([*(f"{label:<{width}}  {value}" for label, value in rows), verdict])


def resident_mb(process: ServiceProcess) -> float:
    """Resident memory of a service: the process and its children (gunicorn's workers)."""
    pids = [process.pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == process.pid:  # the parent pid
            pids.append(int(stat.parent.name))
    total_kb = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kb += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return total_kb / 1024


def _one(url: str, index: int, session: requests.Session) -> tuple[bool, bool, str | None]:
    """Submit one request; return (accepted, answered with its own results, its id)."""
    numbers = [index, index * 7 + 1, -(index % 1000)]
    response = session.post(
        f"{url}/api/requests", json={"numbers": numbers, "operations": OPERATIONS}, timeout=120
    )
    if response.status_code not in (200, 202):
        return False, False, None
    document = response.json()
    deadline = time.monotonic() + 300
    while document.get("status") == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
        document = session.get(f"{url}/api/requests/{document['id']}", timeout=60).json()
    expected = {"sum": sum(numbers), "count": len(numbers), "max": max(numbers)}
    return True, document.get("results") == expected, document["id"]


def soak(requests_total: int, concurrency: int, workers: int, log_dir: Path, max_seconds: float) -> Summary:
    summary = Summary(requests=requests_total)
    saved = dict(os.environ)
    try:
        with emulator(log_dir) as backend:
            # This process reaches the emulator as the services do: through the SDK's variables.
            os.environ.update(backend.direct_env)
            return _soak_stack(backend, summary, concurrency, workers, log_dir, max_seconds)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _soak_stack(
    backend, summary: Summary, concurrency: int, workers: int, log_dir: Path, max_seconds: float
) -> Summary:
    requests_total = summary.requests
    with new_stack(backend) as stack:
        services = Services(stack, log_dir)
        try:
            worker_processes = [services.worker(f"worker-{n}") for n in range(workers)]
            logger = services.logger()
            front = services.frontend(WEB_WORKERS=2, WEB_THREADS=max(16, concurrency), REPLY_WAIT_SECONDS=30)
            processes = {"frontend": front, "logger": logger, **{p.name: p for p in worker_processes}}
            local = threading.local()

            def one(index: int) -> tuple[bool, bool, str | None]:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                return _one(front.url, index, local.session)

            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                list(pool.map(one, range(-concurrency, 0)))  # warm-up, not counted
                start_memory = {name: resident_mb(p) for name, p in processes.items()}
                started = time.monotonic()
                results = list(pool.map(one, range(requests_total), timeout=max_seconds))
                summary.seconds = time.monotonic() - started
            summary.accepted = sum(accepted for accepted, _, _ in results)
            summary.replied = sum(right for _, right, _ in results)
            summary.wrong = summary.accepted - summary.replied
            ids = [request_id for _, _, request_id in results if request_id]
            assert len(set(ids)) == len(ids), "every request got its own id"
            wanted = {contract.log_key(request_id) for request_id in ids}

            def logged() -> int:
                return len(wanted & set(log_keys(stack)))

            eventually(lambda: logged() == len(wanted), timeout=600, interval=2, what="every result in S3")
            summary.logged = logged()
            summary.computed = sum(len(p.events("computed")) for p in worker_processes) - concurrency
            summary.duplicate_replies = len(front.events("reply_duplicate_ignored"))
            summary.duplicate_writes = len(logger.events("already_logged"))
            summary.dead_letters = queue_depth(stack, queue_url(stack, "requests_dlq")) + queue_depth(
                stack, queue_url(stack, "log_dlq")
            )
            summary.memory_mb = {name: (start_memory[name], resident_mb(p)) for name, p in processes.items()}
        finally:
            services.stop_all()
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-minutes", type=float, default=30, help="give up after this long")
    parser.add_argument(
        "--backend", choices=["moto", "localstack"], default=os.environ.get("TEST_BACKEND", "moto")
    )
    args = parser.parse_args(argv)
    os.environ["TEST_BACKEND"] = args.backend
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        print(f"soak: {args.requests} requests at concurrency {args.concurrency} on {args.backend}")
        summary = soak(args.requests, args.concurrency, args.workers, Path(folder), args.max_minutes * 60)
    print(summary.table())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
