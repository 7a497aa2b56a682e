"""This project end to end: a fresh stack, the three services as real processes, load through the HTTP API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import calls
from bench.cpu import Meter
from bench.load import Caller, CallerFactory, Idle, Load, Measured, idle, run
from bench.workload import OPERATIONS, check, numbers_for
from harness.backend import ROOT, Backend
from harness.fixtures import Services, new_stack
from harness.services import Frontend, ServiceProcess, Stack

# Two gunicorn processes with enough threads for 64 clients each: a waiting request holds a thread.
WEB_WORKERS = 2
WEB_THREADS = 64
# Longer than any request should take, so a slow one is measured rather than answered "pending".
REPLY_WAIT_SECONDS = 30
BENCH_LONG_POLL_SECONDS = "5"
REQUEST_TIMEOUT = REPLY_WAIT_SECONDS + 30


@dataclass
class Deployment:
    stack: Stack
    frontend: Frontend
    processes: dict[str, ServiceProcess]  # by service name: frontend, logger, worker-0, ...

    def meter(self) -> Meter:
        """A meter of every service's CPU (the load generator is not one: its calls are HTTP)."""
        return Meter({name: process.pid for name, process in self.processes.items()}, include_self=False)


@contextmanager
def running(
    backend: Backend, log_dir: Path, workers: int, calls_dir: Path | None = None, *, remove_stack: bool = True
) -> Iterator[Deployment]:
    """A freshly provisioned stack with `workers` workers, a logger and a frontend; all removed after
    (the stack's resources too, unless `remove_stack` is False).

    With `calls_dir`, each service records its AWS calls there (bench/calls.py).
    """
    log_dir.mkdir(parents=True, exist_ok=True)

    def bench_env(name: str) -> dict[str, str]:
        # The consumers' long poll as in every run so far (the idle calls per hour depend on it; the
        # tests poll shorter, to stop quicker), and each service's call recorder.
        return {
            "LONG_POLL_SECONDS": BENCH_LONG_POLL_SECONDS,
            **calls.hook_env(calls_dir, name, str(ROOT / "services")),
        }

    with new_stack(backend, remove_after=remove_stack) as stack:
        services = Services(stack, log_dir)
        try:
            processes = {
                f"worker-{n}": services.worker(f"worker-{n}", **bench_env(f"worker-{n}"))
                for n in range(workers)
            }
            processes["logger"] = services.logger(**bench_env("logger"))
            frontend = services.frontend(
                WEB_WORKERS=WEB_WORKERS,
                WEB_THREADS=WEB_THREADS,
                REPLY_WAIT_SECONDS=REPLY_WAIT_SECONDS,
                **bench_env("frontend"),
            )
            processes["frontend"] = frontend
            yield Deployment(stack, frontend, processes)
        finally:
            services.stop_all()


def measure(
    backend: Backend,
    log_dir: Path,
    workers: int,
    loads: Sequence[Load],
    quiet: Idle | None = None,
    calls_dir: Path | None = None,
) -> Iterator[tuple[Load | Idle, Measured]]:
    """Idle first (with `quiet`), then each load in turn, on one deployment with `workers` workers."""
    with running(backend, log_dir / f"project-{workers}w", workers, calls_dir) as deployment:
        if quiet is not None:
            yield quiet, idle(quiet, deployment.meter())
        for load in loads:
            yield load, run(caller(deployment.frontend.url), load, deployment.meter())


class RequestFailed(RuntimeError):
    pass


def caller(url: str) -> CallerFactory:
    """POST /api/requests from one `requests.Session` per client thread; a right answer or an error."""

    def factory() -> Caller:
        session = requests.Session()

        def call(index: int) -> None:
            numbers = numbers_for(index)
            response = session.post(
                f"{url}/api/requests",
                json={"numbers": numbers, "operations": OPERATIONS},
                timeout=REQUEST_TIMEOUT,
            )
            if response.status_code != 200:
                raise RequestFailed(f"HTTP {response.status_code}: {response.text[:200]}")
            check(numbers, response.json().get("results"))

        return call

    return factory
