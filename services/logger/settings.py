"""The logger's settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qcompute.settings import Env, StackSettings


@dataclass(frozen=True)
class LoggerSettings:
    stack: StackSettings
    long_poll_seconds: int
    # Receive loops in this process: batches overlap while each waits on SQS and S3.
    loops: int
    health_file: Path
    # How often the queue depths are sampled and the last hour's window written for the status page.
    stats_flush_seconds: int
    log_level: str
    log_format: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LoggerSettings:
        env = Env(environ)
        log_level, log_format = env.logging()
        return cls(
            stack=StackSettings.from_env(env),
            long_poll_seconds=env.integer("LONG_POLL_SECONDS", 10, minimum=0, maximum=20),
            loops=env.integer("CONSUMER_LOOPS", 2, minimum=1, maximum=32),
            # The container's /tmp is a tmpfs; the healthcheck reads this file's age.
            health_file=env.file("HEALTH_FILE", "/tmp/logger.alive"),  # noqa: S108
            stats_flush_seconds=env.integer("STATS_FLUSH_SECONDS", 60, minimum=1, maximum=60),
            log_level=log_level,
            log_format=log_format,
        )
