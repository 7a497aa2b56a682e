"""What runs on the instance: valid bash (bash -n, shellcheck), pinned downloads, no secret in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from harness.secrets import leaks
from qcompute.deploy import userdata
from qcompute.names import StackNames

NAMES = StackNames("demo", "123456789012", "eu-west-1")
USER_DATA_LIMIT = 16 * 1024  # what EC2 accepts, before base64


def _written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _scripts(tmp_path: Path) -> dict[str, Path]:
    return {
        "user data": _written(tmp_path, "user-data.sh", userdata.user_data(NAMES, 2)),
        "release script": _written(tmp_path, "release.sh", userdata.release_script(NAMES)),
        "rollout": _written(tmp_path, "rollout.sh", "\n".join(userdata.rollout_commands(NAMES, 2))),
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
    script = userdata.user_data(NAMES, 3)
    assert len(script.encode()) < USER_DATA_LIMIT
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    assert "dnf install -y docker" in script
    assert f"compose/releases/download/{userdata.COMPOSE_VERSION}/docker-compose-linux-x86_64" in script
    assert f"buildx/releases/download/{userdata.BUILDX_VERSION}/" in script
    assert "sha256sum -c -" in script
    assert len(re.findall(r"_sha=[0-9a-f]{64}\n", script)) == 4, "every download has its checksum"
    assert script.rstrip().endswith(f"{userdata.RELEASE_SCRIPT} 3")


def test_the_release_script_reads_the_secret_at_run_time_into_a_root_only_file() -> None:
    script = userdata.release_script(NAMES)
    assert f"aws s3 cp --only-show-errors s3://{NAMES.log_bucket}/{NAMES.bundle_key}" in script
    assert f"aws ssm get-parameter --name {NAMES.secret_key_parameter} --with-decryption" in script
    assert "(umask 077 && printf" in script
    assert 'docker compose --env-file "$app/stack.env" -f compose.yaml up -d --build' in script
    assert '--scale worker="$workers"' in script
    assert "export HOME=${HOME:-/root} AWS_REGION=eu-west-1" in script


def test_no_secret_or_credential_travels_in_user_data() -> None:
    everything = userdata.user_data(NAMES, 1) + "\n".join(userdata.rollout_commands(NAMES, 1))
    assert leaks(everything.encode()) == []
    assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", everything)
    assert "SECRET_KEY=%s" in everything, "the key is filled in on the instance, from SSM"


def test_a_rollout_rewrites_the_release_script_and_runs_it() -> None:
    commands = userdata.rollout_commands(NAMES, 4)
    assert userdata.release_script(NAMES) in commands[1]
    assert commands[-1] == f"{userdata.RELEASE_SCRIPT} 4"
