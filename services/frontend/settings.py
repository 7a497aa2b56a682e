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
    # Who may use it: "open" (anyone who reaches the page) or "accounts" (signed-in people and API
    # tokens; see accounts.py). Accounts are read from SSM at most every `accounts_refresh_seconds`.
    access_mode: str
    accounts_refresh_seconds: float
    session_hours: float
    # The public name behind the TLS proxy, if any: session cookies are then sent over HTTPS only.
    domain: str
    # Host names or addresses whose X-Forwarded-For and -Proto are believed (the TLS proxy).
    trusted_proxies: tuple[str, ...]
    # Limits on abuse (limits.py), per account, or per client address where there is none.
    submissions_per_minute: int
    integers_per_minute: int
    signin_failures_before_delay: int
    signin_failures_allowed: int
    # Admission control: above this many requests waiting in the request queue, new ones get 503.
    max_backlog: int
    log_level: str
    log_format: str
    # The release that serves (its image tag), shown in the page's footer and /healthz: a rollout's
    # progress can be seen from outside.
    app_version: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FrontendSettings:
        env = Env(environ)
        secret_key = env.text("SECRET_KEY")
        if len(secret_key) < 16:
            # Its length only: the key itself is never printed.
            raise ConfigError(f"SECRET_KEY must be at least 16 characters, not {len(secret_key)}")
        heartbeat_seconds = env.integer("REPLY_QUEUE_HEARTBEAT_SECONDS", 60, minimum=1)
        idle_seconds = env.integer("REPLY_QUEUE_IDLE_SECONDS", 900, minimum=10)
        if idle_seconds < 3 * heartbeat_seconds:
            raise ConfigError(
                "REPLY_QUEUE_IDLE_SECONDS must be at least 3 x REPLY_QUEUE_HEARTBEAT_SECONDS "
                f"({3 * heartbeat_seconds}), not {idle_seconds}, or live queues would be swept"
            )
        log_level, log_format = env.logging()
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
            lock_dir=env.directory("WORKER_TMP_DIR", "/dev/shm"),  # noqa: S108
            access_mode=env.choice("ACCESS_MODE", "open", ("open", "accounts")),
            accounts_refresh_seconds=env.number("ACCOUNTS_REFRESH_SECONDS", 10.0),
            session_hours=env.number("SESSION_HOURS", 12.0),
            domain=env.text("DOMAIN", ""),
            trusted_proxies=tuple(
                name.strip() for name in env.text("TRUSTED_PROXIES", "").split(",") if name.strip()
            ),
            submissions_per_minute=env.integer("SUBMISSIONS_PER_MINUTE", 60, minimum=1),
            integers_per_minute=env.integer("INTEGERS_PER_MINUTE", 10_000_000, minimum=1),
            signin_failures_before_delay=env.integer("SIGNIN_FAILURES_BEFORE_DELAY", 3, minimum=1),
            signin_failures_allowed=env.integer("SIGNIN_FAILURES_ALLOWED", 10, minimum=1),
            max_backlog=env.integer("MAX_BACKLOG", 1000, minimum=1),
            log_level=log_level,
            log_format=log_format,
            app_version=env.text("APP_VERSION", "dev"),
        )


@dataclass(frozen=True)
class ServerSettings:
    """How gunicorn serves the app (gunicorn.conf.py): checked, like the app's own, before it binds."""

    bind: str
    workers: int
    # Threads, because a request mostly waits for its reply; each waiting request holds one.
    threads: int
    # Longer than the reply wait (REPLY_WAIT_SECONDS, 10 s by default), so requests in flight finish
    # on SIGTERM; compose's stop grace period is longer still.
    graceful_timeout: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = Env(environ)
        return cls(
            bind=env.address("BIND", "0.0.0.0:8080"),
            workers=env.integer("WEB_WORKERS", 2, minimum=1),
            threads=env.integer("WEB_THREADS", 16, minimum=1),
            graceful_timeout=env.integer("GRACEFUL_TIMEOUT", 15, minimum=1),
        )
