"""The tables of a run: load rows with their ratios to the emulator's ceiling and to this project; sizes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from bench import calls, prices
from bench.results import SYSTEMS, HistoryRow, IdleRow, LoadRow, Run, SizeRow

SERVICES = ("frontend", "worker", "logger")


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def ceiling_for(rows: Sequence[LoadRow], row: LoadRow) -> LoadRow | None:
    """The raw emulator row with the same backend and number of clients."""
    return next(
        (r for r in rows if r.system == "raw" and (r.backend, r.clients) == (row.backend, row.clients)), None
    )


def project_for(rows: Sequence[LoadRow], row: LoadRow) -> LoadRow | None:
    """This project's row under the same load: same workers, or its best when the row has no workers."""
    same_load = [
        r for r in rows if r.system == "project" and (r.backend, r.clients) == (row.backend, row.clients)
    ]
    if row.workers is None:
        return max(same_load, key=lambda r: r.rps, default=None)
    return next((r for r in same_load if r.workers == row.workers), None)


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _note(row: LoadRow) -> str:
    notes = []
    if row.errors:
        notes.append(
            f"{row.errors} errors ({row.first_error})" if row.first_error else f"{row.errors} errors"
        )
    if row.capped:
        notes.append("time cap reached")
    if row.incident:
        notes.append(row.incident)
    return "; ".join(notes)


LOAD_HEADERS = [
    "backend", "system", "workers", "clients", "done/sent", "req/s", "p50 ms", "p95 ms", "p99 ms",
    "req/s ÷ ceiling", "req/s ÷ qcompute", "p50 ÷ qcompute", "notes",
]  # fmt: skip


def load_table(rows: Sequence[LoadRow]) -> list[list[str]]:
    table = []
    for row in rows:
        ceiling, reference = ceiling_for(rows, row), project_for(rows, row)
        table.append(
            [
                row.backend,
                SYSTEMS.get(row.system, row.system),
                "-" if row.workers is None else str(row.workers),
                str(row.clients),
                f"{row.completed}/{row.sent}",
                _number(row.rps),
                _number(row.p50_ms),
                _number(row.p95_ms),
                _number(row.p99_ms),
                _times(ratio(row.rps, ceiling.rps if ceiling else None)),
                _times(ratio(row.rps, reference.rps if reference else None)),
                _times(ratio(row.p50_ms, reference.p50_ms if reference else None)),
                _note(row),
            ]
        )
    return table


SIZE_HEADERS = ["backend", "integers", "status", "end to end s", "logged s", *(f"{s} MiB" for s in SERVICES)]


def size_table(rows: Sequence[SizeRow]) -> list[list[str]]:
    return [
        [
            row.backend,
            f"{row.size:,}",
            row.status,
            _number(row.seconds, 2),
            _number(row.logged_seconds, 2),
            *(_number(row.peak_mib.get(service)) for service in SERVICES),
        ]
        for row in rows
    ]


HISTORY_HEADERS = [
    "backend",
    "log records",
    "page",
    "fill s",
    "reads",
    "p50 ms",
    "p95 ms",
    "max ms",
    "LIST/page",
    "HEAD/page",
    "one LIST ms",
]


def history_table(rows: Sequence[HistoryRow]) -> list[list[str]]:
    return [
        [
            row.backend,
            f"{row.objects:,}",
            row.page if row.status == "done" else f"{row.page}: {row.status}",
            _number(row.fill_seconds, 0),
            str(row.pages),
            _number(row.p50_ms),
            _number(row.p95_ms),
            _number(row.max_ms),
            _number(row.lists_per_page, 2),
            _number(row.heads_per_page, 2),
            _number(row.listing_ms),
        ]
        for row in rows
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False) -> str:
    """Aligned columns for a terminal, or a GitHub markdown table."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(f"{cell:<{w}}" for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


LEGEND = [
    "raw SQS (ceiling): SendMessage + ReceiveMessage + DeleteMessage per message, same client threads.",
    "qcompute: POST /api/requests end to end (frontend, worker, logger as real processes).",
    "seed-style baseline: one shared response queue, short polling, one message per call; replies for "
    "other clients put back with visibility 0.",
    "Celery: kombu's SQS broker and the S3 result backend on the same emulator, `.delay().get()`.",
    "Each request: 10-100 integers, operations sum, mean, median, max; every answer is checked.",
    "÷ ceiling and ÷ qcompute: the row's figure divided by the ceiling's, or this project's, "
    "under the same load (same clients; same workers).",
]


def calls_per_request(row: LoadRow) -> float:
    return sum(c["calls"] for c in row.aws_calls) / row.completed if row.completed else 0.0


def per_million(counted: Iterable[dict[str, Any]], completed: int) -> float | None:
    """Dollars per million requests of the system, from the calls made while `completed` were answered."""
    return calls.dollars(counted) / completed * 1_000_000 if completed else None


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    # Cents where they matter; two significant figures below ten cents, so small costs still show.
    return f"${value:,.2f}" if value >= 0.1 or value == 0 else f"${value:.2g}"


def _per_request(value: float, completed: int) -> str:
    return f"{value / completed:.2f}" if completed else "-"


COST_SERVICES = ("sqs", "sns", "s3")
COST_HEADERS = [
    "backend", "system", "workers", "clients", "done", "AWS calls/req",
    *(f"{s} calls/req" for s in COST_SERVICES), "billed/req", "$ per million req", "unpriced",
]  # fmt: skip


def cost_table(rows: Sequence[LoadRow]) -> list[list[str]]:
    """Per load row: AWS calls per answered request, by service, and what they cost per million requests."""
    table = []
    for row in rows:
        if not row.aws_calls:
            continue
        by_service: dict[str, int] = defaultdict(int)
        for counted in row.aws_calls:
            by_service[counted["service"]] += counted["calls"]
        billed = sum(c["billed"] for c in row.aws_calls)
        table.append(
            [
                row.backend,
                SYSTEMS.get(row.system, row.system),
                "-" if row.workers is None else str(row.workers),
                str(row.clients),
                str(row.completed),
                _per_request(sum(by_service.values()), row.completed),
                *(_per_request(by_service.get(service, 0), row.completed) for service in COST_SERVICES),
                _per_request(billed, row.completed),
                _money(per_million(row.aws_calls, row.completed)),
                ", ".join(calls.unpriced(row.aws_calls)) or "-",
            ]
        )
    return table


def merged(counts: Iterable[Iterable[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several phases' counts as one, by process, service and operation."""
    total: dict[tuple[str, str, str], dict[str, Any]] = {}
    for counted in counts:
        for c in counted:
            key = (c["process"], c["service"], c["operation"])
            into = total.setdefault(key, {**c, "calls": 0, "billed": 0})
            into["calls"] += c["calls"]
            into["billed"] += c["billed"]
    return [total[key] for key in sorted(total)]


WHERE_HEADERS = ["backend", "system", "workers", "process", "API", "calls/req", "$ per million req", "share"]


def where_table(rows: Sequence[LoadRow]) -> list[list[str]]:
    """Where the money goes: each system's calls by process and API over all its loads, dearest first."""
    groups: dict[tuple[str, str, int | None], list[LoadRow]] = defaultdict(list)
    for row in rows:
        if row.aws_calls and row.completed:
            groups[(row.backend, row.system, row.workers)].append(row)
    table = []
    for (backend, system, workers), members in groups.items():
        completed = sum(r.completed for r in members)
        counted = merged(r.aws_calls for r in members)
        total = calls.dollars(counted)
        costs = sorted(counted, key=lambda c: (-calls.dollars([c]), -c["calls"]))
        for c in costs:
            cost = calls.dollars([c])
            table.append(
                [
                    backend,
                    SYSTEMS.get(system, system),
                    "-" if workers is None else str(workers),
                    c["process"],
                    f"{c['service']} {c['operation']}",
                    _per_request(c["calls"], completed),
                    _money(per_million([c], completed)),
                    f"{cost / total:.0%}" if total else "-",
                ]
            )
    return table


# The emulator's own CPU in the same window: what the system's AWS calls cost the machine. It is
# shown after the total, which is the system's own.
EMULATOR_PROCESS = "emulator"


def own_cpu(cpu_seconds: dict[str, float]) -> float:
    """A system's CPU seconds: its processes', without the emulator's."""
    return sum(seconds for process, seconds in cpu_seconds.items() if process != EMULATOR_PROCESS)


IDLE_HEADERS = [
    "backend", "system", "workers", "watched s", "calls", "calls/hour", "$ per month", "CPU % of a core",
    "most calls",
]  # fmt: skip


def hourly(row: IdleRow, value: float) -> float:
    return value * 3600 / row.seconds if row.seconds else 0.0


def idle_table(rows: Sequence[IdleRow]) -> list[list[str]]:
    """Each system left alone: its calls scaled to an hour, and their price over a month of 730 hours."""
    table = []
    for row in rows:
        made = sum(c["calls"] for c in row.aws_calls)
        top = max(row.aws_calls, key=lambda c: c["calls"], default=None)
        share = (
            f"{top['process']} {top['service']} {top['operation']} ({top['calls'] / made:.0%})"
            if top
            else "-"
        )
        cpu = own_cpu(row.cpu_seconds)
        table.append(
            [
                row.backend,
                SYSTEMS.get(row.system, row.system),
                "-" if row.workers is None else str(row.workers),
                f"{row.seconds:g}",
                str(made),
                f"{hourly(row, made):,.0f}",
                _money(hourly(row, calls.dollars(row.aws_calls)) * prices.HOURS_PER_MONTH),
                f"{100 * cpu / row.seconds:.1f}" if row.seconds else "-",
                share,
            ]
        )
    return table


# The processes whose CPU is shown, in this order; "client" is the benchmark's own process.
CPU_PROCESSES = ("frontend", "worker", "logger", "seed-worker", "celery-worker", "client")


def cpu_headers(rows: Sequence[LoadRow]) -> list[str]:
    shown = [p for p in CPU_PROCESSES if any(p in r.cpu_seconds for r in rows)]
    emulator = [f"{EMULATOR_PROCESS} ms/req"] if any(EMULATOR_PROCESS in r.cpu_seconds for r in rows) else []
    return [
        "backend",
        "system",
        "workers",
        "clients",
        *(f"{p} ms/req" for p in shown),
        "total ms/req",
        *emulator,
    ]


def cpu_table(rows: Sequence[LoadRow]) -> list[list[str]]:
    """CPU milliseconds per answered request, per process (children included), from /proc."""
    shown = [p for p in CPU_PROCESSES if any(p in r.cpu_seconds for r in rows)]
    emulator = any(EMULATOR_PROCESS in r.cpu_seconds for r in rows)

    def ms(seconds: float | None, row: LoadRow) -> str:
        return "-" if seconds is None or not row.completed else f"{1000 * seconds / row.completed:.2f}"

    return [
        [
            row.backend,
            SYSTEMS.get(row.system, row.system),
            "-" if row.workers is None else str(row.workers),
            str(row.clients),
            *(ms(row.cpu_seconds.get(p), row) for p in shown),
            ms(own_cpu(row.cpu_seconds), row),
            *([ms(row.cpu_seconds.get(EMULATOR_PROCESS), row)] if emulator else []),
        ]
        for row in rows
        if row.cpu_seconds
    ]


PRICE_HEADERS = ["service", "requests", f"price (us-east-1, {prices.TAKEN})"]

COST_LEGEND = [
    "Calls are those every process made (services, baselines' workers, Celery's worker, and the "
    "benchmark's own clients) that started inside the measured part of a phase, warm-ups excluded, "
    "divided by the requests it answered; calls still in flight at either edge fall on one side.",
    "billed/req counts one request per 64 KB chunk of a message payload (SendMessage, SendMessageBatch, "
    "ReceiveMessage, Publish, PublishBatch; one per batch of up to 10); $ per million req prices them "
    "with bench/prices.py (request prices only: free tiers, storage and data transfer left out).",
    "Idle: each system started, left alone a moment, then watched without load; calls/hour and "
    "$ per month (730 hours) are that short window scaled, so a few seconds' window is a rough figure. "
    "The services run with LONG_POLL_SECONDS=5 (bench/project.py; production's default is 10).",
    "CPU: user + system time from /proc of each process and its descendants over the measured part, "
    "per answered request; client is the benchmark's own process (load generator and the baselines' "
    "client libraries); total is the system's own; emulator is the emulator's in the same window, what "
    "the system's AWS calls cost the machine.",
]


def render(run: Run, *, markdown: bool = False) -> str:
    parts = [format_table(LOAD_HEADERS, load_table(run.load), markdown=markdown)]
    if run.sizes:
        parts.append(format_table(SIZE_HEADERS, size_table(run.sizes), markdown=markdown))
    if run.history:
        parts.append(format_table(HISTORY_HEADERS, history_table(run.history), markdown=markdown))
    cost = cost_table(run.load)
    if cost:
        parts.append(format_table(COST_HEADERS, cost, markdown=markdown))
    if run.idle:
        parts.append(format_table(IDLE_HEADERS, idle_table(run.idle), markdown=markdown))
    if any(row.cpu_seconds for row in run.load):
        parts.append(format_table(cpu_headers(run.load), cpu_table(run.load), markdown=markdown))
    if run.failures:
        parts.append("\n".join(f"FAILED: {failure}" for failure in run.failures))
    return "\n\n".join(parts)
