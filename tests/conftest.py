"""Fixtures shared by every test folder. Integration tests get a real emulator endpoint (moto server
by default; TEST_BACKEND=localstack for LocalStack), a freshly provisioned stack with a random name,
and the services as real processes."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from harness import client
from harness.backend import Backend, StrictLayer, emulator
from harness.fixtures import Services, new_stack
from harness.services import Stack
from qcompute import contract

# The tests read results of any size, as the services do.
contract.allow_big_integers()
# Every API answer a test gets must be one the OpenAPI document describes.
client.check_every_api_answer()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests with a strict layer of their own already meet AWS's rules; the "+strict" stages, which put
    # one in front of every test, leave them out rather than run them twice over.
    for item in items:
        if "strict" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.own_strict_layer)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is None or report.failed


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with emulator(tmp_path_factory.mktemp("emulator")) as running:
        saved = dict(os.environ)
        # The test process reaches the emulator as the services do, through the SDK-standard variables,
        # but directly: the strict layer's failures are for the code under test.
        os.environ.update(running.direct_env)
        try:
            yield running
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture
def strict(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrictLayer]:
    """A private strict layer in front of the emulator: AWS's limits, no random faults until the test
    asks for them. Services reach it with AWS_ENDPOINT_URL=strict.endpoint."""
    with StrictLayer(backend.direct, tmp_path_factory.mktemp("strict"), {"latency_ms": [0, 5]}) as layer:
        yield layer


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Resource names no other test uses."""
    return lambda prefix: f"t{secrets.token_hex(4)}-{prefix}"


@pytest.fixture
def stack(backend: Backend) -> Iterator[Stack]:
    with new_stack(backend) as provisioned:
        yield provisioned


@pytest.fixture
def run(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Services]:
    """Start services for this test's stack; all are stopped at the end and their logs shown on failure."""
    services = Services(stack, tmp_path_factory.mktemp("services"))
    stopped = False
    try:
        yield services
    finally:
        try:
            services.stop_all()
            stopped = True
        finally:
            if not stopped or _failed(request):
                print(services.tails())
