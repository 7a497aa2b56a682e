"""The stack's alerts: CloudWatch metric alarms that notify an SNS topic, `<stack>-alerts`, whose e-mail
subscription reaches the person operating it (`scripts/deploy up --alert-email ADDR`).

The alarms watch what AWS already measures: a message in either dead-letter queue, the oldest request
waiting too long, and the instance's status check; and one metric of the stack's own, replies stalled:
a CloudWatch Logs metric filter on the frontend's log group counts the lines a frontend process logs
each housekeeping round (REPLY_QUEUE_HEARTBEAT_SECONDS, a minute) while its requests get no reply.
The resources remember the settings: the topic's e-mail subscription is the address, the age alarm's
threshold the age, so an `up` that names neither keeps them. The deployer's own credentials make all
of it; the instance role is not involved, and needs nothing new for the filter, which reads what the
awslogs driver already writes there (CloudWatch Logs itself publishes the metric). The topic keeps
SNS's default access policy, which lets the account's own principals (CloudWatch alarms of this
account among them) publish to it; a policy of our own would be needed only for a KMS-encrypted topic
or alarms of another account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code
from qcompute.deploy import loggroups
from qcompute.deploy.infra import tag_list
from qcompute.deploy.session import DeployError, Deployment
from qcompute.logs import REPLIES_STALLED
from qcompute.names import STACK_TAG, StackNames
from qcompute.provision import Change

DEFAULT_OLDEST_SECONDS = 300
# SQS reports its metrics to CloudWatch once a minute while a queue is active, and nothing at all for
# a queue that has been empty and untouched for a while: no data is an empty queue, not a failure.
PERIOD_SECONDS = 60
PENDING = "PendingConfirmation"
# Each alarm's name after the stack's: the exact names, never a prefix (stack "demo" is a prefix of "demo-2").
REQUESTS_DLQ, LOG_DLQ, REQUESTS_OLDEST, STALLED, INSTANCE_STATUS = (
    "requests-dlq-messages",
    "logs-dlq-messages",
    "requests-oldest",
    "replies-stalled",
    "instance-status",
)
KEYS = (REQUESTS_DLQ, LOG_DLQ, REQUESTS_OLDEST, STALLED, INSTANCE_STATUS)
# The stalled-replies metric: the frontend's log group, the filter's name after the stack's (the
# alarm's key), the metric in the stack's own namespace.
FILTERED_SERVICE = "frontend"
STALLED_METRIC = "RepliesStalled"
# What put_metric_alarm is given and describe_alarms shows back: `up` compares these, not blindly re-puts.
COMPARED = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
)


@dataclass(frozen=True)
class Alerting:
    """What alerting `up` makes exist: none (email None and not on), or these settings."""

    on: bool
    email: str  # empty: keep whatever subscription the topic has
    oldest_seconds: int


def _queue_alarm(queue: str, metric: str, threshold: int, description: str) -> dict:
    return {
        "AlarmDescription": description,
        "Namespace": "AWS/SQS",
        "MetricName": metric,
        "Dimensions": [{"Name": "QueueName", "Value": queue}],
        "Statistic": "Maximum",
        "Period": PERIOD_SECONDS,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def metric_filter(names: StackNames) -> dict[str, Any]:
    """The metric filter counting the frontend's stall lines, as put_metric_filter takes it."""
    return {
        "logGroupName": names.log_group(FILTERED_SERVICE),
        "filterName": names.metric_filter(STALLED),
        # Selects the JSON log events whose top-level `event` is the name (LOG_FORMAT=json on EC2).
        "filterPattern": f'{{ $.event = "{REPLIES_STALLED}" }}',
        "metricTransformations": [
            {
                "metricName": STALLED_METRIC,
                "metricNamespace": names.metrics_namespace,
                "metricValue": "1",
                "unit": "Count",
            }
        ],
    }


def definitions(names: StackNames, oldest_seconds: int, instance_id: str | None) -> dict[str, dict]:
    """Each alarm's definition by name, without its actions; the instance's is None until it exists."""
    topic = [names.alerts_topic_arn]
    defined: dict[str, dict | None] = {
        names.alarm(REQUESTS_DLQ): _queue_alarm(
            names.requests_dlq,
            "ApproximateNumberOfMessagesVisible",
            0,
            f"a request failed every attempt and waits in {names.requests_dlq} (scripts/dlq)",
        ),
        names.alarm(LOG_DLQ): _queue_alarm(
            names.log_dlq,
            "ApproximateNumberOfMessagesVisible",
            0,
            f"a log message could not be stored and waits in {names.log_dlq} (scripts/dlq)",
        ),
        names.alarm(REQUESTS_OLDEST): _queue_alarm(
            names.requests_queue,
            "ApproximateAgeOfOldestMessage",
            oldest_seconds,
            f"a request has waited over {oldest_seconds} s in {names.requests_queue}: "
            "workers stopped or too few",
        ),
        names.alarm(STALLED): {
            "AlarmDescription": f"replies stalled: a frontend process logged {REPLIES_STALLED} in "
            f"{names.log_group(FILTERED_SERVICE)} (requests waiting, no reply for REPLY_STALL_SECONDS): "
            "workers stuck or replies not delivered",
            "Namespace": names.metrics_namespace,
            "MetricName": STALLED_METRIC,
            "Statistic": "Sum",
            "Period": PERIOD_SECONDS,
            # A stalled process logs a line a minute, which may land in either of two periods: one
            # line in two minutes keeps the alarm on, and it recovers two minutes after the last.
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            # No line, no data point: nothing has stalled.
            "TreatMissingData": "notBreaching",
        },
        names.alarm(INSTANCE_STATUS): None,
    }
    if instance_id:
        defined[names.alarm(INSTANCE_STATUS)] = {
            "AlarmDescription": f"instance {instance_id} fails its EC2 status check",
            "Namespace": "AWS/EC2",
            "MetricName": "StatusCheckFailed",
            "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            "Statistic": "Maximum",
            "Period": PERIOD_SECONDS,
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 2,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            # A stopped instance reports nothing: INSUFFICIENT_DATA, not an e-mail at every stop.
            "TreatMissingData": "missing",
        }
    return {
        name: None
        if body is None
        else {**body, "ActionsEnabled": True, "AlarmActions": topic, "OKActions": topic}
        for name, body in defined.items()
    }


# --- lookups --------------------------------------------------------------------------------------


def find_topic(deployment: Deployment) -> str | None:
    arn = deployment.names.alerts_topic_arn
    try:
        deployment.clients.sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        if error_code(error) in {"NotFound", "NotFoundException"}:
            return None
        raise
    return arn


def _topic_owned(deployment: Deployment) -> bool:
    tags = deployment.clients.sns.list_tags_for_resource(ResourceArn=deployment.names.alerts_topic_arn)
    return {tag["Key"]: tag["Value"] for tag in tags.get("Tags", [])}.get(STACK_TAG) == deployment.names.stack


def subscriptions(deployment: Deployment) -> list[dict[str, Any]]:
    """The topic's e-mail subscriptions (SubscriptionArn is PendingConfirmation until confirmed)."""
    paginator = deployment.clients.sns.get_paginator("list_subscriptions_by_topic")
    return [
        subscription
        for page in paginator.paginate(TopicArn=deployment.names.alerts_topic_arn)
        for subscription in page["Subscriptions"]
        if subscription["Protocol"] == "email"
    ]


def find_alarms(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """The stack's alarms that exist, by name."""
    return describe_alarms(deployment, [deployment.names.alarm(key) for key in KEYS])


def describe_alarms(deployment: Deployment, names: list[str]) -> dict[str, dict[str, Any]]:
    """The metric alarms of these names that exist, by name (the worker fleet's too)."""
    found = deployment.cloudwatch.describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm"])
    return {alarm["AlarmName"]: alarm for alarm in found["MetricAlarms"]}


def find_metric_filter(deployment: Deployment) -> dict[str, Any] | None:
    """The stalled-replies metric filter as DescribeMetricFilters shows it, or None (also while the
    frontend's log group does not exist yet, as in the plan of a new stack)."""
    wanted = metric_filter(deployment.names)
    if loggroups.find(deployment, FILTERED_SERVICE) is None:
        return None
    try:
        found = deployment.logs.describe_metric_filters(
            logGroupName=wanted["logGroupName"], filterNamePrefix=wanted["filterName"]
        )["metricFilters"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    # A prefix: stack "demo"'s filter name is a prefix of stack "demo-2"'s.
    return next((f for f in found if f["filterName"] == wanted["filterName"]), None)


def _metric_filter_owned(deployment: Deployment) -> bool:
    """Filters carry no tags: ours is the one with our name on our tagged log group."""
    return loggroups.tags(deployment, FILTERED_SERVICE).get(STACK_TAG) == deployment.names.stack


def alarm_owned(deployment: Deployment, alarm: dict[str, Any]) -> bool:
    tags = deployment.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", [])
    return {tag["Key"]: tag["Value"] for tag in tags}.get(STACK_TAG) == deployment.names.stack


def remove_alarms(deployment: Deployment, alarms: dict[str, dict[str, Any]], dry_run: bool) -> list[Change]:
    """Delete these alarms (the worker fleet's too); one not tagged with the stack stays."""
    changes = []
    for name, alarm in alarms.items():
        if not alarm_owned(deployment, alarm):
            changes.append(Change("alarm", name, "skip", "not tagged with this stack"))
            continue
        if not dry_run:
            deployment.cloudwatch.delete_alarms(AlarmNames=[name])
        changes.append(Change("alarm", name, "delete"))
    return changes


def foreign(deployment: Deployment) -> list[str]:
    """The stack's topic and alarm names held by resources without its tag."""
    taken = []
    if find_topic(deployment) and not _topic_owned(deployment):
        taken.append(f"SNS topic {deployment.names.alerts_topic}")
    taken += [
        f"alarm {name}"
        for name, alarm in find_alarms(deployment).items()
        if not alarm_owned(deployment, alarm)
    ]
    return taken


def current_oldest_seconds(deployment: Deployment) -> int | None:
    alarm = find_alarms(deployment).get(deployment.names.alarm(REQUESTS_OLDEST))
    return int(alarm["Threshold"]) if alarm else None


def settle(deployment: Deployment, email: str | None, oldest_seconds: int | None) -> Alerting:
    """What was asked for, else what the stack has: alerting stays on while its topic exists."""
    on = bool(email) or (email is None and find_topic(deployment) is not None)
    if oldest_seconds and not on:
        raise DeployError(
            "--alert-oldest-seconds sets an alarm that only --alert-email makes: give --alert-email ADDR "
            "too (or leave out --alert-oldest-seconds)"
        )
    seconds = oldest_seconds or current_oldest_seconds(deployment) or DEFAULT_OLDEST_SECONDS
    return Alerting(on, email or "", seconds)


# --- up -------------------------------------------------------------------------------------------


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def normal(alarm: dict[str, Any], key: str) -> Any:
        value = alarm.get(key)
        if key == "Dimensions":
            return sorted((d["Name"], d["Value"]) for d in value or [])
        if key == "Threshold":
            return float(value) if value is not None else None
        if key in {"AlarmActions", "OKActions"}:
            return sorted(value or [])
        return value

    return all(normal(current, key) == normal(wanted, key) for key in COMPARED)


def _same_filter(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def transformations(found: dict[str, Any]) -> list[tuple]:
        return [
            (
                t.get("metricNamespace"),
                t.get("metricName"),
                t.get("metricValue"),
                t.get("unit"),
                t.get("defaultValue"),
                sorted((t.get("dimensions") or {}).items()),
            )
            for t in found.get("metricTransformations", [])
        ]

    if current.get("filterPattern") != wanted["filterPattern"]:
        return False
    return transformations(current) == transformations(wanted)


def _ensure_metric_filter(deployment: Deployment, dry_run: bool) -> Change:
    wanted = metric_filter(deployment.names)
    (transformation,) = wanted["metricTransformations"]
    detail = (
        f"counts {REPLIES_STALLED} lines in {wanted['logGroupName']} as "
        f"{transformation['metricNamespace']} {transformation['metricName']}"
    )
    found = find_metric_filter(deployment)
    if found is not None and _same_filter(found, wanted):
        return Change("metric filter", wanted["filterName"], "ok", detail)
    if not dry_run:
        # The log group exists: stack.up ensures the log groups first. A put replaces a filter of this name.
        deployment.logs.put_metric_filter(**wanted)
    return Change("metric filter", wanted["filterName"], "create" if found is None else "update", detail)


def _ensure_subscriptions(deployment: Deployment, email: str, dry_run: bool) -> list[Change]:
    names, sns = deployment.names, deployment.clients.sns
    existing = subscriptions(deployment) if find_topic(deployment) else []
    changes = []
    pending = f"pending until {email or 'the address'} confirms: open the link in AWS's e-mail"
    for subscription in existing:
        endpoint, arn = subscription["Endpoint"], subscription["SubscriptionArn"]
        row = f"{names.alerts_topic} -> {endpoint}"
        if not email or endpoint == email:
            state = "unconfirmed: open the link in AWS's e-mail" if arn == PENDING else "confirmed"
            changes.append(Change("subscription", row, "ok", state))
        elif arn == PENDING:
            # SNS gives no handle on an unconfirmed subscription; it deletes it after three days.
            changes.append(Change("subscription", row, "skip", "unconfirmed: SNS drops it after 3 days"))
        else:
            if not dry_run:
                sns.unsubscribe(SubscriptionArn=arn)
            changes.append(Change("subscription", row, "delete", f"replaced by {email}"))
    if email and email not in {subscription["Endpoint"] for subscription in existing}:
        if not dry_run:
            sns.subscribe(
                TopicArn=names.alerts_topic_arn, Protocol="email", Endpoint=email, ReturnSubscriptionArn=True
            )
        changes.append(Change("subscription", f"{names.alerts_topic} -> {email}", "create", pending))
    if not email and not existing:
        changes.append(
            Change("subscription", f"{names.alerts_topic} -> nobody", "skip", "up --alert-email ADDR")
        )
    return changes


def ensure(
    deployment: Deployment, alerting: Alerting, instance_id: str | None, dry_run: bool
) -> list[Change]:
    """The topic, its e-mail subscription and the alarms exist as defined; or none of them, if off."""
    if not alerting.on:
        return remove(deployment, dry_run=dry_run)
    names, cloudwatch = deployment.names, deployment.cloudwatch
    changes = []
    if find_topic(deployment) is None:
        if not dry_run:
            deployment.clients.sns.create_topic(Name=names.alerts_topic, Tags=tag_list(names.tags))
        changes.append(Change("topic", names.alerts_topic, "create", "the alarms notify it"))
    else:
        changes.append(Change("topic", names.alerts_topic, "ok", "the alarms notify it"))
    changes += _ensure_subscriptions(deployment, alerting.email, dry_run)
    changes.append(_ensure_metric_filter(deployment, dry_run))
    current = find_alarms(deployment)
    for name, wanted in definitions(names, alerting.oldest_seconds, instance_id).items():
        if wanted is None:
            changes.append(Change("alarm", name, "create", "status check of the instance to be launched"))
            continue
        found = current.get(name)
        if found is not None and _same(found, wanted):
            changes.append(Change("alarm", name, "ok", wanted["AlarmDescription"]))
            continue
        if not dry_run:
            # Tags count only when the alarm is made; an update keeps them.
            cloudwatch.put_metric_alarm(AlarmName=name, Tags=tag_list(names.tags), **wanted)
        action = "create" if found is None else "update"
        changes.append(Change("alarm", name, action, wanted["AlarmDescription"]))
    return changes


# --- status, down -----------------------------------------------------------------------------------


def status_rows(deployment: Deployment) -> list[tuple[str, str, str]]:
    names = deployment.names
    alarms = find_alarms(deployment)
    if find_topic(deployment) is None and not alarms:
        return [("alerts", "none", "no alarms (scripts/deploy up --alert-email ADDR)")]
    rows = [("topic", names.alerts_topic, "present" if find_topic(deployment) else "missing: run up")]
    found = subscriptions(deployment) if find_topic(deployment) else []
    for subscription in found:
        confirmed = subscription["SubscriptionArn"] != PENDING
        state = "confirmed" if confirmed else "unconfirmed: open the link in AWS's e-mail"
        rows.append(("subscription", subscription["Endpoint"], state))
    if not found:
        rows.append(("subscription", "none", "nobody is told (scripts/deploy up --alert-email ADDR)"))
    present = find_metric_filter(deployment) is not None
    rows.append(("metric filter", names.metric_filter(STALLED), "present" if present else "missing: run up"))
    for key in KEYS:
        name = names.alarm(key)
        alarm = alarms.get(name)
        rows.append(("alarm", name, alarm["StateValue"] if alarm else "missing: run up"))
    return rows


def _owned_alarms(deployment: Deployment) -> Iterable[str]:
    return [name for name, alarm in find_alarms(deployment).items() if alarm_owned(deployment, alarm)]


def leftovers(deployment: Deployment) -> list[str]:
    left = [f"alarm {name}" for name in _owned_alarms(deployment)]
    if find_metric_filter(deployment) is not None and _metric_filter_owned(deployment):
        left.append(f"metric filter {deployment.names.metric_filter(STALLED)}")
    if find_topic(deployment) and _topic_owned(deployment):
        left.append(f"topic {deployment.names.alerts_topic}")
    return left


def remove(deployment: Deployment, *, dry_run: bool = False) -> list[Change]:
    """Delete the alarms, the metric filter, then the topic's subscriptions and the topic; what is not
    tagged ours stays. The filter would go with its log group too, but alerts turned off keep the logs."""
    names, sns = deployment.names, deployment.clients.sns
    changes = remove_alarms(deployment, find_alarms(deployment), dry_run)
    changes += _remove_metric_filter(deployment, dry_run)
    if find_topic(deployment) is None:
        return changes
    if not _topic_owned(deployment):
        return [*changes, Change("topic", names.alerts_topic, "skip", "not tagged with this stack")]
    for subscription in subscriptions(deployment):
        arn = subscription["SubscriptionArn"]
        # Deleting the topic ends an unconfirmed subscription too; a confirmed one is ended first.
        if arn != PENDING and not dry_run:
            sns.unsubscribe(SubscriptionArn=arn)
        changes.append(
            Change("subscription", f"{names.alerts_topic} -> {subscription['Endpoint']}", "delete")
        )
    if not dry_run:
        sns.delete_topic(TopicArn=names.alerts_topic_arn)
    changes.append(Change("topic", names.alerts_topic, "delete"))
    return changes


def _remove_metric_filter(deployment: Deployment, dry_run: bool) -> list[Change]:
    name = deployment.names.metric_filter(STALLED)
    if find_metric_filter(deployment) is None:
        return []
    if not _metric_filter_owned(deployment):
        return [Change("metric filter", name, "skip", "its log group is not tagged with this stack")]
    if not dry_run:
        try:
            deployment.logs.delete_metric_filter(
                logGroupName=deployment.names.log_group(FILTERED_SERVICE), filterName=name
            )
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
    return [Change("metric filter", name, "delete")]
