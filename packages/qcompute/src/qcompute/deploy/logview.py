"""`scripts/deploy logs`: the containers' lines from the stack's CloudWatch Logs groups, newest last.

The services write one JSON object per line (qcompute.logs); Docker's awslogs driver sends each line
as one event. They are printed readably (time, service, level, event, request id, the other fields)
or as written (--json). --request finds one request's lines in the three services with a filter
pattern of the quoted id; --follow asks again every few seconds for what is new, by event id.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code
from qcompute.deploy.session import DeployError, Deployment

# The services a request travels through; the proxy's lines do not carry request ids.
REQUEST_SERVICES = ("frontend", "worker", "logger")
DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A request id as the frontend issues it (a UUID, possibly signed): nothing a filter pattern would read
# as syntax.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
FOLLOW_SECONDS = 3.0
# Events reach CloudWatch Logs up to a little late: each poll looks back this far, and prints only
# the events it has not printed yet.
FOLLOW_OVERLAP_MS = 120_000
# The fields every line has, printed in their own columns.
_COLUMNS = {"timestamp", "level", "event", "service", "request_id", "logger"}


def parse_duration(value: str) -> int:
    """Seconds in 30s, 10m, 2h or 1d; raise ValueError otherwise."""
    match = DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration: a whole number and s, m, h or d, e.g. 10m or 2h")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def check_request_id(value: str) -> str:
    if not REQUEST_ID.match(value):
        raise ValueError(f"{value!r} is not a request id (letters, digits, hyphens, as the API shows it)")
    return value


@dataclass(frozen=True)
class Line:
    service: str
    stream: str
    timestamp: int  # ms since the epoch, as CloudWatch Logs stores it
    event_id: str
    message: str

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.timestamp, self.service, self.event_id)


def _events(deployment: Deployment, service: str, start_ms: int, pattern: str | None) -> Iterator[Line]:
    """Every event of a service's group since start_ms (matching the pattern), all pages."""
    arguments: dict[str, Any] = {"logGroupName": deployment.names.log_group(service), "startTime": start_ms}
    if pattern:
        arguments["filterPattern"] = pattern
    pages = deployment.logs.get_paginator("filter_log_events").paginate(**arguments)
    for page in pages:
        for event in page.get("events", []):
            yield Line(
                service,
                event.get("logStreamName", ""),
                int(event["timestamp"]),
                event["eventId"],
                event["message"].rstrip("\n"),
            )


def fetch(
    deployment: Deployment, services: Iterable[str], start_ms: int, pattern: str | None
) -> tuple[list[Line], list[str]]:
    """The lines of these services since start_ms, oldest first, and the services with no log group."""
    lines: list[Line] = []
    missing = []
    for service in services:
        try:
            lines.extend(_events(deployment, service, start_ms, pattern))
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
            missing.append(service)
    return sorted(lines, key=lambda line: line.key), missing


def _time(value: Any, fallback_ms: int) -> str:
    if isinstance(value, str) and value:
        return value.replace("+00:00", "Z")
    if isinstance(value, int | float):  # Caddy's "ts": seconds since the epoch
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        datetime.fromtimestamp(fallback_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return json.dumps(text) if not text or any(c.isspace() for c in text) else text


def readable(line: Line) -> str:
    """One line for a person: time, service, level, event, request id, then the other fields."""
    try:
        fields = json.loads(line.message)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return f"{_time(None, line.timestamp)} {line.service:<8} {line.message}"
    when = _time(fields.get("timestamp", fields.get("ts")), line.timestamp)
    level = str(fields.get("level", "")).lower()
    event = fields.get("event", fields.get("msg", ""))
    parts = [when, f"{line.service:<8}", f"{level:<7}", str(event)]
    if fields.get("request_id"):
        parts.append(f"request_id={fields['request_id']}")
    skipped = _COLUMNS | {"ts", "msg"}
    parts += [f"{key}={_value(value)}" for key, value in fields.items() if key not in skipped]
    return " ".join(parts)


def show(
    deployment: Deployment,
    *,
    services: Iterable[str],
    since_seconds: int,
    request_id: str | None = None,
    follow: bool = False,
    raw: bool = False,
    write: Callable[[str], None] = print,
    note: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    polls: int | None = None,
) -> int:
    """Print the lines; with follow, keep polling (until Ctrl-C, or `polls` more times in tests).
    Returns how many lines were printed."""
    services = list(services)
    pattern = f'"{request_id}"' if request_id else None
    start_ms = int((now() - since_seconds) * 1000)
    printed: dict[str, int] = {}  # event id -> timestamp, to print each event once
    count = 0
    rounds = 0
    while True:
        lines, missing = fetch(deployment, services, start_ms, pattern)
        if missing and rounds == 0:
            if len(missing) == len(services):
                raise DeployError(
                    f"stack {deployment.names.stack!r} has no log groups ({', '.join(missing)}): "
                    "run `scripts/deploy up` to make them"
                )
            note(f"no log group for {', '.join(missing)}: run `scripts/deploy up` to make it")
        for line in lines:
            if line.event_id in printed:
                continue
            printed[line.event_id] = line.timestamp
            write(line.message if raw else readable(line))
            count += 1
        if not follow or (polls is not None and rounds >= polls):
            return count
        rounds += 1
        newest = max(printed.values(), default=start_ms)
        start_ms = max(start_ms, newest - FOLLOW_OVERLAP_MS)
        printed = {event: stamp for event, stamp in printed.items() if stamp >= start_ms}
        sleep(FOLLOW_SECONDS)
