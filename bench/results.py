"""What one benchmark run measured: a row per load phase and per request size, kept as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import Measured, percentile

# The systems compared, in the order the tables show them.
SYSTEMS = {
    "raw": "raw SQS (ceiling)",
    "project": "qcompute (HTTP API)",
    "seed": "seed-style baseline",
    "celery": "Celery (SQS + S3)",
}


@dataclass
class LoadRow:
    """One system under one fixed load: `clients` threads sending `sent` requests."""

    backend: str
    system: str
    workers: int | None  # None for the raw ceiling, which has no worker
    clients: int
    sent: int
    completed: int
    errors: int
    seconds: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    capped: bool = False  # the phase hit its time cap before sending everything
    first_error: str | None = None
    incident: str | None = None  # something the system did besides answering, e.g. a process exited
    phase_seconds: float = 0.0  # wall time of the whole phase, set-up included
    # The AWS calls every process made in the measured part, by process, service and operation
    # ({"process", "service", "operation", "calls", "billed"}: see bench/calls.py), and each
    # service's CPU seconds in it (bench/cpu.py). Divided by `completed` for the cost tables.
    aws_calls: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def measured(
        cls,
        measured: Measured,
        *,
        backend: str,
        system: str,
        workers: int | None,
        clients: int,
        aws_calls: list[dict[str, Any]] | None = None,
    ) -> LoadRow:
        def rounded(fraction: float) -> float | None:
            value = percentile(measured.latencies_ms, fraction)
            return None if value is None else round(value, 2)

        return cls(
            backend=backend,
            system=system,
            workers=workers,
            clients=clients,
            sent=measured.sent,
            completed=measured.completed,
            errors=measured.errors,
            seconds=round(measured.seconds, 3),
            p50_ms=rounded(0.50),
            p95_ms=rounded(0.95),
            p99_ms=rounded(0.99),
            capped=measured.capped,
            first_error=measured.first_error,
            incident="; ".join(measured.incidents) or None,
            aws_calls=aws_calls or [],
            cpu_seconds=dict(measured.cpu_seconds),
        )


@dataclass
class IdleRow:
    """One system started and left without load for `seconds`: what it calls and burns meanwhile."""

    backend: str
    system: str
    workers: int | None
    seconds: float
    aws_calls: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class SizeRow:
    """One request of `size` integers through the project, and each service's peak memory."""

    backend: str
    size: int
    status: str  # "done", "refused (400: code)", or what went wrong
    seconds: float | None = None  # submission to result, as the client saw it
    logged_seconds: float | None = None  # submission to the record being in S3
    peak_mib: dict[str, float] = field(default_factory=dict)  # service -> VmHWM, children summed


@dataclass
class HistoryRow:
    """One history page read `pages` times from a log of `objects` records (bench/history.py)."""

    backend: str
    objects: int
    page: str  # "first page" or how deep
    fill_seconds: float | None = None
    pages: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    max_ms: float | None = None
    lists_per_page: float | None = None  # the frontend's ListObjectsV2 calls per page
    heads_per_page: float | None = None
    listing_ms: float | None = None  # one listing of 100 keys straight to the emulator, for scale
    status: str = "done"


@dataclass
class Run:
    backends: list[str]
    smoke: bool
    load: list[LoadRow] = field(default_factory=list)
    sizes: list[SizeRow] = field(default_factory=list)
    idle: list[IdleRow] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # phases that could not run at all
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        for row, saved in zip(self.load, document["load"], strict=True):
            saved["rps"] = round(row.rps, 2)
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Run:
        load = [LoadRow(**{k: v for k, v in row.items() if k != "rps"}) for row in document.get("load", [])]
        sizes = [SizeRow(**row) for row in document.get("sizes", [])]
        idle = [IdleRow(**row) for row in document.get("idle", [])]
        history = [HistoryRow(**row) for row in document.get("history", [])]
        rest = {k: v for k, v in document.items() if k not in ("load", "sizes", "idle", "history")}
        return cls(load=load, sizes=sizes, idle=idle, history=history, **rest)
