"""Create, verify and remove a stack's queues, topic, subscription and bucket.

`provision` creates what is missing and corrects what has drifted, and says what it did; with
`dry_run=True` it only says what it would do. The tests, the local profile (LocalStack's init hook) and
`scripts/deploy` all use these functions, so there is one definition of the stack.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import Clients, error_code, is_missing_queue
from qcompute.contract import STATS_PREFIX
from qcompute.names import STACK_TAG, StackNames

# Standard logging, not structlog: this module also runs inside the LocalStack container's init hook,
# whose Python has boto3 but nothing else of ours. In the services it goes through structlog anyway.
log = logging.getLogger(__name__)

# A message is tried this many times before SQS moves it to the dead-letter queue.
MAX_RECEIVE_COUNT = 5
# Consumers extend visibility while they work (see consumer.py), so this only bounds how long a
# message held by a dead consumer stays hidden.
VISIBILITY_TIMEOUT_SECONDS = 30
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: time for an operator to look
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
# SQS refuses a queue name for 60 s after a queue of that name was deleted (QueueDeletedRecently):
# provisioning right after a removal waits that out, trying again this often.
NAME_REUSE_WAIT_SECONDS = 75
NAME_REUSE_RETRY_SECONDS = 5
# ListQueues answers at most 1,000 URLs unless asked for pages of them.
LIST_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Change:
    resource: str
    name: str
    action: str  # "create", "update", "delete" or "ok"
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.action:<6} {self.resource:<12} {self.name}{detail}"


def _normalized(attribute: str, value: str) -> Any:
    """Compare JSON attributes by content: services reformat them and quote numbers differently."""
    if attribute in {"RedrivePolicy", "Policy"}:
        document = json.loads(value)
        if "maxReceiveCount" in document:
            document["maxReceiveCount"] = int(document["maxReceiveCount"])
        return document
    return str(value)


def _queue_attributes(clients: Clients, queue: str) -> dict[str, str]:
    names = clients.names
    attributes = {
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS),
        "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
        "ReceiveMessageWaitTimeSeconds": "20",
    }
    if queue == names.requests_dlq:
        return {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS)}
    if queue == names.log_dlq:
        # Also the subscription's dead-letter queue: SNS puts there what it cannot deliver.
        return {
            "MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS),
            "Policy": _topic_may_send(names, queue),
        }
    dead_letter = names.requests_dlq if queue == names.requests_queue else names.log_dlq
    attributes["RedrivePolicy"] = json.dumps(
        {"deadLetterTargetArn": names.queue_arn(dead_letter), "maxReceiveCount": MAX_RECEIVE_COUNT}
    )
    if queue == names.log_queue:
        attributes["Policy"] = _topic_may_send(names, queue)
    return attributes


def _topic_may_send(names: StackNames, queue: str) -> str:
    """A queue policy: only the stack's own results topic (through SNS) may send to the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ResultsTopicOnly",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": names.queue_arn(queue),
                    "Condition": {"ArnEquals": {"aws:SourceArn": names.results_topic_arn}},
                }
            ],
        }
    )


def _create_queue(clients: Clients, queue: str, attributes: dict[str, str]) -> None:
    """Create a queue, waiting out SQS's 60 s ban on the name of a queue deleted moments ago."""
    deadline = time.monotonic() + NAME_REUSE_WAIT_SECONDS
    warned = False
    while True:
        try:
            clients.sqs.create_queue(QueueName=queue, Attributes=attributes, tags=clients.names.tags)
            return
        except ClientError as error:
            if error_code(error) != "QueueDeletedRecently" or time.monotonic() > deadline:
                raise
        if not warned:
            log.warning(
                "queue %s was deleted less than 60 s ago and SQS reserves its name until then: waiting",
                queue,
            )
            warned = True
        time.sleep(NAME_REUSE_RETRY_SECONDS)


def _ensure_queue(clients: Clients, queue: str, dry_run: bool) -> Change:
    sqs = clients.sqs
    wanted = _queue_attributes(clients, queue)
    try:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except ClientError as error:
        if not is_missing_queue(error):
            raise
        if not dry_run:
            _create_queue(clients, queue, wanted)
        return Change("queue", queue, "create")
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    drifted = {
        key: value
        for key, value in wanted.items()
        if key not in current or _normalized(key, current[key]) != _normalized(key, value)
    }
    tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
    missing_tags = {k: v for k, v in clients.names.tags.items() if tags.get(k) != v}
    if not drifted and not missing_tags:
        return Change("queue", queue, "ok")
    if not dry_run:
        if drifted:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=drifted)
        if missing_tags:
            sqs.tag_queue(QueueUrl=url, Tags=missing_tags)
    return Change("queue", queue, "update", ", ".join(sorted(drifted) + sorted(missing_tags)))


def _find_topic(clients: Clients) -> str | None:
    arn = clients.names.results_topic_arn
    try:
        clients.sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        if error_code(error) in {"NotFound", "NotFoundException"}:
            return None
        raise
    return arn


def _ensure_topic(clients: Clients, dry_run: bool) -> Change:
    name = clients.names.results_topic
    if _find_topic(clients):
        return Change("topic", name, "ok")
    if not dry_run:
        tags = [{"Key": k, "Value": v} for k, v in clients.names.tags.items()]
        clients.sns.create_topic(Name=name, Tags=tags)
    return Change("topic", name, "create")


def _log_subscriptions(clients: Clients) -> list[dict[str, Any]]:
    names = clients.names
    if not _find_topic(clients):
        return []
    paginator = clients.sns.get_paginator("list_subscriptions_by_topic")
    return [
        subscription
        for page in paginator.paginate(TopicArn=names.results_topic_arn)
        for subscription in page["Subscriptions"]
        if subscription["Endpoint"] == names.queue_arn(names.log_queue)
    ]


def _subscription_attributes(names: StackNames) -> dict[str, str]:
    return {
        # Raw delivery: the log queue receives the worker's record as is, not wrapped.
        "RawMessageDelivery": "true",
        # What SNS cannot deliver (the queue gone, its policy broken) goes to the log DLQ, raw as
        # well, instead of being dropped: `scripts/dlq redrive logs` sends it on once fixed.
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": names.queue_arn(names.log_dlq)}),
    }


def _ensure_subscription(clients: Clients, dry_run: bool) -> Change:
    names = clients.names
    label = f"{names.results_topic} -> {names.log_queue}"
    wanted = _subscription_attributes(names)
    existing = _log_subscriptions(clients)
    if not existing:
        if not dry_run:
            clients.sns.subscribe(
                TopicArn=names.results_topic_arn,
                Protocol="sqs",
                Endpoint=names.queue_arn(names.log_queue),
                Attributes=wanted,
                ReturnSubscriptionArn=True,
            )
        return Change("subscription", label, "create", "raw delivery, dead letters to the log DLQ")
    arn = existing[0]["SubscriptionArn"]
    attributes = clients.sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    drifted = [
        name
        for name, value in wanted.items()
        if name not in attributes or _normalized(name, attributes[name]) != _normalized(name, value)
    ]
    if not drifted:
        return Change("subscription", label, "ok")
    if not dry_run:
        for name in drifted:
            clients.sns.set_subscription_attributes(
                SubscriptionArn=arn, AttributeName=name, AttributeValue=wanted[name]
            )
    return Change("subscription", label, "update", ", ".join(drifted))


_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
# Payloads of requests that never finished (see payloads.py) do not stay forever; logs do. A message
# may wait 4 days in its queue and then 14 in a dead-letter queue before an operator redrives it:
# its payload must outlive both, or the redriven request finds its numbers gone.
PAYLOAD_EXPIRY_DAYS = 30
_LIFECYCLE = {
    "Rules": [
        {
            "ID": "expire-unfinished-payloads",
            "Filter": {"Prefix": "payloads/"},
            "Status": "Enabled",
            "Expiration": {"Days": PAYLOAD_EXPIRY_DAYS},
        },
        # A cancel marker is deleted with its cancelled record; one that came too late (the request
        # was already being computed) is not, and goes the same way, after as long.
        {
            "ID": "expire-cancel-markers",
            "Filter": {"Prefix": "cancels/"},
            "Status": "Enabled",
            "Expiration": {"Days": PAYLOAD_EXPIRY_DAYS},
        },
        # A logger's last hour (qcompute.stats) is charted for an hour; each new container writes
        # one, so the old ones go after a day (S3's shortest expiry).
        {
            "ID": "expire-logger-stats",
            "Filter": {"Prefix": STATS_PREFIX},
            "Status": "Enabled",
            "Expiration": {"Days": 1},
        },
    ]
}


def _bucket_exists(clients: Clients) -> bool:
    try:
        clients.s3.head_bucket(Bucket=clients.names.log_bucket)
    except ClientError as error:
        if error_code(error) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def _bucket_settings_drift(clients: Clients) -> list[str]:
    s3, bucket = clients.s3, clients.names.log_bucket
    drift = []
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        if block != _PUBLIC_ACCESS_BLOCK:
            drift.append("public access block")
    except ClientError:
        drift.append("public access block")
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        if not rules:
            drift.append("encryption")
    except ClientError:
        drift.append("encryption")
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        if not {rule["ID"] for rule in _LIFECYCLE["Rules"]} <= {rule.get("ID") for rule in rules}:
            drift.append("expiry rules")
    except ClientError:
        drift.append("expiry rules")
    return drift


def _apply_bucket_settings(clients: Clients) -> None:
    s3, bucket = clients.s3, clients.names.log_bucket
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=_ENCRYPTION)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=_LIFECYCLE)
    tags = [{"Key": k, "Value": v} for k, v in clients.names.tags.items()]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})


def _ensure_bucket(clients: Clients, dry_run: bool) -> Change:
    names = clients.names
    if _bucket_exists(clients):
        drift = _bucket_settings_drift(clients)
        if not drift:
            return Change("bucket", names.log_bucket, "ok")
        if not dry_run:
            _apply_bucket_settings(clients)
        return Change("bucket", names.log_bucket, "update", ", ".join(drift))
    if not dry_run:
        options: dict[str, Any] = {}
        if names.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": names.region}
        clients.s3.create_bucket(Bucket=names.log_bucket, **options)
        _apply_bucket_settings(clients)
    return Change("bucket", names.log_bucket, "create", "private, encrypted, payloads expire")


def provision(clients: Clients, *, dry_run: bool = False) -> list[Change]:
    """Make the stack's messaging and storage exist as defined here; return what changed."""
    names = clients.names
    changes = [
        # Dead-letter queues first: a redrive policy must name an existing queue.
        _ensure_queue(clients, names.requests_dlq, dry_run),
        _ensure_queue(clients, names.requests_queue, dry_run),
        _ensure_queue(clients, names.log_dlq, dry_run),
        _ensure_queue(clients, names.log_queue, dry_run),
        _ensure_topic(clients, dry_run),
    ]
    changes.append(_ensure_subscription(clients, dry_run))
    changes.append(_ensure_bucket(clients, dry_run))
    for change in changes:
        log.info("provision: %s", change)
    return changes


def reply_queues(sqs: Any, names: StackNames) -> dict[str, dict[str, str]]:
    """The stack's reply queues with their tags.

    The name prefix alone is not proof: another stack may be called "<ours>-reply", so a queue
    counts only if it also carries our stack tag.
    """
    found = {}
    pages = sqs.get_paginator("list_queues").paginate(
        QueueNamePrefix=names.reply_queue_prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
    )
    for page in pages:
        for url in page.get("QueueUrls", []):
            try:
                tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
            except ClientError as error:
                if is_missing_queue(error):
                    continue
                raise
            if tags.get(STACK_TAG) == names.stack:
                found[url] = tags
    return found


def _stack_queue_urls(clients: Clients) -> list[str]:
    """The stack's fixed queues that exist, then its reply queues."""
    names = clients.names
    urls = []
    for queue in (names.requests_queue, names.requests_dlq, names.log_queue, names.log_dlq):
        try:
            urls.append(clients.sqs.get_queue_url(QueueName=queue)["QueueUrl"])
        except ClientError as error:
            if not is_missing_queue(error):
                raise
    return urls + list(reply_queues(clients.sqs, names))


def _empty_bucket(clients: Clients) -> int:
    s3, bucket = clients.s3, clients.names.log_bucket
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


def remove(clients: Clients, *, dry_run: bool = False) -> list[Change]:
    """Delete everything `provision` made, and every reply queue of the stack. Safe to re-run."""
    names = clients.names
    changes = []
    for subscription in _log_subscriptions(clients):
        if not dry_run:
            clients.sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
        changes.append(Change("subscription", f"{names.results_topic} -> {names.log_queue}", "delete"))
    if _find_topic(clients):
        if not dry_run:
            clients.sns.delete_topic(TopicArn=names.results_topic_arn)
        changes.append(Change("topic", names.results_topic, "delete"))
    for url in _stack_queue_urls(clients):
        if not dry_run:
            try:
                clients.sqs.delete_queue(QueueUrl=url)
            except ClientError as error:
                if not is_missing_queue(error):
                    raise
        changes.append(Change("queue", url.rsplit("/", 1)[-1], "delete"))
    if _bucket_exists(clients):
        count = 0 if dry_run else _empty_bucket(clients)
        if not dry_run:
            clients.s3.delete_bucket(Bucket=names.log_bucket)
        changes.append(Change("bucket", names.log_bucket, "delete", f"{count} objects" if count else ""))
    for change in changes:
        log.info("remove: %s", change)
    return changes
