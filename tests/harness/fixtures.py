"""Stacks and running services for tests, torn down whatever happens."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import services
from harness.backend import REGION, Backend
from harness.services import Frontend, ServiceProcess, Stack
from harness.waiting import eventually
from qcompute import aws, contract
from qcompute.provision import provision, remove
from qcompute.settings import StackSettings


@contextmanager
def new_stack(backend: Backend, *, remove_after: bool = True) -> Iterator[Stack]:
    """A freshly provisioned stack with a random name, removed afterwards (unless the emulator is
    about to go with it: `remove_after=False`).

    The test's own clients reach the emulator directly; the services get the backend's endpoint (the
    strict layer, when there is one).
    """
    name = f"t{secrets.token_hex(4)}"
    clients = aws.connect(StackSettings(stack=name, region=REGION), endpoint_url=backend.direct)
    provision(clients)
    try:
        yield Stack(name=name, clients=clients, env={**backend.env, "STACK_NAME": name})
    finally:
        if remove_after:
            remove(clients)


def clients_via(stack: Stack, endpoint: str) -> aws.Clients:
    """The stack's clients through another endpoint (the strict layer), as a service reaches it."""
    return aws.connect(StackSettings(stack=stack.name, region=REGION), endpoint_url=endpoint)


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
        """SIGTERM to all at once (each finishes its long poll in parallel), then wait for each; a
        process that does not stop in time is killed, and the test fails: stopping must be clean."""
        for process in self.started:
            process.terminate()
        hung = []
        for process in self.started:
            try:
                process.stop(timeout=45)
            except Exception:  # noqa: BLE001 - teardown must reach every process
                process.kill()
                hung.append(process.name)
        assert not hung, f"did not stop within 45 s of SIGTERM: {hung}"

    def tails(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.tail()}" for p in self.started)


def send_request(
    stack: Stack,
    numbers: list,
    operations: list[str],
    *,
    reply_to: str | None,
    secret: bytes = b"tests",
    request_id: str | None = None,
) -> str:
    """Put a request straight on the request queue, as a frontend would; return its id."""
    request_id = request_id or contract.new_request_id(secret)
    body = contract.request_message(
        request_id,
        numbers,
        operations,
        reply_to=reply_to,
        correlation_id=f"corr-{request_id}",
        submitted_at=contract.utc_now(),
    )
    sqs = stack.clients.sqs
    sqs.send_message(QueueUrl=queue_url(stack, "requests_queue"), MessageBody=contract.encode(body))
    return request_id


def queue_url(stack: Stack, which: str) -> str:
    """The URL of one of the stack's queues, by its StackNames attribute (e.g. "log_dlq")."""
    return aws.queue_url(stack.clients.sqs, getattr(stack.clients.names, which))


def own_reply_queue(stack: Stack) -> str:
    """A reply queue owned by the test, tagged like a frontend's so teardown removes it."""
    name = f"{stack.clients.names.reply_queue_prefix}test-{secrets.token_hex(3)}"
    return stack.clients.sqs.create_queue(QueueName=name, tags=stack.clients.names.tags)["QueueUrl"]


def drain(stack: Stack, url: str, *, until: int, timeout: float = 120) -> list[dict]:
    """Receive and delete messages until `until` have arrived (or fail after `timeout`)."""
    sqs = stack.clients.sqs
    received: list[dict] = []

    def enough() -> bool:
        response = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            received.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(received) >= until

    eventually(enough, timeout=timeout, interval=0, what=f"{until} messages on {url}")
    return received


def queue_depth(stack: Stack, url: str) -> int:
    """Visible plus in-flight plus delayed messages."""
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def log_keys(stack: Stack, prefix: str = contract.LOG_PREFIX) -> list[str]:
    """The keys of the stack's bucket under `prefix` (the log records, by default)."""
    s3 = stack.clients.s3
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.clients.names.log_bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def read_log(stack: Stack, request_id: str) -> dict | None:
    s3 = stack.clients.s3
    try:
        body = s3.get_object(Bucket=stack.clients.names.log_bucket, Key=contract.log_key(request_id))["Body"]
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body.read())
