"""The containers' logs in CloudWatch Logs: `up` makes one group per service (retention, the stack's
tag), `down` removes them, and `scripts/deploy logs` prints what the awslogs driver sent, against moto."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid

from harness.services import ROOT
from qcompute.deploy import logview
from qcompute.names import LOGGED_SERVICES, STACK_TAG

# What a service prints, made by the services' own logging set-up (qcompute.logs) in a process of its own.
EMIT = """
import sys
import structlog
from qcompute import logs
service, request_id, event = sys.argv[1:4]
logs.configure(service, log_format="json")
structlog.contextvars.bind_contextvars(request_id=request_id)
logs.get_logger(f"{service}.main").info(event, count=3, note="two words")
"""


def _service_line(service: str, request_id: str, event: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", EMIT, service, request_id, event],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    (line,) = done.stdout.splitlines()
    return line


def _send(deployment, service: str, lines: list[str], at_ms: int) -> None:
    """As Docker's awslogs driver does: a stream named after the container, one event per line."""
    group, stream = deployment.names.log_group(service), f"qcompute-{service}-1"
    with contextlib.suppress(deployment.logs.exceptions.ResourceAlreadyExistsException):
        deployment.logs.create_log_stream(logGroupName=group, logStreamName=stream)
    events = [{"timestamp": at_ms + i, "message": line} for i, line in enumerate(lines)]
    deployment.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def _groups(deployment) -> dict[str, dict]:
    found = deployment.logs.describe_log_groups(logGroupNamePrefix=f"/qcompute/{deployment.names.stack}/")
    return {group["logGroupName"]: group for group in found["logGroups"]}


def test_up_makes_the_log_groups_and_logs_prints_one_requests_lines(deploy, inspect, stack_name) -> None:
    planned = deploy("plan", "--stack", stack_name)
    groups = [f"/qcompute/{stack_name}/{service}" for service in LOGGED_SERVICES]
    assert [row for row in deploy.changes(planned.stdout) if row[1] == "log group"] == [
        ("create", "log group", f"{group} (kept 30 days)") for group in groups
    ]
    deploy("up", "--stack", stack_name, "--no-wait")
    deployment = inspect(stack_name)
    made = _groups(deployment)
    assert sorted(made) == sorted(groups)
    for group in groups:
        assert made[group]["retentionInDays"] == 30
        arn = f"{deployment.names.log_group_arn(group.rsplit('/', 1)[1])}"
        assert deployment.logs.list_tags_for_resource(resourceArn=arn)["tags"] == {STACK_TAG: stack_name}

    # A retention asked for is applied, then kept by an `up` that does not name one.
    changed = deploy("up", "--stack", stack_name, "--no-wait", "--log-retention-days", "14")
    assert [row[0] for row in deploy.changes(changed.stdout) if row[1] == "log group"] == ["update"] * 4
    again = deploy("up", "--stack", stack_name, "--no-wait")
    assert {row[0] for row in deploy.changes(again.stdout)} == {"ok"}, "a second up changes nothing"
    assert {group["retentionInDays"] for group in _groups(deployment).values()} == {14}
    status = deploy("status", "--stack", stack_name).stdout
    assert f"/qcompute/{stack_name}/worker" in status
    assert "kept 14 days" in status

    # The lines the three services write for one request, and another request's.
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    now = int(time.time() * 1000)
    events = {"frontend": "request_submitted", "worker": "computed", "logger": "logged"}
    for offset, (service, event) in enumerate(events.items()):
        lines = [_service_line(service, ours, event), _service_line(service, theirs, event)]
        _send(deployment, service, lines, now - 180_000 + offset * 1000)
    _send(deployment, "proxy", ['{"level":"info","ts":1767225600.5,"logger":"http.log","msg":"x"}'], now)

    found = deploy("logs", "--stack", stack_name, "--request", ours).stdout.splitlines()
    assert len(found) == 3, found
    for line, (service, event) in zip(found, events.items(), strict=True):
        # time, service, level, event, request id, then the other fields
        stamp, shown_service, level, shown_event, request, *rest = line.split()
        assert stamp.endswith("Z")
        assert stamp[:4].isdigit()
        assert (shown_service, level, shown_event, request) == (service, "info", event, f"request_id={ours}")
        assert "count=3" in rest
        assert 'note="two words"' in line
    assert theirs not in "\n".join(found)

    raw = deploy("logs", "--stack", stack_name, "--request", ours, "--json").stdout.splitlines()
    assert [json.loads(line)["service"] for line in raw] == list(events)
    assert {json.loads(line)["request_id"] for line in raw} == {ours}

    worker = deploy("logs", "--stack", stack_name, "--service", "worker", "--since", "1h").stdout
    assert [line.split()[1] for line in worker.splitlines()] == ["worker", "worker"]
    assert ours in worker
    assert theirs in worker
    # Older than --since: not shown. The service lines are three minutes old, the proxy's new: a minute
    # apart from it on each side, however slow the commands before were.
    assert deploy("logs", "--stack", stack_name, "--since", "2m").stdout.splitlines() == [
        line for line in deploy("logs", "--stack", stack_name).stdout.splitlines() if " proxy " in line
    ]

    deploy("down", "--stack", stack_name, "--yes")
    assert _groups(deployment) == {}


def test_follow_prints_each_new_line_once(deploy, inspect, stack_name) -> None:
    deploy("up", "--stack", stack_name, "--no-wait")
    deployment = inspect(stack_name)
    now = int(time.time() * 1000)
    _send(deployment, "worker", ['{"event":"first","level":"info"}'], now - 5000)
    printed: list[str] = []
    later = iter(['{"event":"second","level":"info"}', '{"event":"third","level":"info"}'])

    def meanwhile(_seconds: float) -> None:
        _send(deployment, "worker", [next(later)], int(time.time() * 1000))

    shown = logview.show(
        deployment,
        services=["worker"],
        since_seconds=60,
        follow=True,
        raw=True,
        write=printed.append,
        sleep=meanwhile,
        polls=2,
    )
    assert [json.loads(line)["event"] for line in printed] == ["first", "second", "third"]
    assert shown == 3


def test_a_duration_and_a_request_id_are_checked() -> None:
    assert [logview.parse_duration(value) for value in ("30s", "10m", "2h", "1d")] == [30, 600, 7200, 86400]
    for bad in ("10", "m", "0m", "1w", "-5m"):
        try:
            logview.parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
    for bad in ('abc" || "', "a b", ""):
        try:
            logview.check_request_id(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_a_log_group_of_the_stacks_name_but_not_its_tag_is_refused_and_left_alone(
    deploy, inspect, stack_name
) -> None:
    deployment = inspect(stack_name)
    group = deployment.names.log_group("proxy")
    deployment.logs.create_log_group(logGroupName=group)
    try:
        refused = deploy("up", "--stack", stack_name, "--no-wait", ok=False)
        assert refused.returncode == 1
        assert f"log group {group}" in refused.stderr
        assert list(_groups(deployment)) == [group], "nothing else was made"
        left = deploy("down", "--stack", stack_name, "--yes")
        assert ("skip", "log group", f"{group} (not tagged with this stack)") in deploy.changes(left.stdout)
        assert list(_groups(deployment)) == [group]
    finally:
        deployment.logs.delete_log_group(logGroupName=group)
