"""The tables of a run: load rows with their ratios to the emulator's ceiling and to this project; sizes."""

from __future__ import annotations

from collections.abc import Sequence

from bench.results import SYSTEMS, LoadRow, Run, SizeRow

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


def render(run: Run, *, markdown: bool = False) -> str:
    parts = [format_table(LOAD_HEADERS, load_table(run.load), markdown=markdown)]
    if run.sizes:
        parts.append(format_table(SIZE_HEADERS, size_table(run.sizes), markdown=markdown))
    if run.failures:
        parts.append("\n".join(f"FAILED: {failure}" for failure in run.failures))
    return "\n\n".join(parts)
