"""scripts/dlq: list, show, redrive and purge a dead-letter queue, asking before it changes anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.fixtures import queue_depth, queue_url
from harness.services import ROOT

pytestmark = pytest.mark.integration


def dlq(stack, *argv: str, answer: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or stack.env), "PYTHON": sys.executable}
    return subprocess.run(
        [str(ROOT / "scripts/dlq"), *argv],
        env=env,
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _fill(stack) -> None:
    sqs = stack.clients.sqs
    dead = queue_url(stack, "requests_dlq")
    sqs.send_message(
        QueueUrl=dead,
        MessageBody="not json at all",
        MessageAttributes={
            "poison_reason": {"DataType": "String", "StringValue": "not JSON: Expecting value"}
        },
    )
    for index in range(12):
        sqs.send_message(QueueUrl=dead, MessageBody=json.dumps({"index": index}))


def test_list_and_show_leave_the_messages_in_place(stack) -> None:
    _fill(stack)
    listed = dlq(stack, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{stack.name}-requests-dlq: 13 message(s) (from {stack.name}-requests)" in listed.stdout
    assert f"{stack.name}-logs-dlq: 0 message(s)" in listed.stdout
    shown = dlq(stack, "show", "requests", "--limit", "13")
    assert "poison: not JSON: Expecting value" in shown.stdout
    assert shown.stdout.count('"message_id"') >= 10
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 13


def test_redrive_moves_every_message_back_to_its_source_after_confirmation(stack) -> None:
    _fill(stack)
    refused = dlq(stack, "redrive", "requests", answer="no\n")
    assert refused.returncode == 1
    assert "nothing changed" in refused.stdout
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 13

    moved = dlq(stack, "redrive", "requests", answer=f"{stack.name}-requests-dlq\n")
    assert moved.returncode == 0, moved.stderr
    assert f"moved 13 message(s) back to {stack.name}-requests" in moved.stdout
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 0
    assert queue_depth(stack, queue_url(stack, "requests_queue")) == 13


def test_a_redrive_whose_receive_answer_was_lost_waits_for_those_messages(stack, strict) -> None:
    _fill(stack)
    # The first receive takes ten messages, then its answer is lost: they stay hidden for a while.
    faults = {"fault_kinds": ["internal"], "after_share": 1.0, "max_random_faults": 1}
    strict.configure(rates={"sqs:ReceiveMessage": 1.0}, **faults)
    through_strict = {**stack.env, "AWS_ENDPOINT_URL": strict.endpoint}
    moved = dlq(stack, "redrive", "requests", "--yes", env=through_strict)
    assert moved.returncode == 0, moved.stderr
    assert len([f for f in strict.faults() if f["api"] == "sqs:ReceiveMessage"]) == 1
    assert f"moved 13 message(s) back to {stack.name}-requests" in moved.stdout
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 0
    assert queue_depth(stack, queue_url(stack, "requests_queue")) == 13


def test_purge_empties_the_queue(stack) -> None:
    _fill(stack)
    purged = dlq(stack, "purge", "requests", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert "13 message(s)" in purged.stdout
    assert queue_depth(stack, queue_url(stack, "requests_dlq")) == 0


def test_a_queue_is_required_for_changes(stack) -> None:
    result = dlq(stack, "purge")
    assert result.returncode == 2
    assert "purge needs a queue: requests or logs" in result.stderr
