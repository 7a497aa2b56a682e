"""A soak run: many requests at a fixed concurrency through the API, then an exact account of them.

    scripts/soak [--requests 10000] [--concurrency 32] [--workers 2] [--max-minutes 30]
                 [--backend moto|localstack|moto+strict|localstack+strict]
                 [--fault-rate 0.01] [--outage s3:120 --outage sns:120]
    scripts/soak --local [--requests N] [--concurrency N] [--max-minutes N]

Runs on 127.0.0.1 only: --backend moto (the default) starts a moto server; --backend localstack
starts LocalStack 4.14.0 (scripts/soak does) or uses the one at LOCALSTACK_ENDPOINT; "+strict" puts the
AWS-strict layer in front (1% of calls failing unless --fault-rate says otherwise), and each --outage
takes that service down for that many seconds, one after the other, once a quarter of the requests
are in. It prints accepted = answered = logged, the duplicates seen (replies and log writes), the
dead-letter counts and each service's memory at the start and at the end, and exits non-zero if any
of them is off. With --local it starts nothing: it soaks the local stack already running (scripts/local
up or watch, scripts/dev) through http://127.0.0.1:HTTP_PORT (8080) and checks the results in its
LocalStack through qcompute.local (no AWS variable needed); what only the services' own logs show
(duplicates, memory) is left out there.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness.backend import StrictControl, emulator
from harness.fixtures import Services, log_keys, new_stack, queue_depth, queue_url
from harness.services import ServiceProcess, Stack
from harness.waiting import eventually
from qcompute import aws, contract, local

OPERATIONS = ["sum", "count", "max"]
# A service's memory may grow this much over a run (caches filling up) and still count as flat.
MEMORY_GROWTH_MB = 100
_counting = threading.Lock()
# How long a request may wait for its answer: an outage plus the time to catch up after it.
ANSWER_DEADLINE_SECONDS = 1200


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
    refusals: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    outages: list[str] = field(default_factory=list)
    # False for --local: the services run elsewhere, their logs (duplicates, memory) are not read here.
    services_observed: bool = True

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
            and self.memory_flat
        )

    @property
    def memory_flat(self) -> bool:
        return all(end - start < MEMORY_GROWTH_MB for start, end in self.memory_mb.values())

    def table(self) -> str:
        rows = [
            ("requests sent", self.requests),
            ("accepted (200 or 202)", self.accepted),
            ("  refusals answered by trying again (503)", self.refusals),
            ("answered with their own results", self.replied),
            ("wrong results", self.wrong),
            ("logged in S3 (one object per request)", self.logged),
            ("dead letters", self.dead_letters),
        ]
        if self.services_observed:
            rows += [
                ("redeliveries absorbed: computed again", self.computed - self.requests),
                ("  duplicate replies ignored by frontends", self.duplicate_replies),
                ("  duplicate log writes refused by S3", self.duplicate_writes),
            ]
        rows += [
            ("seconds", f"{self.seconds:.1f}"),
            ("requests per second", f"{self.requests / self.seconds:.1f}" if self.seconds else "-"),
        ]
        rows += [
            (f"memory of {name} (MB, start -> end)", f"{a:.1f} -> {b:.1f}")
            for name, (a, b) in self.memory_mb.items()
        ]
        rows += [(f"outage: {outage}", "") for outage in self.outages]
        rows += [(f"injected: {api}", count) for api, count in sorted(self.faults.items())]
        width = max(len(label) for label, _ in rows)
        verdict = (
            "OK: accepted = answered = logged, nothing shown or stored twice, no dead letters, memory flat"
        )
        if not self.services_observed:
            verdict = "OK: accepted = answered = logged, no new dead letters"
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


def _patient(call: Callable[[], requests.Response], summary: Summary) -> requests.Response:
    """A well-behaved client: a 503 (busy, or AWS unavailable) is tried again after Retry-After."""
    while True:
        response = call()
        if response.status_code != 503:
            return response
        with _counting:
            summary.refusals += 1
        time.sleep(float(response.headers.get("Retry-After", "1")))


def _one(url: str, index: int, session: requests.Session, summary: Summary) -> tuple[bool, bool, str | None]:
    """Submit one request; return (accepted, answered with its own results, its id)."""
    numbers = [index, index * 7 + 1, -(index % 1000)]
    body = {"numbers": numbers, "operations": OPERATIONS}
    response = _patient(lambda: session.post(f"{url}/api/requests", json=body, timeout=120), summary)
    if response.status_code not in (200, 202):
        return False, False, None
    document = response.json()
    where = f"{url}/api/requests/{document['id']}"
    deadline = time.monotonic() + ANSWER_DEADLINE_SECONDS
    while document.get("status") == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
        document = _patient(lambda: session.get(where, timeout=60), summary).json()
    expected = {"sum": sum(numbers), "count": len(numbers), "max": max(numbers)}
    return True, document.get("results") == expected, document["id"]


def _outages(
    control: StrictControl, plan: list[tuple[str, float]], started: threading.Event, summary: Summary
):
    """Take each service down in turn, once the run is under way."""
    started.wait()
    for service, seconds in plan:
        control.outage(service, seconds)
        summary.outages.append(f"{service} down for {seconds:.0f} s")
        time.sleep(seconds)


def soak(
    requests_total: int,
    concurrency: int,
    workers: int,
    log_dir: Path,
    max_seconds: float,
    *,
    fault_rate: float | None = None,
    outages: list[tuple[str, float]] = (),
) -> Summary:
    summary = Summary(requests=requests_total)
    saved = dict(os.environ)
    try:
        with emulator(log_dir) as backend:
            # This process checks the emulator directly, through the SDK's variables.
            os.environ.update(backend.direct_env)
            control = StrictControl(backend.endpoint) if backend.strict else None
            if control is not None and fault_rate is not None:
                control.configure(fault_rate=fault_rate)
            if outages and control is None:
                raise ValueError("outages need a strict backend (moto+strict or localstack+strict)")
            summary = _soak_stack(
                backend, summary, concurrency, workers, log_dir, max_seconds, control, list(outages)
            )
            if control is not None:
                summary.faults = _fault_counts(control.stats()["faults"])
            return summary
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _fault_counts(faults: dict[str, int]) -> dict[str, int]:
    """Injected faults by kind ("throttle before", ...), all APIs together."""
    counts: dict[str, int] = {}
    for key, count in faults.items():
        kind = key.split(" ", 1)[1]
        counts[kind] = counts.get(kind, 0) + count
    return counts


def _soak_stack(
    backend,
    summary: Summary,
    concurrency: int,
    workers: int,
    log_dir: Path,
    max_seconds: float,
    control: StrictControl | None,
    outages: list[tuple[str, float]],
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

            quarter = threading.Event()
            sent = itertools.count(1)

            def one(index: int) -> tuple[bool, bool, str | None]:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                if index >= 0 and next(sent) >= requests_total // 4:
                    quarter.set()
                return _one(front.url, index, local.session, summary)

            if outages and control is not None:
                threading.Thread(
                    target=_outages, args=(control, outages, quarter, summary), daemon=True
                ).start()
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

            eventually(lambda: logged() == len(wanted), timeout=900, interval=2, what="every result in S3")
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


def _dead_letters(stack: Stack) -> int:
    return queue_depth(stack, queue_url(stack, "requests_dlq")) + queue_depth(
        stack, queue_url(stack, "log_dlq")
    )


def soak_local(requests_total: int, concurrency: int, max_seconds: float) -> Summary:
    """Soak the local stack already running on this machine, from outside: HTTP in, LocalStack checked."""
    summary = Summary(requests=requests_total, services_observed=False)
    settings = local.stack_settings()
    stack = Stack(settings.stack, aws.connect(settings, session=local.session(settings.region)), env={})
    url = f"http://127.0.0.1:{os.environ.get('HTTP_PORT') or 8080}"
    dead_before = _dead_letters(stack)
    local_state = threading.local()

    def one(index: int) -> tuple[bool, bool, str | None]:
        if not hasattr(local_state, "session"):
            local_state.session = requests.Session()
        return _one(url, index, local_state.session, summary)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        started = time.monotonic()
        results = list(pool.map(one, range(requests_total), timeout=max_seconds))
        summary.seconds = time.monotonic() - started
    summary.accepted = sum(accepted for accepted, _, _ in results)
    summary.replied = sum(right for _, right, _ in results)
    summary.wrong = summary.accepted - summary.replied
    wanted = {contract.log_key(request_id) for _, _, request_id in results if request_id}

    def logged() -> int:
        return len(wanted & set(log_keys(stack)))

    eventually(lambda: logged() == len(wanted), timeout=300, interval=1, what="every result in S3")
    summary.logged = logged()
    summary.dead_letters = _dead_letters(stack) - dead_before
    return summary


def _outage(text: str) -> tuple[str, float]:
    service, _, seconds = text.partition(":")
    if service not in ("sqs", "sns", "s3") or not seconds.replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError("an outage is SERVICE:SECONDS, e.g. s3:120")
    return service, float(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-minutes", type=float, default=30, help="give up after this long")
    parser.add_argument(
        "--backend",
        choices=["moto", "localstack", "moto+strict", "localstack+strict"],
        default=os.environ.get("TEST_BACKEND", "moto"),
    )
    parser.add_argument("--fault-rate", type=float, help="share of calls the strict layer fails (0.01)")
    parser.add_argument(
        "--outage",
        action="append",
        default=[],
        type=_outage,
        metavar="SERVICE:SECONDS",
        help="take sqs, sns or s3 down (strict backends), one after the other",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="soak the local stack already running (scripts/local, scripts/dev); starts nothing",
    )
    args = parser.parse_args(argv)
    if args.local:
        if args.outage or args.fault_rate is not None:
            parser.error("--local soaks the running local stack as it is: no --outage or --fault-rate")
        print(f"soak: {args.requests} requests at concurrency {args.concurrency} on {local.describe()}")
        summary = soak_local(args.requests, args.concurrency, args.max_minutes * 60)
        print(summary.table())
        return 0 if summary.ok else 1
    os.environ["TEST_BACKEND"] = args.backend
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        print(f"soak: {args.requests} requests at concurrency {args.concurrency} on {args.backend}")
        summary = soak(
            args.requests,
            args.concurrency,
            args.workers,
            Path(folder),
            args.max_minutes * 60,
            fault_rate=args.fault_rate,
            outages=args.outage,
        )
    print(summary.table())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
