"""The logger's settings, read once from the environment."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from qcompute.settings import ConfigError, Env, StackSettings

# A logger's name is part of an S3 key (its last hour, qcompute.stats).
LOGGER_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,99}")  # at most 100 characters


def default_logger_name() -> str:
    """Host name and pid: a container restarted in place (same host name, pid 1) is the same logger
    and goes on with its last hour; a new container, or another process on the host, is another."""
    return re.sub(r"[^a-z0-9.-]+", "-", f"{socket.gethostname()}-{os.getpid()}".lower()).strip("-.")


@dataclass(frozen=True)
class LoggerSettings:
    stack: StackSettings
    long_poll_seconds: int
    # Receive loops in this process: batches overlap while each waits on SQS and S3.
    loops: int
    health_file: Path
    logger_name: str
    # How often the queue depths are sampled and the last hour's window written for the status page.
    stats_flush_seconds: int
    log_level: str
    log_format: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LoggerSettings:
        env = Env(environ)
        log_level, log_format = env.logging()
        logger_name = env.text("LOGGER_NAME", default_logger_name())
        if not LOGGER_NAME.fullmatch(logger_name):
            raise ConfigError(
                f"LOGGER_NAME must be lowercase letters, digits, '.' and '-', not {logger_name!r}"
            )
        return cls(
            stack=StackSettings.from_env(env),
            long_poll_seconds=env.integer("LONG_POLL_SECONDS", 10, minimum=0, maximum=20),
            loops=env.integer("CONSUMER_LOOPS", 2, minimum=1, maximum=32),
            # The container's /tmp is a tmpfs; the healthcheck reads this file's age.
            health_file=env.file("HEALTH_FILE", "/tmp/logger.alive"),  # noqa: S108
            logger_name=logger_name,
            stats_flush_seconds=env.integer("STATS_FLUSH_SECONDS", 60, minimum=1, maximum=60),
            log_level=log_level,
            log_format=log_format,
        )
