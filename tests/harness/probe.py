"""A client at a steady 20 requests/s through the proxy while a stack is rolled over: what it saw, and
the submissions it got accepted (tests/compose/test_rollout.py, and bench/rollout.py's table)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from harness import client

PROBE_RATE = 20  # requests per second, whatever the answers' speed


@dataclass
class Probe:
    """A client at a steady rate through the proxy: a submission, then the page, in turns."""

    url: str
    answers: list[tuple[str, int | str]] = field(default_factory=list)
    accepted: list[tuple[str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _one(self, n: int) -> None:
        try:
            if n % 2:
                response = requests.get(f"{self.url}/", timeout=30, allow_redirects=False)
                kind = "page"
            else:
                response = client.submit(self.url, [n, 1], ["sum"], wait=1)
                kind = "submit"
                if response.status_code in (200, 202):
                    with self._lock:
                        self.accepted.append((response.json()["id"], n + 1))
            outcome: int | str = response.status_code
        # Whatever went wrong counts, also an answer the API document does not describe (a proxy's 502).
        except Exception as error:  # noqa: BLE001
            kind, outcome = "error", f"{type(error).__name__}: {str(error)[:200]}"
        with self._lock:
            self.answers.append((kind, outcome))

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=64) as pool:
            start, n = time.monotonic(), 0
            while not self._stop.is_set():
                pool.submit(self._one, n)
                n += 1
                time.sleep(max(0.0, start + n / PROBE_RATE - time.monotonic()))

    def failures(self) -> list[tuple[str, int | str]]:
        with self._lock:
            return [(kind, code) for kind, code in self.answers if not (isinstance(code, int) and code < 400)]

    def stop(self) -> None:
        self._stop.set()


@contextmanager
def probing(url: str) -> Iterator[Probe]:
    probe = Probe(url)
    thread = threading.Thread(target=probe.run, name="probe", daemon=True)
    thread.start()
    try:
        yield probe
    finally:
        probe.stop()
        thread.join(timeout=60)
