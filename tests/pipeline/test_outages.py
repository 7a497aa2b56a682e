"""Outages of SQS, SNS or S3 longer than a message's tries last (five, about 30 s apart at most) land
nothing in a dead-letter queue and lose nothing; soon after the outage ends every request is answered
and logged. Poison still goes to the dead-letter queue at once. The outages come from the strict layer
between the services and the emulator; the full 15-minute proof is `scripts/soak --outage`."""

from __future__ import annotations

import json
import time

import pytest
import requests

from harness import client
from harness.fixtures import log_keys, queue_depth, queue_url
from harness.waiting import eventually
from qcompute import contract

pytestmark = pytest.mark.integration

# Longer than the old retry budget (2 + 4 + 8 + 16 s of delays and five receives), short enough for CI.
OUTAGE_SECONDS = 40
# After the outage: consumers probe at least every 30 s and put-back messages wait at most 60 s.
RECOVERY_SECONDS = 120


def _submit_all(url: str, count: int, offset: int) -> list[str]:
    ids = []
    for n in range(count):
        response = client.submit(url, [n + offset, 1], ["sum"], wait=0)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def _answer(url: str, request_id: str) -> dict | None:
    response = client.result(url, request_id)
    return response.json() if response.status_code == 200 else None


@pytest.mark.parametrize("service", ["sns", "s3", "sqs"])
def test_an_outage_lands_nothing_in_a_dead_letter_queue_and_loses_nothing(
    stack, run, strict, service
) -> None:
    through = {"AWS_ENDPOINT_URL": strict.endpoint}
    worker = run.worker(**through)
    logger = run.logger(**through)
    front = run.frontend(WEB_WORKERS=1, **through)
    before = _submit_all(front.url, 5, 0)
    # Requests still queued or in hand when the outage starts.
    during = _submit_all(front.url, 10, 100)
    strict.outage(service, OUTAGE_SECONDS)
    started = time.monotonic()
    if service == "sqs":
        refused = client.submit(front.url, [1, 2], ["sum"], wait=0)
        assert refused.status_code == 503, "a request that cannot be queued is refused, never lost"
        assert refused.json()["error"]["code"] == "unavailable"
    else:
        during += _submit_all(front.url, 10, 200)  # SQS works: requests are taken
        # Poison is not an outage: it reaches its dead-letter queue while AWS is still failing.
        if service == "sns":
            stack.clients.sqs.send_message(QueueUrl=queue_url(stack, "requests_queue"), MessageBody="poison")
            dead = queue_url(stack, "requests_dlq")
        else:
            stack.clients.sqs.send_message(QueueUrl=queue_url(stack, "log_queue"), MessageBody="poison")
            dead = queue_url(stack, "log_dlq")
        eventually(lambda: queue_depth(stack, dead) == 1, timeout=40, what="the poison in its DLQ")
        assert time.monotonic() - started < OUTAGE_SECONDS, "at once, during the outage"
    eventually(lambda: not strict.stats()["outages"], timeout=OUTAGE_SECONDS + 30, interval=1, what="the end")
    ended = time.monotonic()

    ids = before + during
    wanted = {contract.log_key(request_id) for request_id in ids}
    eventually(
        lambda: wanted <= set(log_keys(stack)),
        timeout=RECOVERY_SECONDS,
        interval=2,
        what="every record logged",
    )
    for request_id in ids:
        answer = eventually(lambda rid=request_id: _answer(front.url, rid), timeout=30, what=f"{request_id}")
        assert answer["status"] == "done"
    assert time.monotonic() - ended < RECOVERY_SECONDS
    poison = 0 if service == "sqs" else 1
    dead_letters = queue_depth(stack, queue_url(stack, "requests_dlq")) + queue_depth(
        stack, queue_url(stack, "log_dlq")
    )
    assert dead_letters == poison, "nothing but the poison in a dead-letter queue"
    # Each record written once: a put-back message computed twice is refused by S3's conditional write.
    assert len(set(log_keys(stack))) == len(log_keys(stack)) == len(ids)
    consumer = {"sns": worker, "s3": logger, "sqs": worker}[service]
    assert consumer.events("consumer_backing_off" if service != "sqs" else "receive_failed")
    eventually(
        lambda: requests.get(f"{front.url}/api/status", timeout=30).json()["health"]["replies"]["ok"],
        timeout=30,
        what="the status page to report replies flowing",
    )
    if service != "sqs":
        record = json.loads(
            stack.clients.s3.get_object(
                Bucket=stack.clients.names.log_bucket, Key=contract.log_key(during[-1])
            )["Body"].read()
        )
        assert record["results"] == {"sum": 210}
