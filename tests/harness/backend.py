"""The AWS emulator the integration tests run against.

TEST_BACKEND=moto (the default) starts an embedded moto server on a free loopback port;
TEST_BACKEND=localstack uses a LocalStack 4.14 already listening (scripts/test starts one) at
LOCALSTACK_ENDPOINT, by default http://127.0.0.1:4566. Either with "+strict" (moto+strict,
localstack+strict) puts the AWS-strict layer (harness.strict) in front of it: the services reach the
emulator through AWS's limits and injected failures, while the tests' own checks go to it directly.
"""

from __future__ import annotations

import json
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
    # Where the services send their calls: the emulator, or the strict layer in front of it.
    endpoint: str
    # The emulator itself, for the tests' own set-up and checks (no injected failures there).
    direct_endpoint: str = ""

    @property
    def direct(self) -> str:
        return self.direct_endpoint or self.endpoint

    @property
    def strict(self) -> bool:
        return bool(self.direct_endpoint)

    @property
    def env(self) -> dict[str, str]:
        """What a service needs to reach the backend: the SDK-standard variables only."""
        return backend_env(self.endpoint)

    @property
    def direct_env(self) -> dict[str, str]:
        return backend_env(self.direct)


def backend_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
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
            "SERVICES": "sqs,sns,s3,sts,ssm",
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
    emulator = Emulator(os.environ.get("TEST_BACKEND", "moto").partition("+")[0], log_dir)
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


@contextmanager
def emulator(log_dir: Path) -> Iterator[Backend]:
    """The backend TEST_BACKEND names: moto, localstack, moto+strict or localstack+strict."""
    choice = os.environ.get("TEST_BACKEND", "moto")
    kind, _, strict = choice.partition("+")
    if kind not in ("moto", "localstack") or strict not in ("", "strict"):
        raise RuntimeError(f"TEST_BACKEND must be moto or localstack, optionally +strict, not {choice!r}")
    with moto_server(log_dir) if kind == "moto" else localstack() as plain:
        if not strict:
            yield plain
            return
        with StrictLayer(plain.endpoint, log_dir, SUITE_SETTINGS) as layer:
            yield Backend(choice, layer.endpoint, plain.endpoint)


# What the whole suite runs under with +strict: AWS's limits, realistic latency, and 1% of calls failing
# (botocore's retries absorb nearly all of them; what they do not is the code's to survive).
SUITE_SETTINGS = {"fault_rate": 0.01, "latency_ms": [10, 30]}


class StrictControl:
    """The strict layer's control API (harness/strict/proxy.py), as methods."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def configure(self, **settings: object) -> dict:
        return self._call("PUT", "/settings", settings)

    def outage(self, service: str, seconds: float, kind: str = "unavailable") -> dict:
        return self._call("POST", "/outages", {"service": service, "seconds": seconds, "kind": kind})

    def end_outages(self) -> dict:
        return self._call("DELETE", "/outages")

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def reset_stats(self) -> dict:
        return self._call("POST", "/stats/reset")

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.endpoint}/_strict{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()


class StrictLayer(StrictControl):
    """The strict layer as a process of its own, in front of an emulator."""

    def __init__(self, upstream: str, log_dir: Path, settings: dict | None = None):
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        self.upstream = upstream
        self.log_dir = log_dir
        self.faults_log = log_dir / f"strict-{self.port}-faults.jsonl"
        self.settings = settings or {}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> StrictLayer:
        command = [
            sys.executable, "-m", "harness.strict", "--upstream", self.upstream, "--port", str(self.port),
            "--log", str(self.faults_log), "--settings", json.dumps(self.settings),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
        with (self.log_dir / f"strict-{self.port}.log").open("a") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        eventually(lambda: _answers(f"{self.endpoint}/_strict/health"), timeout=30, what="the strict layer")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def faults(self) -> list[dict]:
        """Every fault injected so far, as logged."""
        if not self.faults_log.exists():
            return []
        return [json.loads(line) for line in self.faults_log.read_text().splitlines() if line]
