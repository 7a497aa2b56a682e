"""The worker's settings, read once from the environment."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from qcompute.settings import Env, Limits, StackSettings

# What a million-integer request costs (measured, docs/performance): the worker's own process about
# 200 MiB, and each compute process beside it about 140 MiB, as each works on a copy of the numbers.
MAIN_PROCESS_MIB = 200
COMPUTE_PROCESS_MIB = 140
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def memory_limit_mib(files: tuple[Path, ...] = CGROUP_LIMITS) -> int | None:
    """The container's memory limit (cgroup v2, then v1), or None if there is none."""
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 writes a huge number for "no limit"
            return int(text) // 2**20
        return None
    return None


def default_processes() -> int:
    """One compute process per core, as far as the memory limit allows; one means no pool at all."""
    cores = os.cpu_count() or 1
    limit = memory_limit_mib()
    if limit is None:
        return cores
    affordable = (limit - MAIN_PROCESS_MIB) // COMPUTE_PROCESS_MIB
    return max(1, min(cores, affordable)) if affordable >= 2 else 1


@dataclass(frozen=True)
class WorkerSettings:
    stack: StackSettings
    limits: Limits
    long_poll_seconds: int
    # Receive loops in this process: batches overlap while each waits on SQS and SNS.
    loops: int
    worker_name: str
    # Processes computing large requests (the GIL keeps one process on one core) and the size from
    # which a request is split among them.
    processes: int
    parallel_from: int
    # How long a listing of the cancel markers answers for (worker/cancels.py): a cancel stored
    # longer than this before a worker takes its request is honoured.
    cancel_check_seconds: float
    health_file: Path
    log_level: str
    log_format: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WorkerSettings:
        env = Env(environ)
        log_level, log_format = env.logging()
        return cls(
            stack=StackSettings.from_env(env),
            limits=Limits.from_env(env),
            long_poll_seconds=env.integer("LONG_POLL_SECONDS", 10, minimum=0, maximum=20),
            loops=env.integer("CONSUMER_LOOPS", 2, minimum=1, maximum=32),
            worker_name=env.text("WORKER_NAME", f"{socket.gethostname()}/{os.getpid()}"),
            processes=env.integer("WORKER_PROCESSES", default_processes(), minimum=1),
            parallel_from=env.integer("PARALLEL_FROM_NUMBERS", 100_000, minimum=1),
            cancel_check_seconds=env.number("CANCEL_CHECK_SECONDS", 1.0, minimum=0, maximum=60),
            # The container's /tmp is a tmpfs; the healthcheck reads this file's age.
            health_file=env.file("HEALTH_FILE", "/tmp/worker.alive"),  # noqa: S108
            log_level=log_level,
            log_format=log_format,
        )
