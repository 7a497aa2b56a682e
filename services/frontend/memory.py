"""Large requests take turns, so a small instance is never out of memory.

A million numbers cost a frontend process 100-200 MB while they are parsed, stored, and their results
read back and answered; two or three at once would exceed the container's memory limit and have the
kernel kill a process in the middle of its requests. So a request that is about to hold that much
(a large body, a large object read from S3) first takes one of a few slots shared by every process of
the container (a file lock in the gunicorn processes' shared /dev/shm), waits a little for one to free
up, and otherwise is refused with 503 and Retry-After: nothing is lost, the client tries again. Small
requests never wait. When a large request ends, freed memory is handed back to the system, or each
process would keep the high-water mark of the largest request it ever served.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import time
from pathlib import Path
from typing import IO

from flask import current_app, g

from qcompute.logs import get_logger
from qcompute.messages import N_, Explained

log = get_logger(__name__)

# Bodies and S3 objects above this hold enough memory to count as large (a message is at most 256 KiB).
LARGE_BYTES = 1024 * 1024
POLL_SECONDS = 0.1


class Busy(Explained):
    """Every large-request slot stayed taken for the whole wait: the client should try again."""


class LargeRequestSlots:
    def __init__(self, directory: Path, slots: int, wait_seconds: float):
        self.paths = [directory / f"qcompute-large-{n}.lock" for n in range(slots)]
        self.wait_seconds = wait_seconds

    def acquire(self) -> IO[bytes]:
        """Take a free slot (its locked file, to pass to `release`), waiting up to `wait_seconds`."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            for path in self.paths:
                handle = path.open("a+b")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    handle.close()
            if time.monotonic() > deadline:
                raise Busy(
                    N_("the service is busy with other large requests; please try again in a few seconds")
                )
            time.sleep(POLL_SECONDS)

    @staticmethod
    def release(handle: IO[bytes]) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def reserve_large() -> None:
    """Hold a large-request slot until this HTTP request ends (see `end_of_request`)."""
    if g.get("large_slot") is None:
        started = time.monotonic()
        g.large_slot = current_app.extensions["large_slots"].acquire()
        log.info("large_request_admitted", waited_seconds=round(time.monotonic() - started, 2))


def reserve_if_large_body(content_length: int | None, method: str) -> None:
    """Before a body is read: a large one, or one of unknown length, takes a slot first."""
    if method in ("POST", "PUT") and (content_length is None or content_length > LARGE_BYTES):
        reserve_large()


def end_of_request(_error: BaseException | None = None) -> None:
    slot = g.pop("large_slot", None)
    if slot is not None:
        LargeRequestSlots.release(slot)
        _give_memory_back()


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if os.name == "posix" else None


def _give_memory_back() -> None:
    """Return the heap's free pages to the system (glibc's malloc_trim), where the C library has it."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
