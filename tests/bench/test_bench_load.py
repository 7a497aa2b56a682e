"""The load generator: fixed counts, warm-ups not measured, errors counted, the time cap respected."""

from __future__ import annotations

import threading
import time

import pytest

from bench.load import Load, percentile, run


def test_percentiles_interpolate_between_ranks_like_numpy():
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled order must not matter
    assert percentile(list(reversed(values)), 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_every_request_is_sent_once_and_warm_ups_are_not_measured():
    seen: list[int] = []
    sessions: list[int] = []
    lock = threading.Lock()

    def factory():
        with lock:
            sessions.append(threading.get_ident())

        def call(index: int) -> None:
            with lock:
                seen.append(index)

        return call

    measured = run(factory, Load(clients=4, requests=40, warmup_per_client=2, time_cap=30))
    assert len(sessions) == 4, "one caller per client thread"
    assert sorted(i for i in seen if i >= 0) == list(range(40))
    assert sum(1 for i in seen if i < 0) == 8, "two warm-ups per client, with negative indices"
    assert (measured.sent, measured.completed, measured.errors) == (40, 40, 0)
    assert measured.seconds > 0
    assert not measured.capped


def test_errors_are_counted_and_not_measured():
    def factory():
        def call(index: int) -> None:
            if index % 4 == 0:
                raise ValueError(f"bad {index}")

        return call

    measured = run(factory, Load(clients=2, requests=20, warmup_per_client=0, time_cap=30))
    assert (measured.sent, measured.completed, measured.errors) == (20, 15, 5)
    assert str(measured.first_error).startswith("ValueError: bad")


def test_a_failing_warm_up_is_an_error_too():
    def factory():
        def call(index: int) -> None:
            if index < 0:
                raise RuntimeError("not ready")

        return call

    measured = run(factory, Load(clients=1, requests=3, warmup_per_client=1, time_cap=30))
    assert (measured.completed, measured.errors) == (3, 1)


def test_no_request_starts_after_the_time_cap():
    def factory():
        return lambda index: time.sleep(0.05)

    started = time.monotonic()
    measured = run(factory, Load(clients=2, requests=10_000, warmup_per_client=0, time_cap=0.3))
    assert measured.capped
    assert measured.sent < 40
    assert time.monotonic() - started < 5
