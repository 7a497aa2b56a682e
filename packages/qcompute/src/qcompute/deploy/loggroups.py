"""The stack's CloudWatch Logs groups: one per container service, where Docker's awslogs driver on the
instance sends each container's output (compose.aws.yaml). `up` makes them with a retention period
and the stack's tag, `down` deletes them; the driver never creates one (awslogs-create-group false),
so the instance role needs no logs:CreateLogGroup.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code
from qcompute.deploy.session import Deployment
from qcompute.names import LOGGED_SERVICES, STACK_TAG
from qcompute.provision import Change

DEFAULT_RETENTION_DAYS = 30
# The only periods CloudWatch Logs accepts (PutRetentionPolicy).
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


def find(deployment: Deployment, service: str) -> dict[str, Any] | None:
    """The service's log group as DescribeLogGroups shows it, or None."""
    name = deployment.names.log_group(service)
    pages = deployment.logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
    for page in pages:
        for group in page["logGroups"]:
            if group["logGroupName"] == name:
                return group
    return None


def tags(deployment: Deployment, service: str) -> dict[str, str]:
    arn = deployment.names.log_group_arn(service)
    return deployment.logs.list_tags_for_resource(resourceArn=arn).get("tags", {})


def foreign(deployment: Deployment) -> list[str]:
    """The stack's log group names held by groups that do not carry its tag."""
    return [
        deployment.names.log_group(service)
        for service in LOGGED_SERVICES
        if find(deployment, service) is not None
        and tags(deployment, service).get(STACK_TAG) != deployment.names.stack
    ]


def current_retention(deployment: Deployment) -> int | None:
    """The retention the stack's groups have now (the first that has one): what `up` keeps when
    --log-retention-days is left out."""
    for service in LOGGED_SERVICES:
        group = find(deployment, service)
        if group is not None and group.get("retentionInDays"):
            return int(group["retentionInDays"])
    return None


def ensure(deployment: Deployment, retention_days: int, dry_run: bool) -> list[Change]:
    """Each service's group exists, tagged as the stack's, with this retention."""
    logs, names = deployment.logs, deployment.names
    changes = []
    detail = f"kept {retention_days} days"
    for service in LOGGED_SERVICES:
        name = names.log_group(service)
        group = find(deployment, service)
        if group is None:
            if not dry_run:
                logs.create_log_group(logGroupName=name, tags=names.tags)
                logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
            changes.append(Change("log group", name, "create", detail))
        elif group.get("retentionInDays") != retention_days:
            if not dry_run:
                logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
            was = group.get("retentionInDays")
            changes.append(Change("log group", name, "update", f"{detail}, not {was or 'forever'}"))
        else:
            changes.append(Change("log group", name, "ok", detail))
    return changes


def status_rows(deployment: Deployment) -> list[tuple[str, str, str]]:
    rows = []
    for service in LOGGED_SERVICES:
        group = find(deployment, service)
        if group is None:
            state = "missing"
        else:
            days = group.get("retentionInDays")
            state = f"kept {days} days" if days else "kept forever: run up"
        rows.append(("log group", deployment.names.log_group(service), state))
    return rows


def leftovers(deployment: Deployment) -> list[str]:
    return [
        f"log group {deployment.names.log_group(service)}"
        for service in LOGGED_SERVICES
        if find(deployment, service) is not None
        and tags(deployment, service).get(STACK_TAG) == deployment.names.stack
    ]


def remove(deployment: Deployment) -> list[Change]:
    """Delete the stack's groups (their logs with them); one with our name but not our tag stays."""
    changes = []
    for service in LOGGED_SERVICES:
        name = deployment.names.log_group(service)
        if find(deployment, service) is None:
            continue
        if tags(deployment, service).get(STACK_TAG) != deployment.names.stack:
            changes.append(Change("log group", name, "skip", "not tagged with this stack"))
            continue
        try:
            deployment.logs.delete_log_group(logGroupName=name)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
        changes.append(Change("log group", name, "delete"))
    return changes
