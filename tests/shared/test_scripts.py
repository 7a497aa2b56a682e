"""The scripts a user runs (scripts/*): each one's --help shows its own usage and makes no environment,
and they accept what they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.clone import fresh_clone
from harness.services import ROOT

SCRIPTS = sorted(path.name for path in (ROOT / "scripts").iterdir() if path.is_file())


def test_every_script_of_readme_is_listed() -> None:
    assert {"deploy", "dlq", "provision", "soak", "submit", "teardown", "test", "users"} <= set(SCRIPTS)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_clone(tmp_path_factory.mktemp("clone"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_shows_the_scripts_own_usage_and_makes_nothing(name: str, clone: Path) -> None:
    # scripts/deploy and scripts/users hand --help to their Python parser: with PYTHON, the tests' own.
    env = {**os.environ, "PYTHON": sys.executable}
    shown = subprocess.run(
        [str(clone / "scripts" / name), "--help"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert re.search(
        rf"^usage: scripts/{re.escape(name)}( |$)", shown.stdout, re.IGNORECASE | re.MULTILINE
    ), shown.stdout
    assert "set -euo pipefail" not in shown.stdout
    assert "python -m" not in shown.stdout, "the usage of the script, not of a module it runs"
    assert shown.stderr == ""
    assert not (clone / ".cache").exists(), "--help makes no environment"


def _options(source: str) -> set[str]:
    """The long options an argparse parser in this source file accepts."""
    return set(re.findall(r'add_argument\(\s*"(--[a-z-]+)"', (ROOT / source).read_text()))


@pytest.mark.parametrize(
    ("script", "parser"), [("soak", "tests/harness/soak.py"), ("bench", "bench/__main__.py")]
)
def test_help_names_every_option_the_script_passes_on(script: str, parser: str, clone: Path) -> None:
    """These scripts show their own usage rather than make an environment to ask their module for it."""
    shown = subprocess.run(
        [str(clone / "scripts" / script), "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    options = _options(parser)
    assert options
    assert {option for option in options if option not in shown.stdout} == set()


class _Health(BaseHTTPRequestHandler):
    server: _StandIn

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"services": {}}')

    def log_message(self, format: str, *args: object) -> None:
        pass


class _StandIn(ThreadingHTTPServer):
    paths: list[str]


@pytest.fixture
def localstack_stand_in() -> Iterator[_StandIn]:
    """Something answering LocalStack's health check on 127.0.0.1, so scripts/soak uses it rather than
    start LocalStack: what the test sees is whether the script looked for LocalStack at all."""
    server = _StandIn(("127.0.0.1", 0), _Health)
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("arguments", "wants_localstack"),
    [
        (["--backend", "localstack"], True),
        (["--backend=localstack"], True),
        (["--backend=localstack+strict"], True),
        (["--backend", "moto", "--backend=localstack"], True),
        (["--backend=moto"], False),
        ([], False),
    ],
)
def test_soak_starts_localstack_for_either_form_of_backend(
    arguments: list[str], wants_localstack: bool, localstack_stand_in: _StandIn
) -> None:
    endpoint = f"http://127.0.0.1:{localstack_stand_in.server_address[1]}"
    env = {key: value for key, value in os.environ.items() if key != "TEST_BACKEND"}
    env["LOCALSTACK_ENDPOINT"] = endpoint
    # A bad --requests ends the run in the soak's own parser, once the script has done its part.
    ran = subprocess.run(
        [str(ROOT / "scripts/soak"), *arguments, "--requests", "none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "argument --requests: invalid int value" in ran.stderr
    assert ("using the LocalStack already answering at " + endpoint in ran.stdout) is wants_localstack
    assert ("/_localstack/health" in localstack_stand_in.paths) is wants_localstack
