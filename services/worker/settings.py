"""The worker's settings, read once from the environment."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from qcompute.settings import Env, Limits, StackSettings


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
    health_file: Path
    log_level: str
    log_format: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WorkerSettings:
        env = Env(environ)
        return cls(
            stack=StackSettings.from_env(env),
            limits=Limits.from_env(env),
            long_poll_seconds=env.integer("LONG_POLL_SECONDS", 10, minimum=0, maximum=20),
            loops=env.integer("CONSUMER_LOOPS", 2, minimum=1, maximum=32),
            worker_name=env.text("WORKER_NAME", f"{socket.gethostname()}/{os.getpid()}"),
            processes=env.integer("WORKER_PROCESSES", os.cpu_count() or 1, minimum=1),
            parallel_from=env.integer("PARALLEL_FROM_NUMBERS", 100_000, minimum=1),
            # The container's /tmp is a tmpfs; the healthcheck reads this file's age.
            health_file=Path(env.text("HEALTH_FILE", "/tmp/worker.alive")),  # noqa: S108
            log_level=env.text("LOG_LEVEL", "INFO").upper(),
            log_format=env.text("LOG_FORMAT", "auto"),
        )
