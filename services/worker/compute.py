"""Turn one request into its result record: validate again, compute (on several cores when the
request is large), and refuse results too large for anyone to receive."""

from __future__ import annotations

import math
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from qcompute import contract, logs
from qcompute.operations import OPERATIONS
from qcompute.settings import Limits
from qcompute.validation import InputError, parse_numbers, parse_operations

Results = tuple[dict[str, Any], dict[str, dict[str, str]]]

log = logs.get_logger("worker")


class ComputeFailed(RuntimeError):
    """The computation could not run (its processes kept dying): the message is retried."""


def compute(numbers: list[int], operations: list[str], max_result_digits: int) -> Results:
    """Each operation's result, or its error (a result too large is refused before it is computed)."""
    results, errors = {}, {}
    for name in operations:
        operation = OPERATIONS[name]
        if operation.result_bits is not None:
            digits = math.ceil(operation.result_bits(numbers) * math.log10(2))
            if digits > max_result_digits:
                errors[name] = {
                    "code": "result_too_large",
                    "message": f"the {name} could have up to {digits:,} digits; at most "
                    f"{max_result_digits:,} are computed",
                    "field": name,
                    # The values of the sentence, so that a page can say it in its own language.
                    "digits": digits,
                    "limit": max_result_digits,
                }
                continue
        try:
            results[name] = operation.compute(numbers)
        except (ArithmeticError, ValueError) as error:
            errors[name] = {"code": "compute_failed", "message": f"{name} failed: {error}", "field": name}
    return results, errors


def _ignore_stop_signals() -> None:
    # Stop signals are the main process's to handle: it finishes the batch, then shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Calculator:
    """Computes small requests in this process and large ones on several cores.

    The GIL lets one process use one core only, so a large request's operations are split among
    worker processes (each gets a copy of the numbers). Small requests stay here, and so do large
    ones with at most one heavy operation: for them, sending the numbers to another process costs
    more than it saves (a million numbers: 75 ms a copy, against 70 ms at most for a light operation).
    """

    def __init__(self, limits: Limits, processes: int, parallel_from: int):
        self.limits = limits
        self.parallel_from = parallel_from
        self.processes = processes
        self.pool: ProcessPoolExecutor | None = self._new_pool() if processes > 1 else None
        self._pool_lock = threading.Lock()

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: the pool's processes are forked from a clean single-threaded server, never from
        # this process, whose threads (heartbeat, AWS clients) make fork unsafe.
        return ProcessPoolExecutor(
            self.processes, mp_context=get_context("forkserver"), initializer=_ignore_stop_signals
        )

    def in_parallel(self, count: int, operations: list[str]) -> bool:
        heavy = sum(OPERATIONS[name].heavy for name in operations if name in OPERATIONS)
        return self.pool is not None and count >= self.parallel_from and heavy > 1

    def __call__(self, numbers: list[int], operations: list[str]) -> Results:
        digits = self.limits.max_result_digits
        if not self.in_parallel(len(numbers), operations):
            return compute(numbers, operations, digits)
        # A pool process that dies (the kernel's OOM killer, a kill) breaks the whole pool for good:
        # replace it and compute once more; a second death is the message's failure.
        pool = self.pool
        try:
            return self._in_pool(pool, numbers, operations)
        except BrokenProcessPool:
            log.warning("pool_broken", numbers=len(numbers), operations=len(operations))
            pool = self._replace(pool)
        try:
            return self._in_pool(pool, numbers, operations)
        except BrokenProcessPool:
            self._replace(pool)
            raise ComputeFailed("a compute process died twice while computing this request") from None

    def _in_pool(self, pool: ProcessPoolExecutor, numbers: list[int], operations: list[str]) -> Results:
        # The heavy ones first, dealt out in turn: each process gets its share of them.
        dealt = sorted(operations, key=lambda name: not OPERATIONS[name].heavy)
        groups = [dealt[i :: self.processes] for i in range(self.processes)]
        digits = self.limits.max_result_digits
        futures = [pool.submit(compute, numbers, group, digits) for group in groups if group]
        results, errors = {}, {}
        for future in futures:
            partial_results, partial_errors = future.result()
            results.update(partial_results)
            errors.update(partial_errors)
        # Keep the order the operations were asked in.
        return {n: results[n] for n in operations if n in results}, {
            n: errors[n] for n in operations if n in errors
        }

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """A new pool in place of `broken`, unless another thread has already replaced it."""
        with self._pool_lock:
            if self.pool is broken:
                self.pool = self._new_pool()
                # A process killed while holding the pool's queue lock leaves the others blocked on it
                # for good, and the executor joins them before the interpreter may exit: kill them
                # (they ignore SIGTERM). Python has no public way to reach them.
                for process in list((getattr(broken, "_processes", None) or {}).values()):
                    process.kill()
                broken.shutdown(wait=False, cancel_futures=True)
                log.info("pool_replaced", processes=self.processes)
            return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def answer(
    request: dict[str, Any], numbers_given: Any, calculator: Calculator, *, worker: str, attempt: int
) -> dict[str, Any]:
    """The result record for a request whose envelope is valid; bad content gives an error record.

    `numbers_given` is what the request holds (inline, or read from its stored payload).
    """
    received_at = contract.utc_now()
    stored = "numbers_ref" in request
    try:
        numbers = parse_numbers(numbers_given, calculator.limits)
        operations = parse_operations(request.get("operations"))
    except InputError as error:
        return contract.result_record(
            request,
            numbers=None if stored else _as_given(numbers_given),
            operations=_as_given(request.get("operations")),
            error=error.as_dict(),
            received_at=received_at,
            computed_at=contract.utc_now(),
            worker=worker,
            attempt=attempt,
        )
    results, errors = calculator(numbers, operations)
    return contract.result_record(
        request,
        numbers=None if stored else numbers,
        operations=operations,
        results=results,
        errors=errors,
        received_at=received_at,
        computed_at=contract.utc_now(),
        worker=worker,
        attempt=attempt,
    )


def cancelled(request: dict[str, Any], limits: Limits, *, worker: str, attempt: int) -> dict[str, Any]:
    """The record of a request cancelled before it was computed: no results, its input as it came
    (stored numbers stay stored: the logger writes them into the record)."""
    received_at = contract.utc_now()
    numbers: list[Any] | None = None
    if "numbers_ref" not in request:
        try:
            numbers = parse_numbers(request.get("numbers"), limits)
        except InputError:
            numbers = _as_given(request.get("numbers"))
    try:
        operations = parse_operations(request.get("operations"))
    except InputError:
        operations = _as_given(request.get("operations"))
    return contract.result_record(
        request,
        numbers=numbers,
        operations=operations,
        error=dict(contract.CANCELLED_ERROR),
        received_at=received_at,
        computed_at=received_at,
        worker=worker,
        attempt=attempt,
        cancelled=True,
    )


def _as_given(values: Any) -> list[Any]:
    """Echo invalid input in the error record as text: it may not even be numbers."""
    if not isinstance(values, list):
        return []
    return [value if isinstance(value, str | int | float | bool) else repr(value) for value in values]
