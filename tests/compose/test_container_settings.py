"""Settings under compose, as users give them: a variable set in compose's environment reaches the
container (compose.yaml passes it on), and a bad one stops the container at once with one line naming
it and a non-zero exit. The worker's and logger's healthchecks look where HEALTH_FILE says.

Every variable of every service is tried as a process (tests/shared/test_configuration_errors.py);
here a few per service, in the images users get.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from harness.services import ROOT

pytestmark = pytest.mark.compose

PROJECT = "qcompute-settings"
FILES = ["--env-file", "compose.local.env", "-f", "compose.yaml", "-f", "compose.local.yaml"]
CASES = [
    ("frontend", "MAX_BACKLOG", "0"),
    ("frontend", "WEB_WORKERS", "two"),
    ("frontend", "REPLY_POLL_SECONDS", "30"),
    ("frontend", "LOG_FORMAT", "xml"),
    ("worker", "PARALLEL_FROM_NUMBERS", "0"),
    ("worker", "MAX_MESSAGE_BYTES", "300000"),
    # The image's root is read-only: the worker could never write its health file there.
    ("worker", "HEALTH_FILE", "/app/worker.alive"),
    ("logger", "CONSUMER_LOOPS", "33"),
    ("logger", "LOG_LEVEL", "loud"),
]


@pytest.fixture(scope="module")
def run_service(built_images) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """`docker compose run --rm --no-deps SERVICE` with more variables in compose's environment;
    compose's own progress is left out of the output."""
    # The stack's settings come from compose.local.env only, never from the test's own AWS setup.
    base = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}

    def run(service: str, **settings: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "docker",
                "compose",
                "--progress",
                "quiet",
                "-p",
                PROJECT,
                *FILES,
                "run",
                "--rm",
                "--no-deps",
                "-T",
                service,
            ],
            cwd=ROOT,
            env={**base, **settings},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        yield run
    finally:
        subprocess.run(
            ["docker", "compose", "-p", PROJECT, *FILES, "down", "--remove-orphans"],
            cwd=ROOT,
            env=base,
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.mark.parametrize(("service", "variable", "value"), CASES, ids=[f"{s}-{v}" for s, v, _ in CASES])
def test_a_bad_setting_stops_the_container_with_one_line_naming_it(
    run_service, service: str, variable: str, value: str
) -> None:
    result = run_service(service, **{variable: value})
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{service}: configuration error: {variable} "), lines


@pytest.mark.parametrize("service", ["worker", "logger"])
def test_the_healthcheck_reads_health_file(built_images, service: str) -> None:
    image = f"qcompute-{service}:{os.environ.get('IMAGE_TAG') or 'latest'}"  # as compose.yaml names it
    inspected = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", image],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    kind, *command = json.loads(inspected.stdout)
    assert kind == "CMD"

    def healthcheck(fresh_file: str, **env: str) -> int:
        """The image's healthcheck in a container where only `fresh_file` was just written."""
        settings = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
        container = ["--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", *settings]
        then = f'touch {fresh_file} && exec "$@"'
        return subprocess.run(
            ["docker", "run", *container, "--entrypoint", "sh", image, "-c", then, "sh", *command],
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode

    assert healthcheck(f"/tmp/{service}.alive") == 0, "the default file"
    assert healthcheck("/tmp/elsewhere.alive", HEALTH_FILE="/tmp/elsewhere.alive") == 0
    assert healthcheck(f"/tmp/{service}.alive", HEALTH_FILE="/tmp/elsewhere.alive") != 0, "not the default"
