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


@contextmanager
def moto_server(log_dir: Path) -> Iterator[Backend]:
    port = free_port()
    log = (log_dir / "moto.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _answers(f"{endpoint}/moto-api/"), timeout=60, what="moto server")
        yield Backend("moto", endpoint)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


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
