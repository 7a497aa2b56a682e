"""Limits on abuse, shared by the gunicorn processes of a container: submissions and integers per
minute for each account (or client address), failed sign-ins, and signed-out sessions.

One small SQLite database in the container's shared memory (WORKER_TMP_DIR) holds what happened in
the last minutes; SQLite's own locking makes check-and-count one step across processes. A restart
forgets it all, which only ever errs on the side of letting someone in again.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frontend.shm import ThreadConnections
from qcompute.messages import N_, Explained

WINDOW_SECONDS = 60.0
# Failed sign-ins are counted over a longer window: a guesser cannot wait a minute and go on.
SIGNIN_WINDOW_SECONDS = 900.0


class Limited(Explained):
    """Too much at once: answer 429 with Retry-After."""

    def __init__(self, template: str, retry_after: float, **params: Any):
        super().__init__(template, **params)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class Quota:
    submissions_per_minute: int
    integers_per_minute: int


class Limits:
    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = directory / "qcompute-limits.sqlite3"
        self.clock = clock
        # `take` opens its own transaction with BEGIN IMMEDIATE, which takes the write lock before it reads.
        self.connections = ThreadConnections(self.path, timeout=10)
        self._db().executescript(
            """
                CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL, amount INTEGER);
                CREATE INDEX IF NOT EXISTS hits_by_key ON hits (key, at);
                CREATE TABLE IF NOT EXISTS signed_out (session TEXT PRIMARY KEY, until REAL NOT NULL);
                """
        )

    def _db(self) -> sqlite3.Connection:
        return self.connections.get()

    def _used(self, db: sqlite3.Connection, key: str, since: float) -> tuple[int, float | None]:
        total, oldest = db.execute(
            "SELECT COALESCE(SUM(amount), 0), MIN(at) FROM hits WHERE key = ? AND at > ?", (key, since)
        ).fetchone()
        return total, oldest

    def take(self, who: str, integers: int, quota: Quota) -> None:
        """Count one submission of `integers` for `who`, or raise Limited and count nothing."""
        now = self.clock()
        since = now - WINDOW_SECONDS
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            for kind, amount, limit, what in (
                (
                    "submissions",
                    1,
                    quota.submissions_per_minute,
                    N_("at most %(limit)s requests a minute; try again in a moment"),
                ),
                (
                    "integers",
                    integers,
                    quota.integers_per_minute,
                    N_("at most %(limit)s integers a minute; try again in a moment"),
                ),
            ):
                used, oldest = self._used(db, f"{kind}:{who}", since)
                if used + amount > limit:
                    wait = (
                        (oldest + WINDOW_SECONDS - now)
                        if oldest is not None and amount <= limit
                        else WINDOW_SECONDS
                    )
                    raise Limited(what, wait, limit=limit)
            db.executemany(
                "INSERT INTO hits VALUES (?, ?, ?)",
                [(f"submissions:{who}", now, 1), (f"integers:{who}", now, integers)],
            )
            db.execute("DELETE FROM hits WHERE at < ?", (now - SIGNIN_WINDOW_SECONDS,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def signin_failures(self, key: str) -> tuple[int, float]:
        """Failed sign-ins of `key` (a client address or a name tried) lately, and the seconds until
        the oldest of them no longer counts."""
        now = self.clock()
        count, oldest = self._used(self._db(), f"signin:{key}", now - SIGNIN_WINDOW_SECONDS)
        return count, (oldest + SIGNIN_WINDOW_SECONDS - now) if oldest is not None else 0.0

    def signin_failed(self, *keys: str) -> None:
        now = self.clock()
        self._db().executemany("INSERT INTO hits VALUES (?, ?, 1)", [(f"signin:{key}", now) for key in keys])

    def sign_out(self, session: str, until: float) -> None:
        db = self._db()
        db.execute("INSERT OR REPLACE INTO signed_out VALUES (?, ?)", (session, until))
        db.execute("DELETE FROM signed_out WHERE until < ?", (self.clock(),))

    def is_signed_out(self, session: str) -> bool:
        found = self._db().execute("SELECT 1 FROM signed_out WHERE session = ?", (session,)).fetchone()
        return found is not None
