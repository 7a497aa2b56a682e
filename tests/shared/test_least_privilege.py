"""The deployment's IAM policies (qcompute.iam) allow every AWS call each service really makes.

The services run with a start-up hook (tests/harness/record_calls) that records each call; a
scenario walks every path (replies, claim checks both ways, the visibility heartbeat, poison
messages, the reply-queue sweep, history and status); each call is then checked against the service's
policy: its IAM action, on the exact resource it touched (`*` for an action without resource-level
permissions, as IAM authorizes it), and the tag conditions. tests/deploy checks the other direction:
that the policies grant nothing beyond these actions, and `*` only for ListQueues.
"""

from __future__ import annotations

import json
import time
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import requests

from frontend.replies import HEARTBEAT_TAG
from harness import client
from harness.fixtures import queue_depth, queue_url, send_request
from harness.services import ROOT
from harness.waiting import eventually
from qcompute import iam
from qcompute.accounts import AccountStore
from qcompute.names import STACK_TAG, StackNames

pytestmark = pytest.mark.integration

SERVICES = ("frontend", "worker", "logger")
# Calls authorized under another action's name; the rest are "<service>:<Operation>".
AUTHORIZED_AS = {
    "SendMessageBatch": "sqs:SendMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "PublishBatch": "sns:Publish",
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "DeleteObjects": "s3:DeleteObject",
}
NEEDS_NO_PERMISSION = {"GetCallerIdentity"}


def _authorizations(call: dict, names: StackNames) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM checks for one recorded call."""
    operation, params = call["operation"], call["params"]
    action = AUTHORIZED_AS.get(operation, f"{call['service']}:{operation}")
    if call["service"] == "sqs":
        if operation == "ListQueues":
            # No resource-level permissions: IAM matches it only with a statement on Resource "*".
            return [(action, "*")]
        queue = params.get("QueueName") or params["QueueUrl"].rsplit("/", 1)[-1]
        return [(action, names.queue_arn(queue))]
    if call["service"] == "sns":
        return [(action, params["TopicArn"])]
    if call["service"] == "ssm":
        # GetParametersByPath is authorized against the path asked for.
        name = params.get("Path") or params["Name"]
        return [(action, f"arn:aws:ssm:{names.region}:{names.account_id}:parameter{name}")]
    if operation == "DeleteObjects":
        return [(action, f"{names.bucket_arn}/{item['Key']}") for item in params["Delete"]["Objects"]]
    key = params.get("Key")
    return [(action, f"{names.bucket_arn}/{key}" if key else names.bucket_arn)]


def _denial(policy: dict, action: str, resource: str, call: dict, names: StackNames) -> str | None:
    for statement in policy["Statement"]:
        if action not in statement["Action"]:
            continue
        if not any(fnmatchcase(resource, pattern) for pattern in statement["Resource"]):
            continue
        condition = statement.get("Condition", {}).get("StringEquals", {})
        request_tag = condition.get(f"aws:RequestTag/{STACK_TAG}")
        if request_tag is not None:
            tags = call["params"].get("tags") or call["params"].get("Tags") or {}
            if tags.get(STACK_TAG) != request_tag:
                continue
        # aws:ResourceTag conditions are met: every reply queue is created with the stack tag, which
        # the RequestTag condition above makes sure of.
        return None
    return f"{action} on {resource}"


def _record(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_call_each_service_makes_is_granted_by_its_policy(stack, run, strict, tmp_path) -> None:
    names, sqs = stack.clients.names, stack.clients.sqs
    files = {service: tmp_path / f"{service}.jsonl" for service in (*SERVICES, "accounts")}

    def recorded(service: str) -> dict:
        hook = ROOT / "tests/harness/record_calls"
        return {
            "PYTHONPATH": f"{ROOT / 'services'}:{hook}",
            "RECORD_AWS_CALLS": files[service],
            # Through the strict layer, whose outages drive the services down their outage paths.
            "AWS_ENDPOINT_URL": strict.endpoint,
        }

    # A reply queue left by a dead process, for the sweep; a visibility timeout the heartbeat must beat.
    sqs.create_queue(
        QueueName=f"{names.reply_queue_prefix}gone-1-ffff",
        tags={**names.tags, HEARTBEAT_TAG: str(int(time.time()) - 7200)},
    )
    sqs.set_queue_attributes(
        QueueUrl=queue_url(stack, "requests_queue"), Attributes={"VisibilityTimeout": "3"}
    )
    # Its last hour for the status page written every second, not every minute.
    logger = run.logger(STATS_FLUSH_SECONDS=1, **recorded("logger"))
    front = run.frontend(WEB_WORKERS=1, **recorded("frontend"))
    # A request cancelled while queued (before any worker runs): marker written, listed, deleted.
    cancelled = client.submit(front.url, [7, 8], wait=0).json()["id"]
    assert client.cancel(front.url, cancelled).status_code == 202
    worker = run.worker(**recorded("worker"))
    # A stack with accounts: the frontend reads them, an account's history has its own entries.
    store = AccountStore(stack.clients.ssm, names)
    store.create("alice", password="alice-password-123")
    token = store.add_token("alice")[1]
    with_accounts = run.frontend(
        "frontend-accounts", WEB_WORKERS=1, ACCESS_MODE="accounts", **recorded("accounts")
    )
    alices = {"Authorization": f"Bearer {token}"}
    submitted = requests.post(
        f"{with_accounts.url}/api/requests",
        json={"numbers": [5, 6]},
        headers=alices,
        params={"wait": 10},
        timeout=60,
    )
    assert submitted.status_code == 200, submitted.text
    eventually(
        lambda: requests.get(f"{with_accounts.url}/api/history", headers=alices, timeout=60).json()[
            "entries"
        ],
        what="alice's history entry",
    )

    small = client.compute(front.url, [1, 2, 3])
    large = client.compute(front.url, list(range(30_000)), ["sorted"])  # results through S3
    assert large["results"]["sorted"][-1] == 29_999
    client.compute(front.url, list(range(10**17, 10**17 + 20_000)), ["sum"])  # numbers through S3
    for start in (10**17, 2 * 10**17):  # lcm of thousands of distinct numbers: seconds of work
        send_request(stack, list(range(start, start + 9_000)), ["lcm"], reply_to=None)
    worker.wait_for_event("visibility_extended", timeout=120)
    sqs.send_message(QueueUrl=queue_url(stack, "requests_queue"), MessageBody="poison")
    stack.clients.sns.publish(TopicArn=names.results_topic_arn, Message="poison")
    eventually(lambda: queue_depth(stack, queue_url(stack, "log_dlq")) == 1, what="the logger's dead letter")
    eventually(
        lambda: queue_depth(stack, queue_url(stack, "requests_dlq")) == 1, what="the worker's dead letter"
    )
    eventually(lambda: client.result(front.url, small["id"]).status_code == 200, what="a result")
    assert client.result(front.url, cancelled, wait=30).json()["status"] == "cancelled"
    time.sleep(1)
    for path in ("/history", "/status", f"/requests/{small['id']}"):
        assert requests.get(front.url + path, timeout=60).status_code == 200
    front.wait_for_event("reply_queue_swept", timeout=60)
    # Outages: the worker puts a request back (SNS down), the logger a record (S3 down).
    worker_put_back, logger_put_back = (
        len(worker.events("message_retry")),
        len(logger.events("message_retry")),
    )
    strict.outage("sns", 8)
    send_request(stack, [1, 2], ["sum"], reply_to=None)
    eventually(lambda: len(worker.events("message_retry")) > worker_put_back, timeout=60, what="a put-back")
    eventually(lambda: not strict.stats()["outages"], timeout=30, what="SNS back")
    strict.outage("s3", 8)
    send_request(stack, [3, 4], ["sum"], reply_to=None)
    eventually(lambda: len(logger.events("message_retry")) > logger_put_back, timeout=60, what="a put-back")
    eventually(lambda: not strict.stats()["outages"], timeout=30, what="S3 back")
    run.stop_all()

    policies = {service: iam.SERVICE_POLICIES[service](names) for service in SERVICES}
    denied: dict[str, set[str]] = {}
    seen: dict[str, set[str]] = {}
    for service in SERVICES:
        recorded_calls = _record(files[service]) + (
            _record(files["accounts"]) if service == "frontend" else []
        )
        calls = [c for c in recorded_calls if c["operation"] not in NEEDS_NO_PERMISSION]
        assert calls, f"no calls recorded for {service}"
        for call in calls:
            for action, resource in _authorizations(call, names):
                seen.setdefault(service, set()).add(action)
                problem = _denial(policies[service], action, resource, call, names)
                if problem:
                    denied.setdefault(service, set()).add(problem)
    assert denied == {}, "calls the deployment's policies would refuse"
    # The scenario reached the paths that need the rarer permissions.
    assert {
        "sqs:DeleteQueue",
        "sqs:CreateQueue",
        "s3:PutObject",
        "sqs:ListQueues",
        "ssm:GetParametersByPath",
    } <= seen["frontend"]
    assert {"sqs:ChangeMessageVisibility", "sns:Publish", "s3:PutObject", "sqs:SendMessage"} <= seen["worker"]
    assert {"s3:DeleteObject", "s3:PutObject", "sqs:SendMessage"} <= seen["logger"]
    put_back = {
        service: {
            call["params"]["QueueUrl"].rsplit("/", 1)[-1]
            for call in _record(files[service])
            if call["operation"] == "SendMessageBatch"
        }
        for service in ("worker", "logger")
    }
    touched = {
        service: {
            resource
            for call in _record(files[service])
            for _, resource in _authorizations(call, names)
            if "/cancels/" in resource
        }
        for service in SERVICES
    }
    # The status page's charts: the logger sampled every fixed queue and wrote and read its last
    # hour; the frontend read it.
    fixed = [names.requests_queue, names.requests_dlq, names.log_queue, names.log_dlq]
    assert {names.queue_arn(queue) for queue in fixed} <= {
        resource
        for call in _record(files["logger"])
        if call["operation"] == "GetQueueAttributes"
        for _, resource in _authorizations(call, names)
    }
    stats_calls = {
        service: {
            call["operation"]
            for call in _record(files[service])
            for _, resource in _authorizations(call, names)
            if "/stats/" in resource
        }
        for service in SERVICES
    }
    assert stats_calls == {"frontend": {"GetObject"}, "worker": set(), "logger": {"GetObject", "PutObject"}}
    marker = f"{names.bucket_arn}/cancels/{cancelled}"
    assert touched == {"frontend": {marker}, "worker": set(), "logger": {marker}}, (
        "the cancel path was walked"
    )
    assert names.requests_queue in put_back["worker"], "the worker's outage path was walked"
    assert names.log_queue in put_back["logger"], "the logger's outage path was walked"
