"""Throughput as worker hosts join, measured on the local compose stack.

    scripts/bench-hosts [--requests N] [--hosts H]   (prepares Docker and the images as the tests do)

Each worker host is a compose project of its own running one worker container
(compose.worker-host.local.yaml, as `scripts/local worker-host` runs it) that shares the stack's
request queue; the web host's own worker is stopped, so the hosts do all the work. For 1 to H hosts:
the hosts are paused (`docker compose pause`), N requests are put straight into the request queue
(SendMessageBatch: the frontend's HTTP side is not what is measured), the hosts are unpaused together,
and the time until the request queue is empty gives the workers' requests per second; the time until
the logger's queue is empty too gives the whole pipeline's. The emulator's ceiling for the same queue
comes first: the same N messages drained by bare receive-and-delete loops, nothing computed. Prints a
table; no test times anything.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from bench.workload import OPERATIONS, large_numbers, numbers_for
from qcompute import contract

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "qcompute-bench-hosts"
LOCAL = ["--env-file", "compose.local.env", "-f", "compose.yaml"]
STACK_FILES = ["-p", PROJECT, *LOCAL, "-f", "compose.local.yaml"]
SENDERS = 8
# With --numbers: the statistics and the pictures' operations. Not product and lcm, whose results grow
# with every integer (lcm of 10,000 twelve-digit integers takes 0.8 s and is refused for its size).
HEAVY_OPERATIONS = ["sum", "mean", "median", "mode", "variance", "stdev", "sorted", "histogram", "box_plot"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _compose(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", "compose", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"docker compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def _host_files(index: int) -> list[str]:
    return ["-p", f"{PROJECT}-host{index}", *LOCAL, "-f", "compose.worker-host.local.yaml"]


def _depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def _until_empty(sqs: Any, url: str, began: float) -> float:
    """Seconds from `began` until the queue is empty, read so three times in a row (messages on their
    way through SNS are not counted yet)."""
    empty_since, zeros = time.monotonic(), 0
    while zeros < 3:
        if _depth(sqs, url):
            zeros = 0
        else:
            empty_since = empty_since if zeros else time.monotonic()
            zeros += 1
        time.sleep(0.1)
    return empty_since - began


def _fill(sqs: Any, url: str, count: int, size: int = 0) -> None:
    """`count` requests of the benchmark's workload (or of `size` integers and HEAVY_OPERATIONS), from
    a few threads."""
    secret = b"bench"
    heavy = large_numbers(size) if size else []

    # A batch's bodies share SQS's 256 KiB limit: large requests go one to a call.
    step = 1 if size else 10

    def batch(start: int) -> None:
        entries = []
        for index in range(start, min(start + step, count)):
            message = contract.request_message(
                contract.new_request_id(secret),
                heavy or numbers_for(index),
                HEAVY_OPERATIONS if size else OPERATIONS,
                reply_to=None,
                correlation_id=contract.new_request_id(secret),
                submitted_at=contract.utc_now(),
            )
            entries.append({"Id": str(index), "MessageBody": contract.encode(message)})
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        if failed:
            sys.exit(f"SendMessageBatch failed: {failed}")

    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(batch, range(0, count, step)))


def _ceiling(sqs: Any, url: str, count: int) -> float:
    """The same queue drained with nothing computed: receive ten, delete ten, as the workers do."""

    def drain(_: int) -> float:
        """When this loop's last delete ended (its final, empty long poll is not counted)."""
        last = time.monotonic()
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if not messages:
                return last
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            last = time.monotonic()

    _fill(sqs, url, count)
    began = time.monotonic()
    with ThreadPoolExecutor(4) as pool:  # as many loops as two hosts' workers
        ended = max(pool.map(drain, range(4)))
    return count / (ended - began)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per step (default 2000)")
    parser.add_argument("--hosts", type=int, default=4, help="up to this many worker hosts (default 4)")
    parser.add_argument(
        "--numbers",
        type=int,
        default=0,
        help="integers per request, with HEAVY_OPERATIONS (default: the benchmark's 10-100, four operations)",
    )
    options = parser.parse_args()
    localstack_port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        HTTP_PORT=str(_free_port()),
        LOCALSTACK_PORT=str(localstack_port),
        STACK_NETWORK=f"{PROJECT}_default",
    )
    sqs = boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{localstack_port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 LocalStack takes any credentials
    )
    rows: list[tuple[str, str, str]] = []
    started: list[int] = []
    try:
        print("starting the local stack", flush=True)
        _compose(env, *STACK_FILES, "up", "--detach", "--wait", "--no-build")
        _compose(env, *STACK_FILES, "stop", "worker")  # the hosts do all the work
        requests_url = sqs.get_queue_url(QueueName="local-requests")["QueueUrl"]
        logs_url = sqs.get_queue_url(QueueName="local-logs")["QueueUrl"]
        scratch = sqs.create_queue(QueueName="bench-hosts-ceiling")["QueueUrl"]
        ceiling = _ceiling(sqs, scratch, options.requests)
        rows.append(("the emulator's ceiling: receive and delete, nothing computed", f"{ceiling:.0f}", "-"))
        print(f"ceiling: {ceiling:.0f} messages/s", flush=True)
        for hosts in range(1, options.hosts + 1):
            _compose(env, *_host_files(hosts), "up", "--detach", "--wait", "--no-build", "worker")
            started.append(hosts)
            for index in started:
                _compose(env, *_host_files(index), "pause")
            _fill(sqs, requests_url, options.requests, options.numbers)
            began = time.monotonic()
            for index in started:
                _compose(env, *_host_files(index), "unpause")
            computed = _until_empty(sqs, requests_url, began)
            logged = _until_empty(sqs, logs_url, began)
            label = f"{hosts} worker host{'s' * (hosts > 1)} (one worker each)"
            rows.append((label, f"{options.requests / computed:.0f}", f"{options.requests / logged:.0f}"))
            print(f"{label}: computed in {computed:.1f} s, logged in {logged:.1f} s", flush=True)
    finally:
        for index in started:
            subprocess.run(
                ["docker", "compose", *_host_files(index), "down"], cwd=ROOT, env=env, capture_output=True
            )
        subprocess.run(
            ["docker", "compose", *STACK_FILES, "down", "--volumes", "--remove-orphans"],
            cwd=ROOT,
            env=env,
            capture_output=True,
        )
    mix = f"{options.requests} requests a step, " + (
        f"{options.numbers:,} integers each and {', '.join(HEAVY_OPERATIONS)}"
        if options.numbers
        else "bench/workload.py's mix (10-100 integers; sum, mean, median, max)"
    )
    image = env.get("LOCALSTACK_IMAGE", "localstack/localstack:4.14.0")
    print(f"\n{mix}, {image} in compose, {os.cpu_count()} cores.\n")
    print("| what | computed req/s | logged req/s |\n| --- | --- | --- |")
    for label, computed_rate, logged_rate in rows:
        print(f"| {label} | {computed_rate} | {logged_rate} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
