"""Run a plan: on each emulator in turn, every system under every load, then the request sizes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import calls, celery_bench, emulators, history, project, raw, report, seed, sizes
from bench.load import Idle, Load, Measured
from bench.plan import Plan
from bench.results import SYSTEMS, IdleRow, LoadRow, Run
from harness.backend import Backend

Say = Callable[[str], None]


def _phases(plan: Plan, system: str, backend: Backend, log_dir: Path, workers: int | None):
    """Each system's phases: idle first (raw has nothing running to be idle), then every load."""
    loads, quiet, record = plan.loads(), plan.idle(), calls_dir(log_dir)
    measures: dict[str, Callable[[], Iterator[tuple[Load | Idle, Measured]]]] = {
        "raw": lambda: raw.measure(backend, loads),
        "project": lambda: project.measure(backend, log_dir, workers, loads, quiet, record),
        "seed": lambda: seed.measure(backend, log_dir, workers, loads, quiet, record),
        "celery": lambda: celery_bench.measure(
            backend, log_dir, workers, loads, plan.celery_poll_seconds, quiet, record
        ),
    }
    return measures[system]()


def calls_dir(log_dir: Path) -> Path:
    """Where every process on one emulator records its AWS calls."""
    return log_dir / "calls"


def run_plan(plan: Plan, log_dir: Path, say: Say, *, smoke: bool) -> Run:
    run = Run(backends=list(plan.backends), smoke=smoke)
    started = time.monotonic()
    saved = dict(os.environ)
    try:
        for kind in plan.backends:
            say(f"==> starting {kind} on a free loopback port")
            try:
                with emulators.running(kind, log_dir / kind) as backend:
                    # This process reaches the emulator as the services do: the SDK's standard variables.
                    os.environ.update(backend.env)
                    # The load generator and the baselines' clients run here: record this process too.
                    calls.record_here(calls_dir(log_dir / kind))
                    _run_backend(plan, backend, log_dir / kind, run, say)
            except Exception as error:  # noqa: BLE001 - the other emulator's results are still worth having
                _failed(run, say, kind, error)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        run.seconds = round(time.monotonic() - started, 1)
    return run


def _failed(run: Run, say: Say, label: str, error: Exception) -> None:
    """A phase that could not run: kept in the results, and said at once."""
    run.failures.append(f"{label}: {type(error).__name__}: {error}")
    say(f"    {label}: FAILED: {type(error).__name__}: {error}")


def _progress(label: str, row: LoadRow) -> str:
    return (
        f"    {label}, {row.clients} clients: {row.completed}/{row.sent} in {row.seconds:.1f} s, "
        f"{row.rps:.1f} req/s, p50 {row.p50_ms} ms, {row.errors} errors (phase {row.phase_seconds} s), "
        f"{report.calls_per_request(row):.1f} AWS calls/request"
    )


def _idle_progress(label: str, row: IdleRow) -> str:
    made = sum(c["calls"] for c in row.aws_calls)
    return f"    {label}, idle: {made} AWS calls in {row.seconds:g} s"


def _run_backend(plan: Plan, backend: Backend, log_dir: Path, run: Run, say: Say) -> None:
    for system in plan.systems:
        for workers in [None] if system == "raw" else plan.workers:
            label = f"{backend.name}: {SYSTEMS[system]}" + (f", {workers} worker(s)" if workers else "")
            mark = time.monotonic()
            try:
                for load, measured in _phases(plan, system, backend, log_dir, workers):
                    made = calls.in_window(calls_dir(log_dir), measured.window)
                    if isinstance(load, Idle):
                        quiet = IdleRow(backend.name, system, workers, round(measured.seconds, 3), made)
                        quiet.cpu_seconds = dict(measured.cpu_seconds)
                        run.idle.append(quiet)
                        say(_idle_progress(label, quiet))
                        mark = time.monotonic()
                        continue
                    row = LoadRow.measured(
                        measured,
                        backend=backend.name,
                        system=system,
                        workers=workers,
                        clients=load.clients,
                        aws_calls=made,
                    )
                    row.phase_seconds = round(time.monotonic() - mark, 1)
                    mark = time.monotonic()
                    run.load.append(row)
                    say(_progress(label, row))
            except Exception as error:  # noqa: BLE001 - one broken system must not lose the others' results
                _failed(run, say, label, error)
    if plan.sizes:
        _run_sizes(plan, backend, log_dir, run, say)
    # Last: the history leaves its stack of records for the emulator's stop to take (bench.history).
    if plan.history_objects and backend.name in plan.history_backends:
        _run_history(plan, backend, log_dir, run, say)


def _run_sizes(plan: Plan, backend: Backend, log_dir: Path, run: Run, say: Say) -> None:
    mark = time.monotonic()
    try:
        rows = sizes.measure(backend, log_dir / "sizes", list(plan.sizes))
    except Exception as error:  # noqa: BLE001 - as above
        _failed(run, say, f"{backend.name}: sizes", error)
        return
    run.sizes.extend(rows)
    for row in rows:
        say(f"    {backend.name}: {row.size:,} integers: {row.status}, {row.seconds} s, {row.peak_mib} MiB")
    say(f"    {backend.name}: sizes took {time.monotonic() - mark:.1f} s")


def _run_history(plan: Plan, backend: Backend, log_dir: Path, run: Run, say: Say) -> None:
    say(f"    {backend.name}: history: writing {plan.history_objects:,} log records")
    try:
        rows = history.measure(
            backend, log_dir / "history", plan.history_objects, plan.history_pages, calls_dir(log_dir)
        )
    except Exception as error:  # noqa: BLE001 - as above
        _failed(run, say, f"{backend.name}: history", error)
        return
    run.history.extend(rows)
    for row in rows:
        say(
            f"    {backend.name}: history {row.page}: p50 {row.p50_ms} ms, p95 {row.p95_ms} ms, "
            f"{row.lists_per_page} LIST and {row.heads_per_page} HEAD a page (filled in {row.fill_seconds} s)"
        )
