"""What a run measures: the full benchmark, or the smoke test CI runs (tiny counts, no timing asserted)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.load import Idle, Load

SYSTEM_ORDER = ("raw", "project", "seed", "celery")


@dataclass(frozen=True)
class Plan:
    backends: tuple[str, ...]
    systems: tuple[str, ...]
    clients: tuple[int, ...]
    workers: tuple[int, ...]
    requests: int  # per load phase; never fewer than MIN_PER_CLIENT per client
    warmup_per_client: int
    phase_seconds: float  # no new request starts after this, whatever is left
    sizes: tuple[int, ...]
    celery_poll_seconds: float = 0.05  # how often Celery's `.get()` polls the S3 result backend
    idle_seconds: float = 30.0  # each system watched without load for this long (0: not at all)
    history_objects: int = 0  # log records for the history phase (0: no history phase)
    history_pages: int = 50  # times each history page is read
    history_backends: tuple[str, ...] = ("localstack",)

    MIN_PER_CLIENT = 4

    def describe(self) -> str:
        return (
            f"{', '.join(self.backends)}; {', '.join(self.systems)}; clients {self.clients}; "
            f"workers {self.workers}; {self.requests} requests a phase (>= {self.MIN_PER_CLIENT} a client) "
            f"after {self.warmup_per_client} warm-up(s) a client, capped at {self.phase_seconds:g} s; "
            f"sizes {self.sizes}; Celery polls its results every {self.celery_poll_seconds:g} s; "
            f"idle {self.idle_seconds:g} s; history of {self.history_objects:,} records on "
            f"{', '.join(self.history_backends)}, each page read {self.history_pages} times"
        )

    def loads(self) -> list[Load]:
        return [
            Load(c, max(self.requests, self.MIN_PER_CLIENT * c), self.warmup_per_client, self.phase_seconds)
            for c in self.clients
        ]

    def idle(self) -> Idle | None:
        """The idle phase each system starts with: long enough to see a few long polls in the full run."""
        if self.idle_seconds <= 0:
            return None
        return Idle(self.idle_seconds, settle=2.0 if self.idle_seconds >= 10 else 0.5)


FULL = Plan(
    backends=("localstack", "moto"),
    systems=SYSTEM_ORDER,
    clients=(1, 4, 16, 64),
    workers=(1, 2),
    requests=400,
    warmup_per_client=2,
    phase_seconds=90.0,
    sizes=(10, 1_000, 100_000, 1_000_000),
    history_objects=1_000_000,
)

SMOKE = Plan(
    backends=("localstack", "moto"),
    systems=SYSTEM_ORDER,
    clients=(1, 4),
    workers=(1,),
    requests=12,
    warmup_per_client=1,
    phase_seconds=60.0,
    sizes=(10, 1_000),
    idle_seconds=1.0,
    history_objects=2_000,
    history_pages=5,
    history_backends=("localstack", "moto"),
)


def chosen(smoke: bool, backend: str | None, **overrides: object) -> Plan:
    """The base plan, with `--backend both|localstack|moto` and any explicit option applied."""
    plan = SMOKE if smoke else FULL
    if backend is not None:
        plan = replace(plan, backends=("localstack", "moto") if backend == "both" else (backend,))
    return replace(plan, **{key: value for key, value in overrides.items() if value is not None})
