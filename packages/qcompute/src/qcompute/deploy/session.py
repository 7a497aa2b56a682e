"""The clients a deployment uses, and every failure turned into one sentence that says what to do."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from qcompute import aws
from qcompute.names import StackNames
from qcompute.settings import StackSettings

# The ARNs in names.py and iam.py are those of the standard partition.
PARTITION = "aws"


class DeployError(Exception):
    """A failure the person deploying can act on; the message names what to do."""


@dataclass(frozen=True)
class Deployment:
    """The stack's messaging and storage clients (shared with provisioning) plus EC2, IAM, SSM,
    CloudWatch Logs, CloudWatch (alarms) and Auto Scaling (the worker fleet)."""

    clients: aws.Clients
    ec2: Any
    iam: Any
    ssm: Any
    logs: Any
    cloudwatch: Any
    autoscaling: Any

    @property
    def names(self) -> StackNames:
        return self.clients.names


def uses_emulator() -> bool:
    """Whether botocore talks to an emulator (AWS_ENDPOINT_URL or a per-service variant is set)."""
    return any(key.startswith("AWS_ENDPOINT_URL") and value for key, value in os.environ.items())


def check_region(region: str) -> str:
    """Refuse a region name AWS does not have, before any request goes to a host that does not exist."""
    known = boto3.session.Session().get_available_regions("ec2", partition_name=PARTITION)
    if region not in known:
        raise DeployError(
            f"unknown region {region!r}: pass --region with an AWS region such as us-east-1 or eu-west-1 "
            "(`aws ec2 describe-regions` lists those of your account)"
        )
    return region


def connect(stack: str, region: str, *, endpoint_url: str | None = None) -> Deployment:
    """Build the clients; this is where missing or rejected credentials show up (through STS)."""
    check_region(region)
    clients = aws.connect(StackSettings(stack, region), endpoint_url=endpoint_url)
    session = boto3.session.Session(region_name=region)
    config = aws.client_config(emulator=bool(endpoint_url) or uses_emulator())

    def client(service: str) -> Any:
        return session.client(service, config=config, endpoint_url=endpoint_url)

    return Deployment(
        clients=clients,
        ec2=client("ec2"),
        iam=client("iam"),
        ssm=client("ssm"),
        logs=client("logs"),
        cloudwatch=client("cloudwatch"),
        autoscaling=client("autoscaling"),
    )


QUOTA_CODES = {
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "LimitExceeded",
    "TooManyBuckets",
    "SecurityGroupLimitExceeded",
    "RulesPerSecurityGroupLimitExceeded",
    "ParameterLimitExceeded",
    "AddressLimitExceeded",
}
REJECTED_CREDENTIAL_CODES = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "RequestExpired",
}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403", "Forbidden"}
TAKEN_CODES = {
    "BucketAlreadyExists",
    "EntityAlreadyExists",
    "InvalidGroup.Duplicate",
    "ParameterAlreadyExists",
}
CAPACITY_CODES = {"InsufficientInstanceCapacity", "Unsupported", "InvalidInstanceType"}


def explain(error: Exception, region: str = "") -> str:
    """One line for the person deploying: what failed and what to do about it."""
    if isinstance(error, DeployError):
        return str(error)
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials found: configure them for the account to deploy to "
            "(`aws configure`, `aws sso login` or AWS_PROFILE); they stay on this machine"
        )
    if isinstance(error, NoRegionError):
        return "no region: pass --region (or set AWS_REGION)"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS ({error}): check the network connection and --region"
    if isinstance(error, ClientError):
        return _explain_client_error(error, region)
    if isinstance(error, BotoCoreError):
        return f"AWS request failed: {error}"
    return f"{type(error).__name__}: {error}"


def _explain_client_error(error: ClientError, region: str) -> str:
    code = aws.error_code(error)
    message = error.response.get("Error", {}).get("Message", "") or code
    operation = error.operation_name
    if code in QUOTA_CODES:
        return (
            f"an AWS quota was hit ({code}: {message}): delete what uses it (e.g. other instances in "
            f"{region or 'the region'}) or ask for more in the Service Quotas console, then run again"
        )
    if code in REJECTED_CREDENTIAL_CODES:
        return (
            f"AWS rejected the credentials ({code}): refresh them (`aws sso login` or `aws configure`) "
            "and check this machine's clock"
        )
    if code == "AuthFailure":
        return (
            f"AWS refused the credentials in {region or 'this region'} (AuthFailure): if it is an opt-in "
            "region, enable it for the account or choose another --region; otherwise refresh them"
        )
    if code == "OptInRequired":
        return (
            f"{region or 'the region'} is not enabled for this account: enable it or choose another --region"
        )
    if code in DENIED_CODES:
        return (
            f"the credentials may not call {operation} ({code}): deploying needs EC2, IAM, SSM, SQS, SNS, "
            "S3, CloudWatch Logs, CloudWatch and Auto Scaling permissions, e.g. an administrator role in a "
            "sandbox account"
        )
    if code in TAKEN_CODES:
        return f"a name the stack needs is taken ({code}: {message}): choose another --stack name"
    if code in CAPACITY_CODES:
        return (
            f"EC2 cannot start that instance type here ({code}: {message}): try another "
            "--instance-type or --region, or try again later"
        )
    return f"{operation} failed: {code}: {message}"
