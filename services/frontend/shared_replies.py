"""Replies the gunicorn processes of a container share, so a result one of them has answered is found
by the others at once.

A reply reaches only the process that sent the request (its own reply queue), and the S3 log record
the others read comes a moment later: the logger's copy goes through SNS and a queue of its own. In
that moment a GET served by a sibling process said "pending" for a request whose POST had just
answered "done".

One small SQLite table in the container's shared memory (WORKER_TMP_DIR, as in limits.py) holds the
latest replies: at most MAX_ROWS of at most MAX_REPLY_BYTES each, none older than KEEP_SECONDS. That
covers the logger's lag and stays small in /dev/shm (Docker gives it 64 MiB). A larger or older reply
is read from the log as before, and so is one answered by another container (a rollout's other
half): there the log is the truth, a moment later.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frontend.shm import ThreadConnections
from qcompute import contract
from qcompute.logs import get_logger

log = get_logger(__name__)

MAX_ROWS = 1_000
MAX_REPLY_BYTES = 16 * 1024
KEEP_SECONDS = 600.0
BUSY_SECONDS = 0.5


SCHEMA = """
    CREATE TABLE IF NOT EXISTS replies (id TEXT PRIMARY KEY, at REAL NOT NULL, body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS replies_by_time ON replies (at);
"""
# The gunicorn processes start together: one may find the file locked while another sets it up.
SETUP_SECONDS = 3.0
SETUP_RETRY_SECONDS = 1.0


class SharedReplies:
    """Never in the way: a failure to set up, write or read the table is logged and the replies are
    then found as before, in the log; a table not set up at start is tried again at most once a
    second."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = directory / "qcompute-replies.sqlite3"
        self.clock = clock
        # A short busy timeout: a reply is better delivered without its sharing than late.
        self.connections = ThreadConnections(self.path, timeout=BUSY_SECONDS)
        self.ready = False
        self.retry_at = 0.0
        deadline = time.monotonic() + SETUP_SECONDS
        while not self._try_set_up(report=False) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.ready:
            self._try_set_up(report=True)  # once more, saying why

    def _set_up(self) -> bool:
        """Whether the table is there, making it if need be (at most once a second after a failure)."""
        if self.ready:
            return True
        if time.monotonic() < self.retry_at:
            return False
        return self._try_set_up(report=True)

    def _try_set_up(self, *, report: bool) -> bool:
        try:
            self._db().executescript(SCHEMA)
            self.ready = True
        except sqlite3.Error as error:
            self.retry_at = time.monotonic() + SETUP_RETRY_SECONDS
            if report:
                log.warning("replies_not_shared", path=str(self.path), error=str(error))
        return self.ready

    def _db(self) -> sqlite3.Connection:
        return self.connections.get()

    def put(self, reply: dict[str, Any]) -> None:
        """Share a reply. Never fails the request (or the reply listener, which calls it): a reply not
        shared is read from the log instead."""
        if not self._set_up():
            return
        now = self.clock()
        try:
            body = contract.encode(reply)
            if not contract.fits(body, MAX_REPLY_BYTES):
                return
            db = self._db()
            db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (reply["id"], now, body))
            # A row replaced or added takes the next rowid: the newest MAX_ROWS are kept.
            db.execute(
                "DELETE FROM replies WHERE at < ? OR rowid <= (SELECT MAX(rowid) FROM replies) - ?",
                (now - KEEP_SECONDS, MAX_ROWS),
            )
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.warning("reply_not_shared", error=str(error))

    def get(self, request_id: str) -> dict[str, Any] | None:
        """A reply some process of this container received lately, or None."""
        if not self._set_up():
            return None
        try:
            row = (
                self._db()
                .execute(
                    "SELECT body FROM replies WHERE id = ? AND at >= ?",
                    (request_id, self.clock() - KEEP_SECONDS),
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            log.warning("shared_reply_unreadable", error=str(error))
            return None
        if row is None:
            return None
        try:
            return contract.decode_result(row[0])
        except contract.MalformedMessage:
            return None
