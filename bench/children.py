"""The baselines' own processes (seed workers, the Celery worker), started and stopped like the services."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bench import calls
from harness.backend import ROOT, Backend
from harness.services import ServiceProcess

STOP_TIMEOUT_SECONDS = 30


def python_module(
    name: str,
    module: str,
    args: list[str],
    backend: Backend,
    log_dir: Path,
    *,
    calls_dir: Path | None = None,
    calls_as: str | None = None,
    **env: str,
) -> ServiceProcess:
    """`python -m module args` from the repository root, reaching the emulator like the services do.

    With `calls_dir`, its AWS calls are recorded there as `calls_as` (by default its name).
    """
    # The baselines import bench/ and the harness's emulator description.
    pythonpath = f"{ROOT}{os.pathsep}{ROOT / 'tests'}"
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(ROOT)),
        "PYTHONPATH": pythonpath,
        **calls.hook_env(calls_dir, calls_as or name, pythonpath),
        **backend.env,
        **env,
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    return ServiceProcess(name, [sys.executable, "-m", module, *args], environment, log_dir / f"{name}.log")


@contextmanager
def started(processes: list[ServiceProcess]) -> Iterator[list[ServiceProcess]]:
    """Start them all; at the end SIGTERM them all, then wait for each (SIGKILL after the timeout)."""
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            if process.process is not None:
                process.terminate()
        for process in processes:
            if process.process is not None:
                # stop() kills a process that outlives the timeout, then raises: its log says why.
                with suppress(AssertionError):
                    process.stop(timeout=STOP_TIMEOUT_SECONDS)
