"""The three services as real processes, started the way their containers start them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from harness.backend import free_port
from harness.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "test-secret-key-for-signing-0123456789"


@dataclass
class Stack:
    """A provisioned stack: its name, the clients the test uses, and the environment for services."""

    name: str
    clients: Any
    env: dict[str, str]


@dataclass
class ServiceProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = field(default=None, init=False)
    _terminated: bool = field(default=False, init=False)

    def start(self) -> ServiceProcess:
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines printed so far, optionally only those of one event."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if event is None or entry.get("event") == event:
                    lines.append(entry)
        return lines

    def wait_for_event(self, event: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
        def seen() -> list[dict[str, Any]]:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            found = self.events(event)
            return found if len(found) >= count else []

        return eventually(seen, timeout=timeout, what=f"{count} x {event!r} from {self.name}")

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def terminate(self) -> None:
        """Send SIGTERM once: a second one would force the stop instead of letting it finish."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 45) -> int | None:
        """SIGTERM and wait, as `docker compose stop` does; SIGKILL if it does not exit in time."""
        if self.process is None:
            return None
        self.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout} s of SIGTERM") from None
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Frontend(ServiceProcess):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> Frontend:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                return requests.get(f"{self.url}/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        eventually(ready, timeout=timeout, what=f"{self.name} /readyz")
        return self


def service_env(stack: Stack, **overrides: Any) -> dict[str, str]:
    env = {
        # Shorter than the 10 s default: a SIGTERM lets the receive in flight end (abandoning it would
        # hide what it took for the visibility timeout), so every test's teardown waits up to this.
        # The compose tests keep the production default; the benchmark sets its own.
        "LONG_POLL_SECONDS": "2",
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT / "services"),
        "LOG_FORMAT": "json",
        "SECRET_KEY": SECRET_KEY,
        # Tests, soaks and benchmarks are one client address sending thousands of requests; the
        # limits on abuse have tests of their own (tests/frontend/test_access.py), which set them.
        "SUBMISSIONS_PER_MINUTE": "1000000",
        "INTEGERS_PER_MINUTE": str(10**12),
        **stack.env,
    }
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def worker(stack: Stack, log_dir: Path, name: str = "worker", **env: Any) -> ServiceProcess:
    health = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.alive"
    return ServiceProcess(
        name,
        [sys.executable, "-m", "worker"],
        service_env(stack, WORKER_NAME=name, HEALTH_FILE=health, **env),
        log_dir / f"{name}.log",
    ).start()


def logger(stack: Stack, log_dir: Path, name: str = "logger", **env: Any) -> ServiceProcess:
    health = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.alive"
    return ServiceProcess(
        name,
        [sys.executable, "-m", "logger"],
        service_env(stack, HEALTH_FILE=health, **env),
        log_dir / f"{name}.log",
    ).start()


def frontend(stack: Stack, log_dir: Path, name: str = "frontend", **env: Any) -> Frontend:
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # Its own shared-memory directory, as each container has its own /dev/shm: the processes of one
    # frontend share it, two frontends (two containers) do not.
    shared = log_dir / f"{name}.shm"
    shared.mkdir(exist_ok=True)
    settings = {"BIND": f"127.0.0.1:{port}", "WEB_WORKERS": 2, "WORKER_TMP_DIR": shared, **env}
    process = Frontend(
        name,
        [str(gunicorn), "-c", str(ROOT / "services/frontend/gunicorn.conf.py")],
        service_env(stack, **settings),
        log_dir / f"{name}.log",
        port=port,
    )
    process.start()
    return process
