"""SQLite files in the container's shared memory (WORKER_TMP_DIR), which its gunicorn processes share:
the limits (limits.py) and the latest replies (shared_replies.py)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadConnections:
    """One connection per thread, in autocommit mode (a caller that needs one opens its own
    transaction, e.g. BEGIN IMMEDIATE). No fsync per write: what these files hold is forgotten on a
    restart anyway, and WAL with NORMAL stays consistent if a process dies (only an OS crash may lose
    the last writes)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.local = threading.local()

    def get(self) -> sqlite3.Connection:
        db = getattr(self.local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self.local.db = db
        return db
