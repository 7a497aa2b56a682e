"""The development loop on the compose stack (compose.develop.yaml: scripts/local watch), and the operator
tools reaching that stack by themselves (--local), with no AWS variable in their environment.

It runs on a copy of the repository (the edits never touch the working tree), on the images built for
the other compose tests: the loop must serve the edits without building anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import devloop
from harness.clone import fresh_clone

pytestmark = pytest.mark.compose

SERVICES = ("frontend", "worker", "logger")


def _image_ids(stack) -> dict[str, str]:
    return {service: stack.containers(service)[0]["Image"] for service in SERVICES}


def _tool(copy: Path, stack, *command: str) -> subprocess.CompletedProcess:
    """A script of the copy, as on a fresh clone with the local stack up: no AWS variable at all."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    # The stack runs on free ports (the tests'), not on 4566 and 8080; PYTHON: the tests' own
    # interpreter (it has localstack-client), so no deployer venv is made here.
    env.update(
        LOCALSTACK_PORT=str(stack.localstack_port), HTTP_PORT=str(stack.http_port), PYTHON=sys.executable
    )
    for name in ("STACK_NAME", "SECRET_KEY"):
        env.pop(name, None)
    return subprocess.run(
        [str(copy / command[0]), *command[1:]],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_watch_serves_an_edited_template_and_operation_without_a_rebuild(start_stack, tmp_path: Path) -> None:
    copy = fresh_clone(tmp_path / "repo")
    with start_stack(
        "qcompute-devloop", "compose-devloop.log", ["compose.develop.yaml"], directory=copy
    ) as stack:
        # The operator tools, finding the stack by themselves: names from compose.local.env, LocalStack
        # through localstack-client's session. First: the soak checks the results of the unedited `sum`.
        provisioned = _tool(copy, stack, "scripts/provision", "--local")
        assert provisioned.returncode == 0, provisioned.stderr
        assert "stack 'local' at the local stack at http://127.0.0.1:" in provisioned.stdout
        assert "ok     queue        local-requests" in provisioned.stdout

        listed = _tool(copy, stack, "scripts/dlq", "--local", "list")
        assert listed.returncode == 0, listed.stderr
        assert "local-requests-dlq: 0 message(s)" in listed.stdout

        submitted = _tool(copy, stack, "scripts/submit", "--local", "4", "8", "15", "--op", "max")
        assert submitted.returncode == 0, submitted.stderr
        assert "max        15" in submitted.stdout

        # scripts/soak makes the tests' virtualenv: the copy borrows this one.
        (copy / ".cache").mkdir(exist_ok=True)
        (copy / ".cache/venv").symlink_to(Path(sys.executable).parent.parent)
        soaked = _tool(copy, stack, "scripts/soak", "--local", "--requests", "30", "--concurrency", "4")
        assert soaked.returncode == 0, soaked.stdout + soaked.stderr
        assert "OK: accepted = answered = logged" in soaked.stdout

        # The development loop.
        images = _image_ids(stack)
        watch_log = tmp_path / "watch.log"
        with devloop.compose_watch(copy, stack.project, stack.env, watch_log):
            took = devloop.template_and_operation(copy, stack.url)
        print(f"edit to served: template {took['template']:.1f} s, operation {took['operation']:.1f} s")
        assert _image_ids(stack) == images, "served without building an image"
        assert "Rebuilding" not in watch_log.read_text()
