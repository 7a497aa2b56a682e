"""The services' permissions: exact actions on the stack's own ARNs, never a neighbour's, and "*" only
for the one action that has no resource-level permissions."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import pytest

from qcompute import iam
from qcompute.names import LOGGED_SERVICES, STACK_TAG, StackNames

NAMES = StackNames("demo", "123456789012", "eu-west-1")
# The most confusable neighbours: one name is ours plus a suffix, the other starts like our reply queues.
NEIGHBOURS = [
    StackNames("demo-2", "123456789012", "eu-west-1"),
    StackNames("demo-reply", "123456789012", "eu-west-1"),
]
# IAM authorizes an action without resource-level permissions only on Resource "*": the only grants
# that may name it (test_iam_lint.py reports "*" on an action that has them, and an ARN on one that has not).
NO_RESOURCE_LEVEL_PERMISSIONS = {"sqs:ListQueues"}


def _grants(policy: dict) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for statement in policy["Statement"]
        for action in statement["Action"]
        for resource in statement["Resource"]
    }


def _actions(policy: dict) -> set[str]:
    return {action for action, _ in _grants(policy)}


def test_each_service_gets_exactly_the_actions_its_code_calls() -> None:
    consume = {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    assert _actions(iam.frontend_policy(NAMES)) == {
        "sqs:SendMessage",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:TagQueue",
        "sqs:ListQueueTags",
        "sqs:ListQueues",
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "ssm:GetParametersByPath",
    }
    assert _actions(iam.worker_policy(NAMES)) == consume | {
        "sqs:SendMessage",
        "sns:Publish",
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
    }
    assert _actions(iam.logger_policy(NAMES)) == consume | {
        "sqs:SendMessage",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
    }


def test_the_grants_that_matter_are_where_they_belong() -> None:
    bucket = NAMES.bucket_arn
    frontend, worker, logger = (
        _grants(iam.frontend_policy(NAMES)),
        _grants(iam.worker_policy(NAMES)),
        _grants(iam.logger_policy(NAMES)),
    )
    assert ("sqs:SendMessage", NAMES.queue_arn("demo-requests")) in frontend
    assert ("sqs:DeleteQueue", NAMES.queue_arn("demo-reply-*")) in frontend
    assert ("sqs:GetQueueAttributes", NAMES.queue_arn("demo-logs-dlq")) in frontend
    assert ("sqs:ListQueues", "*") in frontend
    assert ("s3:GetObject", f"{bucket}/logs/*") in frontend
    assert ("sqs:SendMessage", NAMES.queue_arn("demo-requests-dlq")) in worker
    assert ("sqs:SendMessage", NAMES.queue_arn("demo-requests")) in worker, "put back during an outage"
    assert ("sqs:SendMessage", NAMES.queue_arn("demo-logs")) in logger, "put back during an outage"
    assert ("sqs:SendMessage", NAMES.queue_arn("demo-reply-*")) in worker
    assert ("sns:Publish", NAMES.results_topic_arn) in worker
    assert ("s3:PutObject", f"{bucket}/logs/*") in logger
    assert ("s3:PutObject", f"{bucket}/logs/*") not in frontend | worker, "only the logger writes the log"
    # Cancelling: the frontend writes a marker, the worker lists them (no read, no write), the logger
    # deletes it with the cancelled record.
    assert ("s3:PutObject", f"{bucket}/cancels/*") in frontend
    assert ("s3:DeleteObject", f"{bucket}/cancels/*") in logger
    assert not [grant for grant in worker if "/cancels/" in grant[1]], "the worker only lists the markers"
    assert ("s3:ListBucket", bucket) in worker
    assert ("sqs:ReceiveMessage", NAMES.queue_arn("demo-requests")) not in frontend | logger
    # The status page's charts: the logger samples every fixed queue's depth (reads nothing else of
    # them) and writes its last hour under stats/, which the frontend only reads.
    for queue in ("demo-requests", "demo-requests-dlq", "demo-logs", "demo-logs-dlq"):
        assert ("sqs:GetQueueAttributes", NAMES.queue_arn(queue)) in logger
    assert {grant for grant in logger if grant[1] == NAMES.queue_arn("demo-requests")} == {
        ("sqs:GetQueueAttributes", NAMES.queue_arn("demo-requests")),
        ("sqs:GetQueueUrl", NAMES.queue_arn("demo-requests")),
    }
    assert {
        ("s3:PutObject", f"{bucket}/stats/loggers/*"),
        ("s3:GetObject", f"{bucket}/stats/loggers/*"),
    } <= logger
    assert ("s3:GetObject", f"{bucket}/stats/loggers/*") in frontend
    assert not [grant for grant in frontend | worker if grant[0] != "s3:GetObject" and "/stats/" in grant[1]]
    # Sign-in reads the accounts by their path, as IAM authorizes GetParametersByPath: that path only.
    accounts = "arn:aws:ssm:eu-west-1:123456789012:parameter/qcompute/demo/accounts"
    assert [grant for grant in frontend if grant[0].startswith("ssm:")] == [
        ("ssm:GetParametersByPath", accounts)
    ]
    assert not [grant for grant in worker | logger if grant[0].startswith("ssm:")], (
        "only the frontend reads them"
    )


def _theirs(neighbour: StackNames) -> list[str]:
    return [
        *(neighbour.queue_arn(queue) for queue in (neighbour.requests_queue, neighbour.requests_dlq)),
        *(neighbour.queue_arn(queue) for queue in (neighbour.log_queue, neighbour.log_dlq)),
        neighbour.queue_arn(f"{neighbour.reply_queue_prefix}host-1-abcd"),
        neighbour.results_topic_arn,
        neighbour.bucket_arn,
        f"{neighbour.bucket_arn}/logs/2026/01/01/x.json",
        f"{neighbour.bucket_arn}/stats/loggers/host-1.json",
        neighbour.secret_key_parameter_arn,
        neighbour.accounts_path_arn,
        f"{neighbour.accounts_path_arn}/alice",
        *(
            f"{neighbour.log_group_arn(service)}:log-stream:qcompute-{service}-1"
            for service in LOGGED_SERVICES
        ),
        neighbour.worker_fleet_arn.replace("*", "0d1c2b3a-0000-4000-8000-000000000000"),
    ]


# Reading names and tags is how the frontend tells its own reply queues from a neighbour's.
READ_ONLY_LISTING = {"sqs:ListQueues", "sqs:ListQueueTags"}


@pytest.mark.parametrize(
    "build",
    [
        *iam.SERVICE_POLICIES.values(),
        iam.instance_boot_policy,
        iam.instance_logs_policy,
        iam.instance_policy,
        iam.worker_host_policy,
    ],
)
def test_star_only_for_what_has_no_resource_and_nothing_of_a_neighbour(build) -> None:
    for statement in build(NAMES)["Statement"]:
        for resource in statement["Resource"]:
            if resource == "*":
                assert set(statement["Action"]) <= NO_RESOURCE_LEVEL_PERMISSIONS, statement["Sid"]
                assert statement["Resource"] == ["*"], statement["Sid"]
            exposed = [arn for n in NEIGHBOURS for arn in _theirs(n) if fnmatchcase(arn, resource)]
            if not exposed or set(statement["Action"]) <= READ_ONLY_LISTING:
                continue
            # The reply-queue wildcard matches a stack called "<ours>-reply": our tag must decide.
            condition = statement.get("Condition", {}).get("StringEquals", {})
            assert condition in (
                {f"aws:ResourceTag/{STACK_TAG}": "demo"},
                {f"aws:RequestTag/{STACK_TAG}": "demo"},
            ), (statement["Sid"], exposed)


def test_the_instance_policy_merges_the_services_and_fits_iam() -> None:
    policy = iam.instance_policy(NAMES)
    expected = {grant for build in iam.SERVICE_POLICIES.values() for grant in _grants(build(NAMES))}
    expected |= _grants(iam.instance_boot_policy(NAMES)) | _grants(iam.instance_logs_policy(NAMES))
    assert _grants(policy) == expected
    sids = [statement["Sid"] for statement in policy["Statement"]]
    assert len(sids) == len(set(sids))
    assert ("s3:GetObject", f"{NAMES.bucket_arn}/deploy/bundle.tar.gz") in expected
    assert (
        "ssm:GetParameter",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/qcompute/demo/secret-key",
    ) in expected
    # Nothing on the instance may write or delete a parameter: accounts change only from scripts/users.
    assert {action for action, _ in expected if action.startswith("ssm:")} == {
        "ssm:GetParameter",
        "ssm:GetParametersByPath",
    }
    # IAM's limit for a role's inline policies, white space not counted.
    assert len(json.dumps(policy, separators=(",", ":"))) < 10_240


def test_the_containers_may_only_write_their_streams_in_the_stacks_own_log_groups() -> None:
    streams = "arn:aws:logs:eu-west-1:123456789012:log-group:/qcompute/demo/{}:log-stream:*"
    assert _grants(iam.instance_logs_policy(NAMES)) == {
        (action, streams.format(service))
        for action in ("logs:CreateLogStream", "logs:PutLogEvents")
        for service in ("frontend", "worker", "logger", "proxy")
    }
    # Not the services' own: the Docker daemon writes them, with the instance role.
    for build in iam.SERVICE_POLICIES.values():
        assert not [action for action in _actions(build(NAMES)) if action.startswith("logs:")]


def test_the_worker_hosts_role_allows_exactly_the_workers_calls_and_its_hosts_own() -> None:
    policy = iam.worker_host_policy(NAMES)
    host = {
        ("s3:GetObject", f"{NAMES.bucket_arn}/deploy/bundle.tar.gz"),
        (
            "logs:CreateLogStream",
            "arn:aws:logs:eu-west-1:123456789012:log-group:/qcompute/demo/worker:log-stream:*",
        ),
        (
            "logs:PutLogEvents",
            "arn:aws:logs:eu-west-1:123456789012:log-group:/qcompute/demo/worker:log-stream:*",
        ),
        (
            "autoscaling:CompleteLifecycleAction",
            "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/demo-workers",
        ),
    }
    assert _grants(policy) == _grants(iam.worker_policy(NAMES)) | host
    # The worker's own statements, unchanged, conditions included.
    worker = iam.worker_policy(NAMES)["Statement"]
    assert policy["Statement"][: len(worker)] == worker
    # Nothing only the frontend or the logger may do: no secret, no accounts, no log writes, no deletes.
    others = _actions(iam.frontend_policy(NAMES)) | _actions(iam.logger_policy(NAMES))
    assert _actions(policy) & others <= _actions(iam.worker_policy(NAMES))
    for action in ("ssm:GetParameter", "ssm:GetParametersByPath", "s3:DeleteObject", "sqs:CreateQueue"):
        assert action not in _actions(policy)
    assert ("s3:PutObject", f"{NAMES.bucket_arn}/logs/*") not in _grants(policy)
    assert not [grant for grant in _grants(policy) if "frontend" in grant[1] or "/logger" in grant[1]]
