"""The performance issue's targets, judged on one run's LocalStack rows: met, or missed and by how much."""

from __future__ import annotations

from dataclasses import dataclass

from bench import report
from bench.results import LoadRow, Run

BACKEND = "localstack"
CLIENT_COUNTS = (1, 4, 16, 64)
CEILING_CLIENTS = 16
LARGEST = 1_000_000
HISTORY_OBJECTS = 1_000_000
PEERS = ("seed", "celery")
# The instance the services share has 1 GiB: a peak at or above it means the request would not fit.
MEMORY_MIB = 1024


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: the run did not measure it

    def line(self) -> str:
        outcome = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        return f"{outcome:<12} {self.target}: {self.measured}"


def _best(run: Run, system: str, clients: int) -> LoadRow | None:
    """The system's best row at that load (its fastest worker count)."""
    rows = [
        r for r in run.load if (r.backend, r.system, r.clients) == (BACKEND, system, clients) and r.completed
    ]
    return max(rows, key=lambda r: r.rps, default=None)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ahead(run: Run) -> Verdict:
    target = "at 1, 4, 16 and 64 clients, req/s >= every peer's and p50 <= theirs"
    parts, judged = [], []
    for clients in CLIENT_COUNTS:
        ours = _best(run, "project", clients)
        peers = [row for system in PEERS if (row := _best(run, system, clients))]
        if ours is None or not peers:
            return Verdict(target, "-", None)
        fastest = max(peers, key=lambda r: r.rps)
        quickest = min(peers, key=lambda r: float("inf") if r.p50_ms is None else r.p50_ms)
        faster = ours.rps >= fastest.rps
        parts.append(
            f"{clients}: {ours.rps:.0f} vs {fastest.rps:.0f} req/s ({fastest.system}), "
            f"p50 {_ms(ours.p50_ms)} vs {_ms(quickest.p50_ms)} ms ({quickest.system})"
        )
        if ours.p50_ms is None or any(r.p50_ms is None for r in peers):
            # A missing p50 (ours or a peer's) says nothing of who is quicker: not judged at this
            # load, neither a win nor a loss; fewer req/s is still a miss.
            judged.append(None if faster else False)
            parts[-1] += " (a p50 missing: not judged)"
        else:
            judged.append(faster and ours.p50_ms <= quickest.p50_ms)
    # A load missed decides; otherwise a load not judged leaves the whole unjudged.
    met = False if False in judged else None if None in judged else True
    return Verdict(target, "; ".join(parts), met)


def _ceiling(run: Run) -> Verdict:
    target = f"at {CEILING_CLIENTS} clients, >= 60% of the emulator's ceiling and p99 <= 250 ms"
    ours, ceiling = _best(run, "project", CEILING_CLIENTS), _best(run, "raw", CEILING_CLIENTS)
    if not (ours and ceiling and ours.p99_ms is not None):
        return Verdict(target, "-", None)
    share = ours.rps / ceiling.rps
    measured = f"{ours.rps:.0f} / {ceiling.rps:.0f} = {share:.0%}, p99 {ours.p99_ms:.0f} ms"
    return Verdict(target, measured, share >= 0.6 and ours.p99_ms <= 250)


def _cost(run: Run) -> Verdict:
    target = f"$ per million requests <= 1/3 of Celery's (at {CEILING_CLIENTS} clients)"
    ours, celery = _best(run, "project", CEILING_CLIENTS), _best(run, "celery", CEILING_CLIENTS)
    if not (ours and celery and ours.aws_calls and celery.aws_calls):
        return Verdict(target, "-", None)
    mine = report.per_million(ours.aws_calls, ours.completed)
    theirs = report.per_million(celery.aws_calls, celery.completed)
    if mine is None or not theirs:
        return Verdict(target, "-", None)
    measured = f"${mine:.2f} vs ${theirs:.2f} ({mine / theirs:.2f} of Celery's)"
    return Verdict(target, measured, mine <= theirs / 3)


def _history(run: Run) -> Verdict:
    target = f"history pages over {HISTORY_OBJECTS:,} records: p95 < 300 ms, <= 2 listings a page"
    rows = [r for r in run.history if r.backend == BACKEND and r.status == "done" and r.p95_ms is not None]
    if not rows:
        return Verdict(target, "-", None)
    measured = "; ".join(
        f"{r.page} over {r.objects:,}: p95 {r.p95_ms:.0f} ms, {r.lists_per_page:g} listings" for r in rows
    )
    met = all((r.p95_ms or 0) < 300 and (r.lists_per_page or 0) <= 2 for r in rows)
    if min(r.objects for r in rows) < HISTORY_OBJECTS:
        return Verdict(target, f"{measured} (fewer records than the target's)", None)
    return Verdict(target, measured, met)


def _largest(run: Run) -> Verdict:
    target = f"{LARGEST:,} integers end to end < 1.5 s, every service's peak stated and < {MEMORY_MIB} MiB"
    largest = next((s for s in run.sizes if (s.backend, s.size) == (BACKEND, LARGEST)), None)
    if largest is None:
        return Verdict(target, "-", None)
    if largest.seconds is None:
        return Verdict(target, largest.status, False)
    peaks = ", ".join(f"{name} {mib:.0f} MiB" for name, mib in largest.peak_mib.items())
    fits = all(mib < MEMORY_MIB for mib in largest.peak_mib.values())
    measured = f"{largest.seconds:.2f} s; peaks {peaks} (the instance has 1 GiB, {MEMORY_MIB} MiB)"
    return Verdict(target, measured, largest.seconds < 1.5 and fits)


def evaluate(run: Run) -> list[Verdict]:
    return [_ahead(run), _ceiling(run), _cost(run), _history(run), _largest(run)]
