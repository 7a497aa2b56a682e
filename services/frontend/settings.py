"""The frontend's settings, read once from the environment (or a test's mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qcompute.settings import ConfigError, Env, Limits, StackSettings


@dataclass(frozen=True)
class FrontendSettings:
    stack: StackSettings
    limits: Limits
    # Signs CSRF tokens and request ids; every frontend process of a stack must share it.
    secret_key: str
    reply_wait_seconds: float
    pending_timeout_seconds: int
    max_body_bytes: int
    reply_poll_seconds: int
    reply_queue_idle_seconds: int
    heartbeat_seconds: int
    # Requests outstanding and no reply for this long: /readyz and /status report replies stalled.
    reply_stall_seconds: int
    history_page_size: int
    # Large requests (memory.py): how many at once in a container, how long one waits for its turn,
    # and where the processes of a container share their locks.
    large_requests_at_once: int
    large_request_wait_seconds: float
    lock_dir: Path
    log_level: str
    log_format: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FrontendSettings:
        env = Env(environ)
        secret_key = env.text("SECRET_KEY")
        if len(secret_key) < 16:
            raise ConfigError("SECRET_KEY must be at least 16 characters")
        heartbeat_seconds = env.integer("REPLY_QUEUE_HEARTBEAT_SECONDS", 60, minimum=1)
        idle_seconds = env.integer("REPLY_QUEUE_IDLE_SECONDS", 900, minimum=10)
        if idle_seconds < 3 * heartbeat_seconds:
            raise ConfigError(
                "REPLY_QUEUE_IDLE_SECONDS must be at least 3 x REPLY_QUEUE_HEARTBEAT_SECONDS, "
                "or live queues would be swept"
            )
        return cls(
            stack=StackSettings.from_env(env),
            limits=Limits.from_env(env),
            secret_key=secret_key,
            reply_wait_seconds=env.number("REPLY_WAIT_SECONDS", 10.0),
            pending_timeout_seconds=env.integer("PENDING_TIMEOUT_SECONDS", 600, minimum=1),
            # A million integers of up to 19 digits, as JSON or as a file.
            max_body_bytes=env.integer("MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1024),
            reply_poll_seconds=env.integer("REPLY_POLL_SECONDS", 10, minimum=1, maximum=20),
            reply_queue_idle_seconds=idle_seconds,
            heartbeat_seconds=heartbeat_seconds,
            reply_stall_seconds=env.integer("REPLY_STALL_SECONDS", 60, minimum=5),
            history_page_size=env.integer("HISTORY_PAGE_SIZE", 20, minimum=1, maximum=100),
            large_requests_at_once=env.integer("LARGE_REQUESTS_AT_ONCE", 1, minimum=1),
            large_request_wait_seconds=env.number("LARGE_REQUEST_WAIT_SECONDS", 20.0),
            # gunicorn's heartbeat directory: memory every process of the container shares.
            lock_dir=Path(env.text("WORKER_TMP_DIR", "/dev/shm")),  # noqa: S108
            log_level=env.text("LOG_LEVEL", "INFO").upper(),
            log_format=env.text("LOG_FORMAT", "auto"),
        )
