"""A seed-style baseline, for the benchmark only: what the original project did.

One shared response queue, short polling (`WaitTimeSeconds=0`), one message per call. A client sends
its request, then polls the shared queue; a reply meant for another client is put back (visibility
0) for someone else to find. That is the classic bug of a shared reply queue, measured as it is.

    python -m bench.seed --endpoint URL --requests URL --responses URL --seconds N   (one worker)
"""

from __future__ import annotations

import argparse
import json
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import children, clients
from bench.cpu import Meter
from bench.load import Caller, CallerFactory, Idle, Load, Measured, idle, run
from bench.workload import OPERATIONS, check, compute, numbers_for
from harness.backend import Backend

# A request whose reply has not come by then is an error, and its client moves on.
REPLY_TIMEOUT_SECONDS = 30


def caller(backend: Backend, requests_url: str, responses_url: str) -> CallerFactory:
    def factory() -> Caller:
        sqs = clients.client(backend, "sqs")

        def call(index: int) -> None:
            numbers = numbers_for(index)
            request_id = str(uuid.uuid4())
            body = json.dumps({"id": request_id, "numbers": numbers, "operations": OPERATIONS})
            sqs.send_message(QueueUrl=requests_url, MessageBody=body)
            deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                response = sqs.receive_message(
                    QueueUrl=responses_url, MaxNumberOfMessages=1, WaitTimeSeconds=0
                )
                for message in response.get("Messages", []):
                    reply = json.loads(message["Body"])
                    if reply["id"] != request_id:
                        # Not ours: make it visible again at once for the client it belongs to.
                        sqs.change_message_visibility(
                            QueueUrl=responses_url,
                            ReceiptHandle=message["ReceiptHandle"],
                            VisibilityTimeout=0,
                        )
                        continue
                    sqs.delete_message(QueueUrl=responses_url, ReceiptHandle=message["ReceiptHandle"])
                    check(numbers, reply["results"])
                    return
            raise TimeoutError(f"no reply within {REPLY_TIMEOUT_SECONDS} s")

        return call

    return factory


def measure(
    backend: Backend,
    log_dir: Path,
    workers: int,
    loads: Sequence[Load],
    quiet: Idle | None = None,
    calls_dir: Path | None = None,
) -> Iterator[tuple[Load | Idle, Measured]]:
    """Each load on fresh queues with `workers` fresh seed workers (a timed-out request's reply must
    not be left for the next load's clients to trip over); with `quiet`, the first load's workers are
    watched idle before their load."""
    for number, load in enumerate(loads):
        watch = quiet if number == 0 else None
        lifetime = load.time_cap + (watch.settle + watch.seconds if watch else 0)
        with deployed(backend, log_dir, workers, lifetime, calls_dir) as (queues, meter):
            if watch is not None:
                yield watch, idle(watch, meter)
            yield load, run(caller(backend, *queues), load, meter)


@contextmanager
def deployed(
    backend: Backend, log_dir: Path, workers: int, seconds: float, calls_dir: Path | None
) -> Iterator[tuple[tuple[str, str], Meter]]:
    """Fresh queues and `workers` seed workers for a phase of up to `seconds`; removed after."""
    sqs = clients.client(backend, "sqs")
    prefix = clients.scratch_name("bench-seed")
    requests_url = sqs.create_queue(QueueName=f"{prefix}-requests")["QueueUrl"]
    responses_url = sqs.create_queue(QueueName=f"{prefix}-responses")["QueueUrl"]
    # The workers stop by themselves after the longest the phase can take, should we be killed.
    lifetime = str(2 * seconds + 2 * REPLY_TIMEOUT_SECONDS + 60)
    args = ["--endpoint", backend.endpoint, "--requests", requests_url, "--responses", responses_url]
    processes = [
        children.python_module(
            f"seed-worker-{n}",
            "bench.seed",
            [*args, "--seconds", lifetime],
            backend,
            log_dir,
            calls_dir=calls_dir,
        )
        for n in range(workers)
    ]
    try:
        with children.started(processes):
            yield (requests_url, responses_url), Meter({p.name: p.pid for p in processes})
    finally:
        clients.delete_queues(sqs, prefix)


def serve(sqs: Any, requests_url: str, responses_url: str, until: float, stopping: list[bool]) -> int:
    """Take one request per call, answer it on the shared queue; return how many were answered."""
    answered = 0
    while not stopping and time.monotonic() < until:
        response = sqs.receive_message(QueueUrl=requests_url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
        for message in response.get("Messages", []):
            request = json.loads(message["Body"])
            results = compute(request["numbers"], request["operations"])
            sqs.send_message(
                QueueUrl=responses_url, MessageBody=json.dumps({"id": request["id"], "results": results})
            )
            sqs.delete_message(QueueUrl=requests_url, ReceiptHandle=message["ReceiptHandle"])
            answered += 1
    return answered


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.seed", description="one seed-style worker")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--requests", required=True, help="request queue URL")
    parser.add_argument("--responses", required=True, help="the shared response queue URL")
    parser.add_argument("--seconds", type=float, required=True, help="exit after this long in any case")
    args = parser.parse_args(argv)
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    sqs = clients.client(Backend("seed", args.endpoint), "sqs")
    answered = serve(sqs, args.requests, args.responses, time.monotonic() + args.seconds, stopping)
    print(f"seed worker answered {answered} requests", flush=True)


if __name__ == "__main__":
    main()
