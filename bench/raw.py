"""The emulator's own ceiling: SendMessage, ReceiveMessage and DeleteMessage per message, nothing else."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bench import clients
from bench.cpu import Meter
from bench.load import Caller, Load, Measured, run
from bench.workload import OPERATIONS, numbers_for
from harness.backend import Backend
from qcompute import contract

# A body the size of a typical request message of the project.
BODY = contract.encode({"v": 1, "numbers": numbers_for(0), "operations": OPERATIONS, "reply_to": "x" * 120})
# Long polls of 1 s: a receive that finds the queue briefly empty waits instead of spinning.
MAX_RECEIVES = 30


def measure(backend: Backend, loads: Sequence[Load]) -> Iterator[tuple[Load, Measured]]:
    """Each load on a fresh queue shared by its clients."""
    for load in loads:
        yield load, measure_one(backend, load)


def measure_one(backend: Backend, load: Load) -> Measured:
    sqs = clients.client(backend, "sqs")
    url = sqs.create_queue(QueueName=clients.scratch_name("bench-raw"))["QueueUrl"]

    def factory() -> Caller:
        own = clients.client(backend, "sqs")

        def call(_index: int) -> None:
            own.send_message(QueueUrl=url, MessageBody=BODY)
            # Clients share the queue, so the message received may be another client's: per message,
            # the work is the same.
            for _ in range(MAX_RECEIVES):
                messages = own.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
                if messages.get("Messages"):
                    break
            else:
                raise TimeoutError(f"no message received in {MAX_RECEIVES} long polls")
            own.delete_message(QueueUrl=url, ReceiptHandle=messages["Messages"][0]["ReceiptHandle"])

        return call

    try:
        # Only the clients (this process) call AWS: the ceiling's calls per message.
        return run(factory, load, Meter())
    finally:
        sqs.delete_queue(QueueUrl=url)
