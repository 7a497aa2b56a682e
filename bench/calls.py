"""The AWS calls of every process a run starts, counted by process, service and API within a window.

Each process records its own calls (tests/harness/record_calls): the services, the seed-style workers
and the Celery worker through the start-up hook, as files `<calls dir>/<process>.jsonl`; this process
(the load generator, and the seed-style and Celery clients it runs) by `record_here`. A phase's calls
are those that started inside its measured window, whichever file they are in.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import prices
from harness.backend import ROOT

HOOK = ROOT / "tests/harness/record_calls"
CLIENT = "client"  # this process: the load generator and the clients of the baselines


def recorder() -> ModuleType:
    """The recorder module, the same one the start-up hook installed if this process has it."""
    if str(HOOK) not in sys.path:
        sys.path.append(str(HOOK))
    import record_aws_calls

    return record_aws_calls


def hook_env(calls_dir: Path | None, process: str, pythonpath: str) -> dict[str, str]:
    """The environment that makes a child record its calls in `<calls_dir>/<process>.jsonl`."""
    if calls_dir is None:
        return {}
    calls_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PYTHONPATH": os.pathsep.join([pythonpath, str(HOOK)]),
        "RECORD_AWS_CALLS": str(calls_dir / f"{process}.jsonl"),
    }


def record_here(calls_dir: Path) -> None:
    """Record this process's own calls from now on (and kombu's asynchronous ones, if kombu is here)."""
    calls_dir.mkdir(parents=True, exist_ok=True)
    module = recorder()
    module.install(str(calls_dir / f"{CLIENT}.jsonl"))


def role(process: str) -> str:
    """What a process is, whichever one of several: worker-1 and worker-0 are both "worker"."""
    return re.sub(r"-\d+$", "", process)


@dataclass(frozen=True)
class Call:
    process: str
    service: str
    operation: str
    started: float  # Unix seconds
    billed: int  # requests AWS bills for it (one per 64 KB chunk for messages)


def read(calls_dir: Path) -> Iterator[Call]:
    """Every recorded call in the folder; a line cut short by a killed process is skipped."""
    for path in sorted(calls_dir.glob("*.jsonl")) if calls_dir.is_dir() else []:
        process = role(path.stem)
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                service, operation, started = entry["service"], entry["operation"], float(entry["t"])
            except (ValueError, KeyError, TypeError):
                continue
            billed = prices.billed_requests(service, operation, entry.get("bytes"))
            yield Call(process, service, operation, started, billed)


def count(calls: Iterable[Call], start: float, end: float) -> list[dict[str, Any]]:
    """Calls and billed requests that started in [start, end], by process, service and operation."""
    made: Counter[tuple[str, str, str]] = Counter()
    billed: Counter[tuple[str, str, str]] = Counter()
    for call in calls:
        if start <= call.started <= end:
            key = (call.process, call.service, call.operation)
            made[key] += 1
            billed[key] += call.billed
    return [
        {"process": p, "service": s, "operation": o, "calls": made[(p, s, o)], "billed": billed[(p, s, o)]}
        for p, s, o in sorted(made)
    ]


def in_window(calls_dir: Path | None, window: tuple[float, float] | None) -> list[dict[str, Any]]:
    if calls_dir is None or window is None:
        return []
    return count(read(calls_dir), *window)


def dollars(counted: Iterable[dict[str, Any]]) -> float:
    return sum(prices.dollars(c["service"], c["operation"], c["billed"]) for c in counted)


def unpriced(counted: Iterable[dict[str, Any]]) -> list[str]:
    """The services called that the price table does not price."""
    return sorted(
        {c["service"] for c in counted if prices.price_per_request(c["service"], c["operation"]) is None}
    )
