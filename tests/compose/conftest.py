"""The stack as users run it locally: `docker compose` with compose.yaml + compose.local.yaml.

`scripts/test --compose` prepares the engine and the offline images, then runs these tests; they
start the stack once (README's command, on free loopback ports), drive it only through 127.0.0.1,
and always end with `docker compose down -v`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from harness.backend import free_port
from harness.services import ROOT

ARTIFACTS = ROOT / "test-artifacts"
LOCAL_FILES = ["--env-file", "compose.local.env", "-f", "compose.yaml", "-f", "compose.local.yaml"]


@dataclass
class ComposeStack:
    project: str
    env: dict[str, str]
    http_port: int
    localstack_port: int
    files: list[str] = field(default_factory=lambda: list(LOCAL_FILES))
    # The checkout whose compose files (and bind-mounted folders) the stack runs from.
    directory: Path = ROOT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "-p", self.project, *self.files, *args]
        result = subprocess.run(
            command,
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """`docker inspect` of the stack's containers (all states), optionally of one service."""
        args = ["ps", "--all", "--quiet", *([service] if service else [])]
        ids = self.compose(*args).stdout.split()
        if not ids:
            return []
        inspected = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True, timeout=60
        )
        return json.loads(inspected.stdout)

    def aws(self, service: str) -> Any:
        """A client for the stack's LocalStack, through its port on 127.0.0.1."""
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{self.localstack_port}",
            region_name=self.env_value("AWS_REGION"),
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def env_value(self, name: str) -> str:
        for line in (ROOT / "compose.local.env").read_text().splitlines():
            if line.startswith(f"{name}="):
                return line.split("=", 1)[1]
        raise KeyError(name)


def _environment() -> dict[str, str]:
    # A stack gets its settings from compose.local.env only, never from the test's own AWS setup.
    return {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}


@pytest.fixture(scope="session")
def built_images() -> None:
    """The services' images, built once per run from this repository and shared by every stack."""
    ComposeStack("qcompute-build", _environment(), 0, 0).compose("build", timeout=1200)


@contextmanager
def started(
    project: str, log_name: str, extra_files: Sequence[str] = (), *, directory: Path = ROOT, **settings: str
) -> Iterator[ComposeStack]:
    """Start a stack on free loopback ports and wait until it is healthy; always save its logs (in
    test-artifacts/`log_name`) and `down -v` it. `settings` are more variables for compose; `directory`
    is the checkout it runs from (a copy, for a test that edits files)."""
    # The tests are one client address sending many requests; the limits are tested on their own
    # (tests/frontend/test_access.py).
    env = {**_environment(), "SUBMISSIONS_PER_MINUTE": "1000000", "INTEGERS_PER_MINUTE": str(10**12)}
    files = [*LOCAL_FILES, *(arg for name in extra_files for arg in ("-f", name))]
    stack = ComposeStack(project, env, free_port(), free_port(), files, directory)
    env.update(HTTP_PORT=str(stack.http_port), LOCALSTACK_PORT=str(stack.localstack_port), **settings)
    ARTIFACTS.mkdir(exist_ok=True)
    stack.compose("down", "--volumes", "--remove-orphans", check=False, timeout=300)
    try:
        stack.compose("up", "--no-build", "--detach", "--wait", "--wait-timeout", "300", timeout=600)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
        (ARTIFACTS / log_name).write_text(logs.stdout + logs.stderr)
        stack.compose("down", "--volumes", "--remove-orphans", check=False, timeout=300)


@pytest.fixture(scope="session")
def composed(built_images) -> Iterator[ComposeStack]:
    with started("qcompute-test", "compose.log") as stack:
        yield stack


@pytest.fixture(scope="session")
def start_stack(built_images) -> Callable[..., AbstractContextManager[ComposeStack]]:
    """Another stack on the same images: `with start_stack(project, log_name, extra_files, **settings)`."""
    return started


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
