"""The issue's targets, judged on one run's LocalStack rows: met, or missed and by how much."""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import LoadRow, Run

BACKEND = "localstack"
CLIENTS = 16
LARGEST = 1_000_000
GIB = 1024


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: the run did not measure it

    def line(self) -> str:
        outcome = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        return f"{outcome:<12} {self.target}: {self.measured}"


def _row(run: Run, system: str, workers: int | None = None) -> LoadRow | None:
    rows = [
        r for r in run.load if (r.backend, r.system, r.clients) == (BACKEND, system, CLIENTS) and r.completed
    ]
    if workers is not None:
        rows = [r for r in rows if r.workers == workers]
    return max(rows, key=lambda r: r.rps, default=None)


def _against(value: float, goal: float) -> str:
    return f"{value / goal:.1f}x the {goal:g} ms goal"


def evaluate(run: Run) -> list[Verdict]:
    ours, ceiling = _row(run, "project"), _row(run, "raw")
    celery = _row(run, "celery", ours.workers) if ours else None
    verdicts = []
    target = f"req/s at {CLIENTS} clients >= 50% of the emulator ceiling"
    if ours and ceiling:
        share = ours.rps / ceiling.rps
        verdicts.append(Verdict(target, f"{ours.rps:.1f} / {ceiling.rps:.1f} = {share:.0%}", share >= 0.5))
    else:
        verdicts.append(Verdict(target, "-", None))
    target = ">= 3x Celery's req/s, p50 below 1/5 of Celery's"
    if ours and celery and ours.p50_ms and celery.p50_ms:
        times, fraction = ours.rps / celery.rps, ours.p50_ms / celery.p50_ms
        measured = f"{times:.2f}x the req/s, p50 {ours.p50_ms:.0f} vs {celery.p50_ms:.0f} ms ({fraction:.2f})"
        verdicts.append(Verdict(target, measured, times >= 3 and fraction < 0.2))
    else:
        verdicts.append(Verdict(target, "-", None))
    target = f"p50 < 50 ms and p99 < 250 ms at {CLIENTS} clients"
    if ours and ours.p50_ms is not None and ours.p99_ms is not None:
        measured = (
            f"p50 {ours.p50_ms:.0f} ms ({_against(ours.p50_ms, 50)}), "
            f"p99 {ours.p99_ms:.0f} ms ({_against(ours.p99_ms, 250)})"
        )
        verdicts.append(Verdict(target, measured, ours.p50_ms < 50 and ours.p99_ms < 250))
    else:
        verdicts.append(Verdict(target, "-", None))
    target = "1,000,000 integers end to end < 10 s, no service above 1 GiB"
    largest = next((s for s in run.sizes if (s.backend, s.size) == (BACKEND, LARGEST)), None)
    if largest and largest.seconds is not None:
        peak = max(largest.peak_mib.values(), default=0.0)
        measured = f"{largest.seconds:.1f} s, largest peak {peak:.0f} MiB"
        verdicts.append(Verdict(target, measured, largest.seconds < 10 and peak < GIB))
    else:
        verdicts.append(Verdict(target, largest.status if largest else "-", False if largest else None))
    return verdicts
