"""Stacks and running services for tests, torn down whatever happens."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import services
from harness.backend import REGION, Backend
from harness.services import Frontend, ServiceProcess, Stack
from qcompute import aws
from qcompute.provision import provision, remove
from qcompute.settings import StackSettings


@contextmanager
def new_stack(backend: Backend) -> Iterator[Stack]:
    """A freshly provisioned stack with a random name, removed afterwards."""
    name = f"t{secrets.token_hex(4)}"
    clients = aws.connect(StackSettings(stack=name, region=REGION))
    provision(clients)
    try:
        yield Stack(name=name, clients=clients, env={**backend.env, "STACK_NAME": name})
    finally:
        remove(clients)


class Services:
    """Starts services for one stack and stops them all (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, stack: Stack, log_dir: Path):
        self.stack = stack
        self.log_dir = log_dir
        self.started: list[ServiceProcess] = []

    def worker(self, name: str = "worker", **env: Any) -> ServiceProcess:
        process = services.worker(self.stack, self.log_dir, name, **env)
        self.started.append(process)
        return process

    def logger(self, name: str = "logger", **env: Any) -> ServiceProcess:
        process = services.logger(self.stack, self.log_dir, name, **env)
        self.started.append(process)
        return process

    def frontend(self, name: str = "frontend", *, ready: bool = True, **env: Any) -> Frontend:
        process = services.frontend(self.stack, self.log_dir, name, **env)
        self.started.append(process)
        return process.wait_ready() if ready else process

    def stop_all(self) -> None:
        """SIGTERM to all at once (each finishes its long poll in parallel), then wait for each."""
        running = [p for p in self.started if p.process is not None and p.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.stop(timeout=45)
            except Exception:  # noqa: BLE001 - teardown must reach every process
                process.kill()

    def tails(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.tail()}" for p in self.started)
