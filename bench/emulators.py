"""The emulators the benchmark runs on, each started here on a free loopback port and stopped after."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import cpu
from harness.backend import ROOT, Backend, Emulator

# moto's request log (one line per call, on stderr) costs it a good part of its throughput; the
# benchmark measures the emulator, not its logging.
QUIET_MOTO = (
    "import logging, sys; logging.getLogger('werkzeug').setLevel(logging.WARNING); "
    "from moto.server import main; main(sys.argv[1:])"
)


class BenchEmulator(Emulator):
    """The tests' emulator launcher, with what Celery needs and a data folder under .cache/."""

    def __init__(self, kind: str, log_dir: Path):
        super().__init__(kind, log_dir)
        self.data_dir = ROOT / ".cache" / "bench" / f"localstack-{self.port}"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        command, env = super()._command()
        if self.kind == "moto":
            return [sys.executable, "-c", QUIET_MOTO, "-H", "127.0.0.1", "-p", str(self.port)], env
        env.update(
            FILESYSTEM_ROOT=str(self.data_dir),
            # Queue URLs on this port, reachable as they are: the default host
            # (sqs.<region>.localhost.localstack.cloud) needs DNS we lack here. kombu 5.7 posts to its
            # endpoint with botocore's JSON protocol and so works either way; an older kombu (query
            # protocol) or anything else that calls a queue URL directly needs this.
            SQS_ENDPOINT_STRATEGY="path",
            LOCALSTACK_HOST=f"127.0.0.1:{self.port}",
        )
        return command, env

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextmanager
def running(kind: str, log_dir: Path) -> Iterator[Backend]:
    """An emulator of `kind` ("localstack" or "moto") for the length of the block."""
    log_dir.mkdir(parents=True, exist_ok=True)
    emulator = BenchEmulator(kind, log_dir)
    try:
        emulator.start()
        cpu.EMULATOR["pid"] = emulator.process.pid
        yield emulator.backend
    finally:
        cpu.EMULATOR.clear()
        emulator.stop()
