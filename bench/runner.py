"""Run a plan: on each emulator in turn, every system under every load, then the request sizes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import celery_bench, emulators, project, raw, seed, sizes
from bench.load import Load, Measured
from bench.plan import Plan
from bench.results import SYSTEMS, LoadRow, Run
from harness.backend import Backend

Say = Callable[[str], None]


def _phases(plan: Plan, system: str, backend: Backend, log_dir: Path, workers: int | None):
    loads = plan.loads()
    measures: dict[str, Callable[[], Iterator[tuple[Load, Measured]]]] = {
        "raw": lambda: raw.measure(backend, loads),
        "project": lambda: project.measure(backend, log_dir, workers, loads),
        "seed": lambda: seed.measure(backend, log_dir, workers, loads),
        "celery": lambda: celery_bench.measure(backend, log_dir, workers, loads, plan.celery_poll_seconds),
    }
    return measures[system]()


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
                    _run_backend(plan, backend, log_dir / kind, run, say)
            except Exception as error:  # noqa: BLE001 - the other emulator's results are still worth having
                run.failures.append(f"{kind}: {type(error).__name__}: {error}")
                say(f"    {kind}: FAILED: {type(error).__name__}: {error}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
        run.seconds = round(time.monotonic() - started, 1)
    return run


def _progress(label: str, row: LoadRow) -> str:
    return (
        f"    {label}, {row.clients} clients: {row.completed}/{row.sent} in {row.seconds:.1f} s, "
        f"{row.rps:.1f} req/s, p50 {row.p50_ms} ms, {row.errors} errors (phase {row.phase_seconds} s)"
    )


def _run_backend(plan: Plan, backend: Backend, log_dir: Path, run: Run, say: Say) -> None:
    for system in plan.systems:
        for workers in [None] if system == "raw" else plan.workers:
            label = f"{backend.name}: {SYSTEMS[system]}" + (f", {workers} worker(s)" if workers else "")
            mark = time.monotonic()
            try:
                for load, measured in _phases(plan, system, backend, log_dir, workers):
                    row = LoadRow.measured(
                        measured, backend=backend.name, system=system, workers=workers, clients=load.clients
                    )
                    row.phase_seconds = round(time.monotonic() - mark, 1)
                    mark = time.monotonic()
                    run.load.append(row)
                    say(_progress(label, row))
            except Exception as error:  # noqa: BLE001 - one broken system must not lose the others' results
                run.failures.append(f"{label}: {type(error).__name__}: {error}")
                say(f"    {label}: FAILED: {type(error).__name__}: {error}")
    if plan.sizes:
        _run_sizes(plan, backend, log_dir, run, say)


def _run_sizes(plan: Plan, backend: Backend, log_dir: Path, run: Run, say: Say) -> None:
    mark = time.monotonic()
    try:
        rows = sizes.measure(backend, log_dir / "sizes", list(plan.sizes))
    except Exception as error:  # noqa: BLE001 - as above
        run.failures.append(f"{backend.name}: sizes: {type(error).__name__}: {error}")
        say(f"    {backend.name}: sizes: FAILED: {type(error).__name__}: {error}")
        return
    run.sizes.extend(rows)
    for row in rows:
        say(f"    {backend.name}: {row.size:,} integers: {row.status}, {row.seconds} s, {row.peak_mib} MiB")
    say(f"    {backend.name}: sizes took {time.monotonic() - mark:.1f} s")
