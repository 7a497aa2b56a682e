"""One stack for the module: a worker, a logger and two frontends (two gunicorn processes each)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.backend import Backend
from harness.fixtures import Services, new_stack
from harness.services import Frontend, Stack


@dataclass
class Pipeline:
    stack: Stack
    services: Services
    frontends: list[Frontend]

    @property
    def url(self) -> str:
        return self.frontends[0].url


@pytest.fixture(scope="module")
def pipeline(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    failures_before = request.session.testsfailed
    with new_stack(backend) as stack:
        services = Services(stack, tmp_path_factory.mktemp("pipeline"))
        try:
            # Limits below the defaults, set as an operator would, keep the catalog's cases small.
            limits = {"MAX_NUMBERS": 10_000, "MAX_BODY_BYTES": 1_048_576}
            services.worker(**limits)
            services.logger()
            # A generous wait: the suite runs on a loaded 2-core machine against a slow emulator.
            frontends = [
                services.frontend(name, REPLY_WAIT_SECONDS=30, **limits)
                for name in ("frontend-a", "frontend-b")
            ]
            yield Pipeline(stack, services, frontends)
        finally:
            services.stop_all()
            if request.session.testsfailed > failures_before:
                print(services.tails())
