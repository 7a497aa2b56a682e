"""The development loop without Docker (scripts/dev): the stack as processes on a moto server, each
service restarted when its code changes. On a copy of the repository, so the edits never touch the
working tree; the copy uses the tests' virtualenv rather than making its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import devloop
from harness.backend import free_port
from harness.clone import fresh_clone


def test_scripts_dev_serves_an_edited_template_and_operation(tmp_path: Path) -> None:
    copy = fresh_clone(tmp_path / "repo")
    # A shell with no AWS variable at all; free ports, not 8080 and 4566.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HTTP_PORT=str(free_port()), LOCALSTACK_PORT=str(free_port()))
    venv = Path(sys.executable).parent.parent
    with devloop.dev_processes(copy, venv, env, tmp_path / "dev.log") as url:
        took = devloop.template_and_operation(copy, url)
        print(f"edit to served: template {took['template']:.1f} s, operation {took['operation']:.1f} s")
        listed = subprocess.run(
            [str(copy / "scripts/dlq"), "--local", "list"],
            cwd=copy,
            env={**env, "PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert "local-requests-dlq: 0 message(s)" in listed.stdout
    logs = {path.name for path in (copy / ".cache/dev").iterdir()}
    assert {"frontend.log", "worker.log", "logger.log"} <= logs
