"""What each service may do in AWS: one least-privilege policy per service, in one place.

Exact actions on the stack's exact ARNs, read off the calls each service makes (services/*, and the
shared consumer.py, payloads.py, accounts.py and provision.reply_queues they use); `"*"` only for
sqs:ListQueues, which has no resource-level permissions. `instance_policy` merges them into the
inline policy of the EC2 instance role that `scripts/deploy` creates, with the two reads the instance
itself makes at boot. `worker_host_policy` is the worker hosts' (scripts/deploy up --worker-hosts):
the worker's policy alone, with what such a host itself does.
tests/deploy/test_iam_lint.py lints them all against AWS's action and resource reference.
"""

from __future__ import annotations

from typing import Any

from qcompute.contract import CANCEL_PREFIX, LOG_PREFIX, PAYLOAD_PREFIX, STATS_PREFIX, USER_PREFIX
from qcompute.names import LOGGED_SERVICES, STACK_TAG, StackNames

Policy = dict[str, Any]

# Session Manager and Run Command (how `scripts/deploy` rolls out a new bundle): the AWS-managed
# policy, so no SSH port and no key pair are ever needed.
SESSION_MANAGER_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
INSTANCE_POLICY_NAME = "qcompute-services"
WORKER_HOST_POLICY_NAME = "qcompute-worker-host"

# Consuming a queue: the batch calls (DeleteMessageBatch, ChangeMessageVisibilityBatch) are authorized
# as DeleteMessage and ChangeMessageVisibility.
_CONSUME = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
]


def ec2_trust_policy() -> Policy:
    """Who may assume the instance role: EC2, for the instance it is attached to."""
    return _document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
    )


def _statement(
    sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    return {**statement, "Condition": condition} if condition else statement


def _tagged(names: StackNames, key: str = "aws:ResourceTag") -> dict[str, Any]:
    """Only queues carrying the stack's tag (SQS supports ABAC): the reply-queue wildcard
    `<stack>-reply-*` also matches every queue of a stack called `<stack>-reply`."""
    return {"StringEquals": {f"{key}/{STACK_TAG}": names.stack}}


def _document(statements: list[dict[str, Any]]) -> Policy:
    return {"Version": "2012-10-17", "Statement": statements}


def _objects(names: StackNames, prefix: str) -> str:
    return f"{names.bucket_arn}/{prefix}*"


def _reply_queues(names: StackNames) -> str:
    return names.queue_arn(f"{names.reply_queue_prefix}*")


def frontend_policy(names: StackNames) -> Policy:
    q = names.queue_arn
    fixed_queues = [q(names.requests_queue), q(names.requests_dlq), q(names.log_queue), q(names.log_dlq)]
    return _document(
        [
            _statement(
                "FrontendSubmit",
                ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
                [q(names.requests_queue)],
            ),
            # Each process creates its own reply queue, tagged as the stack's (tagging on creation
            # is authorized as TagQueue too) ...
            _statement(
                "FrontendCreateReplyQueue",
                ["sqs:CreateQueue", "sqs:TagQueue"],
                [_reply_queues(names)],
                _tagged(names, "aws:RequestTag"),
            ),
            # ... reads it, re-tags it (heartbeat), deletes it, and sweeps those of dead processes.
            _statement(
                "FrontendOwnReplyQueues",
                [
                    "sqs:DeleteQueue",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:TagQueue",
                ],
                [_reply_queues(names)],
                _tagged(names),
            ),
            # Reading tags is how the sweep and the status page tell the stack's queues from others
            # that share the prefix, so it cannot depend on them.
            _statement("FrontendFindReplyQueues", ["sqs:ListQueueTags"], [_reply_queues(names)]),
            # ListQueues has no resource-level permissions: IAM authorizes it only on Resource "*"
            # (AWS's Service Authorization Reference), so it gets "*" alone. It only lists names.
            _statement("FrontendListReplyQueues", ["sqs:ListQueues"], ["*"]),
            # The status page reads every queue's depth.
            _statement("FrontendStatus", ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"], fixed_queues),
            _statement(
                "FrontendReadResults",
                ["s3:GetObject"],
                # users/: each account's history entries (HEAD is authorized as GetObject); stats/loggers/:
                # the loggers' last hour, which the status page charts.
                [
                    _objects(names, LOG_PREFIX),
                    _objects(names, PAYLOAD_PREFIX),
                    _objects(names, USER_PREFIX),
                    _objects(names, STATS_PREFIX),
                ],
            ),
            # Numbers too large for a message (claim checks), and the markers of cancelled requests.
            _statement(
                "FrontendStorePayloads",
                ["s3:PutObject"],
                [_objects(names, PAYLOAD_PREFIX), _objects(names, CANCEL_PREFIX)],
            ),
            # The history pages list the log; ListBucket also turns a missing key into 404, not 403.
            _statement("FrontendListLog", ["s3:ListBucket"], [names.bucket_arn]),
            # Signing in reads every account at once (accounts.py). GetParametersByPath is authorized
            # against the path asked for, not the parameters it returns (AWS's "How Parameter Store
            # authorizes parameter retrieval"): exactly the stack's accounts path. They are
            # SecureStrings under aws/ssm, whose key policy lets SSM decrypt them: no kms:Decrypt.
            _statement("FrontendReadAccounts", ["ssm:GetParametersByPath"], [names.accounts_path_arn]),
        ]
    )


def worker_policy(names: StackNames) -> Policy:
    q = names.queue_arn
    return _document(
        [
            _statement("WorkerConsume", _CONSUME, [q(names.requests_queue)]),
            # A message AWS failed on is put back as a new message (consumer.py: an outage does not
            # spend the message's tries).
            _statement("WorkerRequeue", ["sqs:SendMessage"], [q(names.requests_queue)]),
            # Poison messages go to the dead-letter queue with their reason.
            _statement("WorkerDeadLetter", ["sqs:SendMessage", "sqs:GetQueueUrl"], [q(names.requests_dlq)]),
            _statement("WorkerReply", ["sqs:SendMessage"], [_reply_queues(names)], _tagged(names)),
            # PublishBatch is authorized as Publish.
            _statement("WorkerPublish", ["sns:Publish"], [names.results_topic_arn]),
            # Stored numbers in, large results out; a HEAD on the log tells a long-done redelivery.
            _statement(
                "WorkerReadPayloads",
                ["s3:GetObject"],
                [_objects(names, PAYLOAD_PREFIX), _objects(names, LOG_PREFIX)],
            ),
            _statement("WorkerStorePayloads", ["s3:PutObject"], [_objects(names, PAYLOAD_PREFIX)]),
            # Without ListBucket a missing payload answers 403, which reads as a failure, not "gone";
            # it also lists the cancel markers (cancels/<id>: existence is all they say).
            _statement("WorkerListBucket", ["s3:ListBucket"], [names.bucket_arn]),
        ]
    )


def logger_policy(names: StackNames) -> Policy:
    q = names.queue_arn
    return _document(
        [
            _statement("LoggerConsume", _CONSUME, [q(names.log_queue)]),
            _statement("LoggerRequeue", ["sqs:SendMessage"], [q(names.log_queue)]),
            _statement("LoggerDeadLetter", ["sqs:SendMessage", "sqs:GetQueueUrl"], [q(names.log_dlq)]),
            # The record, and its entry in its account's history (users/<name>/...).
            _statement(
                "LoggerWrite", ["s3:PutObject"], [_objects(names, LOG_PREFIX), _objects(names, USER_PREFIX)]
            ),
            # It writes stored payloads into the record, then deletes them, and a cancelled request's
            # marker (DeleteObjects is authorized per key as DeleteObject); a HEAD on the log tells a
            # record already written, and whether this logger's own retried PUT wrote it.
            _statement(
                "LoggerReadPayloads",
                ["s3:GetObject"],
                [_objects(names, PAYLOAD_PREFIX), _objects(names, LOG_PREFIX)],
            ),
            _statement(
                "LoggerDeletePayloads",
                ["s3:DeleteObject"],
                [_objects(names, PAYLOAD_PREFIX), _objects(names, CANCEL_PREFIX)],
            ),
            _statement("LoggerListBucket", ["s3:ListBucket"], [names.bucket_arn]),
            # Its last hour for the status page: written every minute, read back after a restart.
            _statement("LoggerStats", ["s3:PutObject", "s3:GetObject"], [_objects(names, STATS_PREFIX)]),
            # ... with the depths of the stack's other queues, sampled once a minute (read only).
            _statement(
                "LoggerQueueDepths",
                ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
                [q(names.requests_queue), q(names.requests_dlq), q(names.log_dlq)],
            ),
        ]
    )


def instance_boot_policy(names: StackNames) -> Policy:
    """What the instance itself reads at boot and at each rollout: the bundle and the secret."""
    return _document(
        [
            _statement("InstanceBundle", ["s3:GetObject"], [f"{names.bucket_arn}/{names.bundle_key}"]),
            # A SecureString under the AWS-managed key aws/ssm: that key's policy lets SSM decrypt
            # for any principal of the account allowed to read the parameter, so no kms:Decrypt.
            _statement("InstanceSecretKey", ["ssm:GetParameter"], [names.secret_key_parameter_arn]),
        ]
    )


def instance_logs_policy(names: StackNames) -> Policy:
    """What Docker's awslogs driver does with the instance role: open a stream per container in the
    stack's own log groups and write to it. `deploy up` makes the groups (compose.aws.yaml says
    awslogs-create-group "false"), so no logs:CreateLogGroup; both actions are authorized on the
    log-stream ARN (AWS's Service Authorization Reference), `<group ARN>:log-stream:<stream>`."""
    streams = [f"{names.log_group_arn(service)}:log-stream:*" for service in LOGGED_SERVICES]
    return _document(
        [_statement("InstanceContainerLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], streams)]
    )


SERVICE_POLICIES = {"frontend": frontend_policy, "worker": worker_policy, "logger": logger_policy}


def instance_policy(names: StackNames) -> Policy:
    """The instance role's inline policy: the three services (they share the host), its own reads and
    its containers' logs."""
    statements = [statement for build in SERVICE_POLICIES.values() for statement in build(names)["Statement"]]
    host = instance_boot_policy(names)["Statement"] + instance_logs_policy(names)["Statement"]
    return _document(statements + host)


def worker_host_policy(names: StackNames) -> Policy:
    """A worker host's role: the worker's statements and nothing of the frontend's or the logger's,
    plus the host's own three needs: the bundle it builds the worker image from, its containers' log
    streams in the worker's log group only, and telling its Auto Scaling group that its workers have
    stopped (the drain watcher, workerhost.py; no heartbeat: the hook's timeout covers a warm stop)."""
    host = [
        _statement("WorkerHostBundle", ["s3:GetObject"], [f"{names.bucket_arn}/{names.bundle_key}"]),
        _statement(
            "WorkerHostLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"{names.log_group_arn('worker')}:log-stream:*"],
        ),
        _statement("WorkerHostDrain", ["autoscaling:CompleteLifecycleAction"], [names.worker_fleet_arn]),
    ]
    return _document(worker_policy(names)["Statement"] + host)
