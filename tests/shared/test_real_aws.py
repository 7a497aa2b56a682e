"""Provisioning, the dead-letter tool and the reply-queue listing under AWS's own rules, through the
strict layer: ListQueues' 1,000 cap, a queue name reserved for 60 s after deletion, SQS's batch size
limit, payloads that outlive the dead-letter queues, and SNS deliveries that fail."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from harness.fixtures import clients_via, queue_depth, queue_url
from qcompute import aws, dlq
from qcompute.provision import (
    DEAD_LETTER_RETENTION_SECONDS,
    PAYLOAD_EXPIRY_DAYS,
    QUEUE_RETENTION_SECONDS,
    provision,
    remove,
    reply_queues,
)

pytestmark = pytest.mark.integration


def _reply_queue(stack, suffix: str) -> str:
    names = stack.clients.names
    return stack.clients.sqs.create_queue(QueueName=f"{names.reply_queue_prefix}{suffix}", tags=names.tags)[
        "QueueUrl"
    ]


def test_reply_queues_beyond_the_list_cap_are_found_and_removed(stack, strict) -> None:
    # AWS lists at most 1,000 queues unless asked for pages; the rule is the same with a cap of 3.
    strict.configure(list_queues_cap=3)
    made = {_reply_queue(stack, f"host-{n}-abcd").rsplit("/", 1)[-1] for n in range(7)}
    clients = clients_via(stack, strict.endpoint)
    found = {url.rsplit("/", 1)[-1] for url in reply_queues(clients.sqs, clients.names)}
    assert found == made
    removed = {c.name for c in remove(clients) if c.resource == "queue"}
    assert made <= removed
    assert reply_queues(stack.clients.sqs, stack.clients.names) == {}


def test_provisioning_right_after_a_removal_waits_for_the_names_to_be_free(stack, strict) -> None:
    # AWS reserves a deleted queue's name for 60 s; 8 s here keeps the test short.
    strict.configure(queue_deleted_recently_seconds=8)
    clients = clients_via(stack, strict.endpoint)
    remove(clients)
    started = time.monotonic()
    changes = provision(clients)
    assert time.monotonic() - started >= 5, "it waited for SQS to free the names"
    assert {c.action for c in changes if c.resource == "queue"} == {"create"}
    time.sleep(1.5)  # SQS asks for a second after CreateQueue before a queue is used
    assert {c.action for c in provision(clients)} == {"ok"}
    assert any(f["reason"] == "queue deleted less than 60 s ago" for f in strict.faults())


def test_redrive_splits_large_messages_into_batches_sqs_accepts(stack, strict) -> None:
    sqs = stack.clients.sqs
    dead = queue_url(stack, "requests_dlq")
    bodies = [json.dumps({"n": n, "pad": "x" * 200_000}) for n in range(10)]  # 2 MB: over a batch's 1 MiB
    for body in bodies:
        sqs.send_message(QueueUrl=dead, MessageBody=body)
    assert dlq.redrive(clients_via(stack, strict.endpoint), "requests") == 10
    assert queue_depth(stack, dead) == 0
    moved = []
    while len(moved) < 10:
        response = sqs.receive_message(
            QueueUrl=queue_url(stack, "requests_queue"), MaxNumberOfMessages=10, WaitTimeSeconds=2
        )
        for message in response.get("Messages", []):
            moved.append(json.loads(message["Body"])["n"])
            sqs.delete_message(
                QueueUrl=queue_url(stack, "requests_queue"), ReceiptHandle=message["ReceiptHandle"]
            )
    assert sorted(moved) == list(range(10))
    assert not [f for f in strict.faults() if f["reason"].startswith("batch of")], "no batch was refused"


def test_payloads_outlive_the_queues_and_dead_letter_queues_that_name_them(stack) -> None:
    """A request may wait 4 days in its queue, then 14 in the DLQ before a redrive: its claim-check
    payload must still be there when it is computed."""
    assert PAYLOAD_EXPIRY_DAYS * 86_400 >= QUEUE_RETENTION_SECONDS + DEAD_LETTER_RETENTION_SECONDS
    rules = stack.clients.s3.get_bucket_lifecycle_configuration(Bucket=stack.clients.names.log_bucket)[
        "Rules"
    ]
    (payloads,) = [rule for rule in rules if rule["ID"] == "expire-unfinished-payloads"]
    assert payloads["Expiration"]["Days"] == PAYLOAD_EXPIRY_DAYS


def test_what_sns_cannot_deliver_goes_to_the_log_dead_letter_queue(stack, backend) -> None:
    clients, names = stack.clients, stack.clients.names
    (subscription,) = clients.sns.list_subscriptions_by_topic(TopicArn=names.results_topic_arn)[
        "Subscriptions"
    ]
    attributes = clients.sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
        "Attributes"
    ]
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": names.queue_arn(names.log_dlq)}
    # SNS may send to the log DLQ, and only from the stack's topic.
    (statement,) = json.loads(
        clients.sqs.get_queue_attributes(QueueUrl=queue_url(stack, "log_dlq"), AttributeNames=["Policy"])[
            "Attributes"
        ]["Policy"]
    )["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": names.results_topic_arn}}
    if backend.name.startswith("moto"):
        pytest.skip("moto stores a subscription's RedrivePolicy but never delivers to it (LocalStack does)")
    # A delivery SNS cannot make (the log queue deleted) lands in the DLQ, raw as it was published.
    clients.sqs.delete_queue(QueueUrl=queue_url(stack, "log_queue"))
    clients.sns.publish(TopicArn=names.results_topic_arn, Message='{"id": "undeliverable"}')
    dead = queue_url(stack, "log_dlq")
    deadline = time.monotonic() + 60
    bodies: list[str] = []
    while not bodies and time.monotonic() < deadline:
        bodies = [
            m["Body"]
            for m in clients.sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=2).get("Messages", [])
        ]
    assert bodies == ['{"id": "undeliverable"}']


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (500, "InternalError", True),
        (503, "SlowDown", True),
        (400, "RequestThrottled", True),
        (400, "Throttling", True),
        (409, "ConditionalRequestConflict", True),
        (403, "AccessDenied", False),
        (400, "InvalidParameterValue", False),
        (404, "NoSuchBucket", False),
    ],
)
def test_an_aws_failure_is_an_outage_only_when_it_is_aws_s(status: int, code: str, transient: bool) -> None:
    error = ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Call")
    assert aws.is_transient(error) is transient
