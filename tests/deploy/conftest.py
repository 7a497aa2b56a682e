"""The deploy tests' own moto server (the LocalStack stage has no EC2 or IAM), `scripts/deploy` and
`scripts/users` run as real processes against it, and clients to inspect what they made."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from harness.backend import REGION, Backend, moto_server
from harness.services import ROOT
from qcompute.deploy.session import Deployment, connect


@pytest.fixture(scope="session")
def deploy_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            # moto knows AWS-managed policies (AmazonSSMManagedInstanceCore) only when asked to.
            patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            backend = stack.enter_context(moto_server(tmp_path_factory.mktemp("deploy-moto")))
        yield backend


def _hermetic_env(backend: Backend) -> dict[str, str]:
    """Only the emulator's settings: no credentials, profile or stack of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "STACK_NAME"}
    return {
        **env,
        **backend.env,
        "PYTHON": sys.executable,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # No instance-metadata probe: test traffic stays on 127.0.0.1.
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class Deploy:
    """Runs scripts/deploy (or another script) against the deploy tests' moto server."""

    backend: Backend
    script: str = "scripts/deploy"

    def __call__(
        self,
        *argv: str,
        ok: bool = True,
        unset: tuple[str, ...] = (),
        timeout: float = 300,
        stdin: str = "",
    ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in _hermetic_env(self.backend).items() if k not in unset}
        result = subprocess.run(
            [str(ROOT / self.script), *argv],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if ok:
            command = f"{self.script} {' '.join(argv)}"
            assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        return result

    @staticmethod
    def changes(output: str) -> list[tuple[str, str, str]]:
        """The (action, resource, name and detail) rows a command printed."""
        rows = []
        for line in output.splitlines():
            action, resource, rest = line[2:8].strip(), line[9:23].strip(), line[24:]
            if line.startswith("  ") and action in {"create", "update", "ok", "delete", "skip"}:
                rows.append((action, resource, rest))
        return rows


@pytest.fixture
def deploy(deploy_backend: Backend) -> Deploy:
    return Deploy(deploy_backend)


@pytest.fixture
def users(deploy_backend: Backend) -> Deploy:
    """Runs scripts/users against the deploy tests' moto server."""
    return Deploy(deploy_backend, "scripts/users")


@pytest.fixture
def inspect(deploy_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Deployment]:
    """Clients on the deploy tests' emulator for a stack, to check what the commands made."""
    for key, value in _hermetic_env(deploy_backend).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)

    def for_stack(stack: str, region: str = REGION) -> Deployment:
        return connect(stack, region, endpoint_url=deploy_backend.endpoint)

    return for_stack


@pytest.fixture
def stack_name(deploy: Deploy) -> Iterator[str]:
    """A random stack name; the stack and its "-2" neighbour are removed afterwards, whatever happens."""
    name = f"d{secrets.token_hex(4)}"
    yield name
    for stack in (name, f"{name}-2"):
        deploy("down", "--stack", stack, "--yes", ok=False)
