"""A fixed number of requests from N client threads, with a warm-up, a time cap and latency percentiles."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# Each client thread builds its own caller once (its own HTTP session or AWS client), then calls it
# with the request's index; a call raises if the request failed.
Caller = Callable[[int], None]
CallerFactory = Callable[[], Caller]


class Window(Protocol):
    """What watches the measured part of a phase (bench.cpu.Meter): told when it begins and ends."""

    window: tuple[float, float] | None
    cpu_seconds: dict[str, float]

    def begin(self) -> None: ...

    def end(self) -> None: ...


@dataclass(frozen=True)
class Load:
    clients: int
    requests: int
    warmup_per_client: int
    time_cap: float  # seconds; no new request starts after it


@dataclass(frozen=True)
class Idle:
    """No load: the system started, left `settle` seconds to finish starting, then watched `seconds`."""

    seconds: float
    settle: float


@dataclass
class Measured:
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    seconds: float = 0.0
    capped: bool = False
    # What else happened (a process that exited, clients still stuck in a call at the end).
    incidents: list[str] = field(default_factory=list)
    # Wall-clock bounds (Unix seconds) of the measured part, and each service's CPU seconds in it.
    window: tuple[float, float] | None = None
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` quantile (0.5 for p50) with linear interpolation between ranks, as numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run(factory: CallerFactory, load: Load, meter: Window | None = None) -> Measured:
    """Warm every client up, release them together, and stop after `requests` or the time cap.

    A `meter` is told when the measured part begins (warm-ups done) and ends (every client done).
    """
    measured = Measured()
    lock = threading.Lock()
    indices = itertools.count()
    clock: dict[str, float] = {}

    # Start the clock once every client is warm; a client whose warm-up hangs cannot hold the others
    # beyond the time cap (the barrier breaks and they start anyway).
    def released() -> None:
        if meter is not None:
            meter.begin()
            clock["metered"] = 1.0
        clock.setdefault("start", time.perf_counter())

    barrier = threading.Barrier(load.clients, action=released)

    def record_error(error: BaseException) -> None:
        with lock:
            measured.errors += 1
            if measured.first_error is None:
                measured.first_error = f"{type(error).__name__}: {error}"[:300]

    # Warm-ups are bounded too: none starts after the time cap.
    warm_until = time.perf_counter() + load.time_cap

    def client() -> None:
        try:
            call = factory()
        except Exception as error:  # noqa: BLE001 - a client that cannot start is one error, not a crash
            record_error(error)
            call = None
        for warmup in range(load.warmup_per_client if call else 0):
            if time.perf_counter() > warm_until:
                break
            try:
                call(-1 - warmup)
            except Exception as error:  # noqa: BLE001 - reported in the row, never hidden
                record_error(error)
        try:
            barrier.wait(timeout=load.time_cap)
        except threading.BrokenBarrierError:
            clock.setdefault("start", time.perf_counter())
        if call is None:
            return
        deadline = clock["start"] + load.time_cap
        while True:
            with lock:
                if measured.sent >= load.requests:
                    return
                if time.perf_counter() > deadline:
                    measured.capped = True
                    return
                measured.sent += 1
                index = next(indices)
            began = time.perf_counter()
            try:
                call(index)
            except Exception as error:  # noqa: BLE001 - reported in the row, never hidden
                record_error(error)
                continue
            elapsed_ms = (time.perf_counter() - began) * 1000
            with lock:
                measured.latencies_ms.append(elapsed_ms)
                clock["end"] = time.perf_counter()

    threads = [threading.Thread(target=client, daemon=True, name=f"client-{n}") for n in range(load.clients)]
    for thread in threads:
        thread.start()
    # Every request has its own timeout, so threads end soon after the cap; daemon threads never
    # keep the process alive if one does not.
    give_up = time.monotonic() + 2 * load.time_cap + 120
    for thread in threads:
        thread.join(timeout=max(0.0, give_up - time.monotonic()))
    # A phase whose clients never started together (a broken barrier) has no measured window.
    if meter is not None and "metered" in clock:
        meter.end()
        measured.window, measured.cpu_seconds = meter.window, meter.cpu_seconds
    stragglers = sum(thread.is_alive() for thread in threads)
    if stragglers:
        measured.capped = True
        measured.incidents.append(f"{stragglers} clients still inside a call when the phase gave up")
    start = clock.get("start")
    if start is not None:
        measured.seconds = clock.get("end", start) - start
    return measured


def idle(phase: Idle, meter: Window) -> Measured:
    """Watch a system that is given nothing to do."""
    time.sleep(phase.settle)
    meter.begin()
    time.sleep(phase.seconds)
    meter.end()
    return Measured(seconds=phase.seconds, window=meter.window, cpu_seconds=meter.cpu_seconds)
