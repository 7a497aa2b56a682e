"""Celery on the same emulator, the same operations and the same client load: `.delay(...).get(...)`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import calls, children, clients
from bench.celery_app import TASK_NAME, make_app
from bench.cpu import Meter
from bench.load import Caller, CallerFactory, Idle, Load, Measured, idle, run
from bench.workload import OPERATIONS, check, numbers_for
from harness.backend import Backend
from harness.services import ServiceProcess

RESULT_TIMEOUT_SECONDS = 30
# How often `.get()` asks the S3 backend (Celery's default is 0.5 s): a tenth of that is what someone
# tuning for latency would pick, and each poll is a HEAD (and a GET once done) on the emulator.
POLL_SECONDS = 0.05
READY_TIMEOUT_SECONDS = 90


def worker_process(
    backend: Backend, log_dir: Path, workers: int, prefix: str, calls_dir: Path | None = None
) -> ServiceProcess:
    """One Celery worker with its default pool (prefork) of `workers` processes."""
    args = ["-A", "bench.celery_worker", "worker", "--pool", "prefork", "--concurrency", str(workers)]
    args += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    settings = {
        "BENCH_CELERY_ENDPOINT": backend.endpoint,
        "BENCH_CELERY_PREFIX": prefix,
        "BENCH_CELERY_BUCKET": prefix,
    }
    return children.python_module(
        f"celery-{prefix}",
        "celery",
        args,
        backend,
        log_dir,
        calls_dir=calls_dir,
        calls_as="celery-worker",
        **settings,
    )


def measure(
    backend: Backend,
    log_dir: Path,
    workers: int,
    loads: Sequence[Load],
    poll_seconds: float = POLL_SECONDS,
    quiet: Idle | None = None,
    calls_dir: Path | None = None,
) -> Iterator[tuple[Load | Idle, Measured]]:
    """Each load with a fresh worker, queue and result bucket, as a supervisor would restart a worker:
    one that dies under a load (see `exit_reason`) does not fail the next load too. With `quiet`, the
    first load's worker is watched idle before its load."""
    for number, load in enumerate(loads):
        with deployed(backend, log_dir, workers, 2 * load.clients, calls_dir) as (task, worker):
            meter = Meter({"celery-worker": worker.pid})
            if quiet is not None and number == 0:
                yield quiet, idle(quiet, meter)
            measured = run(caller(task, poll_seconds), load, meter)
            if worker.process is not None and worker.process.poll() is not None:
                measured.incidents.append(exit_reason(worker))
            yield load, measured


def caller(task: Any, poll_seconds: float) -> CallerFactory:
    """`.delay(...)`, then `.get()` polling every `poll_seconds`; a right answer or an error."""

    def factory() -> Caller:
        def call(index: int) -> None:
            numbers = numbers_for(index)
            result = task.delay(numbers, OPERATIONS)
            check(numbers, result.get(timeout=RESULT_TIMEOUT_SECONDS, interval=poll_seconds))

        return call

    return factory


@contextmanager
def deployed(
    backend: Backend, log_dir: Path, workers: int, pool_limit: int, calls_dir: Path | None
) -> Iterator[tuple[Any, ServiceProcess]]:
    """A fresh queue, result bucket and worker, the worker seen to answer; all removed after."""
    sqs, s3 = clients.client(backend, "sqs"), clients.client(backend, "s3")
    prefix = clients.scratch_name("bench-celery")
    s3.create_bucket(Bucket=prefix)
    if calls_dir is not None:
        # This process is Celery's client: its producer's calls go through botocore, and are recorded.
        calls.recorder().record_kombu()
    app = make_app(backend.endpoint, prefix, prefix, pool_limit=pool_limit)
    task = app.tasks[TASK_NAME]
    worker = worker_process(backend, log_dir, workers, prefix, calls_dir)
    try:
        with children.started([worker]):
            task.delay([1], ["sum"]).get(timeout=READY_TIMEOUT_SECONDS, interval=0.2)
            yield task, worker
    finally:
        app.close()
        clients.delete_queues(sqs, prefix)
        clients.delete_bucket(s3, prefix)


def exit_reason(worker: ServiceProcess) -> str:
    """Why the worker stopped during the load: the last critical line of its log."""
    lines = worker.log_path.read_text(errors="replace").splitlines()
    critical = [line for line in lines if "CRITICAL" in line or "Unrecoverable" in line]
    reason = critical[-1].split("]", 1)[-1].strip() if critical else "no reason logged"
    return f"the Celery worker exited during the load: {reason}"[:240]
