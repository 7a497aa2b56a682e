"""The AWS emulator the integration tests run against.

TEST_BACKEND=moto (the default) starts an embedded moto server on a free loopback port;
TEST_BACKEND=localstack uses a LocalStack 4.14 already listening (scripts/test starts one) at
LOCALSTACK_ENDPOINT, by default http://127.0.0.1:4566.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.waiting import eventually

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Backend:
    name: str
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What any process needs to reach the emulator: the SDK-standard variables only."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


class Emulator:
    """An emulator process on its own loopback port that a test can stop and start again."""

    def __init__(self, kind: str, log_dir: Path):
        self.kind = kind
        self.port = free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.backend = Backend(kind, f"http://127.0.0.1:{self.port}")

    def _command(self) -> tuple[list[str], dict[str, str]]:
        if self.kind == "moto":
            return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], dict(
                os.environ
            )
        python = os.environ.get("LOCALSTACK_VENV_PYTHON", str(ROOT / ".cache/localstack-venv/bin/python"))
        env = {
            **os.environ,
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "SERVICES": "sqs,sns,s3,sts",
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "FILESYSTEM_ROOT": str(self.log_dir / f"localstack-{self.port}"),
        }
        return [python, "-m", "localstack.runtime.main"], env

    def start(self) -> None:
        command, env = self._command()
        with (self.log_dir / f"{self.kind}-{self.port}.log").open("a") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        health = "/moto-api/" if self.kind == "moto" else "/_localstack/health"
        eventually(
            lambda: _answers(self.backend.endpoint + health), timeout=120, what=f"{self.kind} to start"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def restartable_emulator(log_dir: Path) -> Iterator[Emulator]:
    """A private emulator of the selected kind (TEST_BACKEND), for tests that stop and restart it."""
    emulator = Emulator(os.environ.get("TEST_BACKEND", "moto"), log_dir)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@contextmanager
def moto_server(log_dir: Path) -> Iterator[Backend]:
    emulator = Emulator("moto", log_dir)
    emulator.start()
    try:
        yield emulator.backend
    finally:
        emulator.stop()


@contextmanager
def localstack() -> Iterator[Backend]:
    endpoint = os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
    if not _answers(f"{endpoint}/_localstack/health"):
        raise RuntimeError(
            f"TEST_BACKEND=localstack but nothing answers at {endpoint}; "
            "run the tests with `scripts/test --backend localstack`, which starts it"
        )
    yield Backend("localstack", endpoint)


def emulator(log_dir: Path) -> contextmanager:
    choice = os.environ.get("TEST_BACKEND", "moto")
    if choice == "moto":
        return moto_server(log_dir)
    if choice == "localstack":
        return localstack()
    raise RuntimeError(f"TEST_BACKEND must be moto or localstack, not {choice!r}")
