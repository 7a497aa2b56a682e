"""Provisioning against a real emulator: idempotent, corrects drift, removes only its own stack."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from harness.backend import REGION
from harness.services import ROOT
from qcompute import aws
from qcompute.names import STACK_TAG
from qcompute.provision import MAX_RECEIVE_COUNT, provision, remove
from qcompute.settings import StackSettings

pytestmark = pytest.mark.integration


def _attributes(clients, queue: str) -> dict[str, str]:
    url = aws.queue_url(clients.sqs, queue)
    return clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_the_stack_is_provisioned_as_defined(stack) -> None:
    clients, names = stack.clients, stack.clients.names
    for queue, dead_letter in ((names.requests_queue, names.requests_dlq), (names.log_queue, names.log_dlq)):
        redrive = json.loads(_attributes(clients, queue)["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == names.queue_arn(dead_letter)
        assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT > 1
        tags = clients.sqs.list_queue_tags(QueueUrl=aws.queue_url(clients.sqs, queue))["Tags"]
        assert tags[STACK_TAG] == stack.name

    policy = json.loads(_attributes(clients, names.log_queue)["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": names.results_topic_arn}}

    subscriptions = clients.sns.list_subscriptions_by_topic(TopicArn=names.results_topic_arn)["Subscriptions"]
    assert [s["Endpoint"] for s in subscriptions] == [names.queue_arn(names.log_queue)]
    attributes = clients.sns.get_subscription_attributes(SubscriptionArn=subscriptions[0]["SubscriptionArn"])
    assert attributes["Attributes"]["RawMessageDelivery"] == "true"

    block = clients.s3.get_public_access_block(Bucket=names.log_bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = clients.s3.get_bucket_encryption(Bucket=names.log_bucket)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_provisioning_again_changes_nothing_and_repairs_drift(stack) -> None:
    clients, names = stack.clients, stack.clients.names
    assert {change.action for change in provision(clients)} == {"ok"}

    url = aws.queue_url(clients.sqs, names.requests_queue)
    clients.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    subscription = clients.sns.list_subscriptions_by_topic(TopicArn=names.results_topic_arn)["Subscriptions"][
        0
    ]
    clients.sns.set_subscription_attributes(
        SubscriptionArn=subscription["SubscriptionArn"],
        AttributeName="RawMessageDelivery",
        AttributeValue="false",
    )

    planned = {(c.resource, c.name): c.action for c in provision(clients, dry_run=True)}
    assert planned[("queue", names.requests_queue)] == "update"
    assert planned[("subscription", f"{names.results_topic} -> {names.log_queue}")] == "update"
    assert _attributes(clients, names.requests_queue)["VisibilityTimeout"] == "5", "a plan changes nothing"

    applied = {(c.resource, c.name): c.action for c in provision(clients)}
    assert applied == planned
    assert _attributes(clients, names.requests_queue)["VisibilityTimeout"] == "30"
    assert {change.action for change in provision(clients)} == {"ok"}


def test_remove_leaves_nothing_of_the_stack_and_nothing_else_touched(backend) -> None:
    ours = f"t{secrets.token_hex(4)}"
    # The most confusable neighbour: its names start with our reply-queue prefix.
    neighbour = f"{ours}-reply"
    mine = aws.connect(StackSettings(ours, REGION))
    theirs = aws.connect(StackSettings(neighbour, REGION))
    provision(mine)
    provision(theirs)
    try:
        mine.sqs.create_queue(QueueName=f"{mine.names.reply_queue_prefix}host-1-abcd", tags=mine.names.tags)
        mine.s3.put_object(Bucket=mine.names.log_bucket, Key="logs/2026/01/01/x.json", Body=b"{}")
        removed = remove(mine)
        assert {change.action for change in removed} == {"delete"}
        assert len([c for c in removed if c.resource == "queue"]) == 5

        queues = mine.sqs.list_queues(QueueNamePrefix=ours).get("QueueUrls", [])
        assert all(url.rsplit("/", 1)[-1].startswith(neighbour) for url in queues)
        topics = [t["TopicArn"] for t in mine.sns.list_topics()["Topics"]]
        assert mine.names.results_topic_arn not in topics
        buckets = [b["Name"] for b in mine.s3.list_buckets()["Buckets"]]
        assert mine.names.log_bucket not in buckets
        assert remove(mine) == [], "removing again is safe and does nothing"

        assert {change.action for change in provision(theirs, dry_run=True)} == {"ok"}, (
            "the neighbour is intact"
        )
    finally:
        remove(theirs)
        remove(mine)


def test_the_scripts_provision_and_tear_down(backend) -> None:
    stack_name = f"t{secrets.token_hex(4)}"
    env = {**os.environ, "PYTHON": sys.executable, "AWS_REGION": REGION}

    def script(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    planned = script("scripts/provision", "plan", "--stack", stack_name)
    assert planned.returncode == 0, planned.stderr
    assert f"plan stack {stack_name!r}" in planned.stdout
    assert f"create queue        {stack_name}-requests" in planned.stdout
    created = script("scripts/provision", "--stack", stack_name)
    assert created.returncode == 0, created.stderr
    assert f"create queue        {stack_name}-requests" in created.stdout
    again = script("scripts/provision", "--stack", stack_name)
    assert again.stdout.count("ok ") == 7
    assert script("scripts/provision", "plan", "--stack", stack_name).stdout.count("ok ") == 7

    refused = subprocess.run(
        ["scripts/teardown", "--stack", stack_name],
        cwd=ROOT,
        env=env,
        input="wrong-name\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "nothing removed" in refused.stdout
    removed = script("scripts/teardown", "--stack", stack_name, "--yes")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.count("delete") == 7

    bad = script("scripts/provision", "--stack", "Bad_Name")
    assert bad.returncode == 2
    assert "invalid stack name" in bad.stderr
