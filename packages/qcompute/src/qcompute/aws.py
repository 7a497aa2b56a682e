"""AWS clients, built once per process.

`AWS_ENDPOINT_URL` (read by botocore itself) is the only switch between real AWS and an emulator; the
code below stays plain boto3.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore import exceptions as botocore_errors
from botocore.config import Config
from botocore.exceptions import ClientError

from qcompute.names import StackNames
from qcompute.settings import StackSettings

# Longer than the longest SQS long poll (20 s), so a quiet queue never looks like a dead connection.
READ_TIMEOUT_SECONDS = 30
# botocore's "standard" retry mode backs off exponentially with jitter on throttling, 5xx and
# connection errors; callers only handle what is left after these attempts.
RETRY_ATTEMPTS = 5


def client_config(pool_size: int = 10, *, emulator: bool | None = None) -> Config:
    if emulator is None:
        emulator = bool(os.environ.get("AWS_ENDPOINT_URL"))
    return Config(
        retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
        connect_timeout=5,
        read_timeout=READ_TIMEOUT_SECONDS,
        max_pool_connections=pool_size,
        # Emulators are reached by a plain host name; virtual-hosted buckets would need DNS for them.
        s3={"addressing_style": "path"} if emulator else {},
    )


@dataclass(frozen=True)
class Clients:
    """The clients a process uses and the names of its stack's resources."""

    names: StackNames
    sqs: Any
    sns: Any
    s3: Any
    ssm: Any  # the frontend reads the accounts of an `accounts` stack


def connect(
    stack: StackSettings, *, pool_size: int = 10, endpoint_url: str | None = None, session: Any = None
) -> Clients:
    """Build the clients and learn the account id, which bucket names and ARNs need.

    The services leave `endpoint_url` unset (botocore reads AWS_ENDPOINT_URL); tools and tests that
    talk to more than one emulator at a time pass it. The operator tools' --local passes the session
    of qcompute.local, whose clients reach the local emulator whatever the environment says.
    """
    emulator = bool(endpoint_url or session or os.environ.get("AWS_ENDPOINT_URL"))
    if session is None:
        session = boto3.session.Session(region_name=stack.region)
    config = client_config(pool_size, emulator=emulator)

    def client(service: str) -> Any:
        return session.client(service, config=config, endpoint_url=endpoint_url)

    account_id = client("sts").get_caller_identity()["Account"]
    return Clients(
        names=StackNames(stack.stack, account_id, stack.region),
        sqs=client("sqs"),
        sns=client("sns"),
        s3=client("s3"),
        ssm=client("ssm"),
    )


def error_code(error: ClientError) -> str:
    """The short error code, whichever protocol (query or JSON) the service answered in."""
    details = error.response.get("Error", {})
    return details.get("QueryErrorCode") or details.get("Code", "")


def is_missing_queue(error: ClientError) -> bool:
    return error_code(error) in {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


# botocore's own list of throttling codes (botocore/retries/standard.py), which it retries too.
THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
}
# S3 answers 409 ConditionalRequestConflict to a conditional write racing another one ("you should
# retry the upload"), which botocore does not retry by itself.
TRANSIENT_CODES = {
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "ConditionalRequestConflict",
}


def is_transient(error: Exception) -> bool:
    """Whether AWS failed rather than the request: a 5xx, throttling, a dropped or timed-out connection,
    or credentials that could not be fetched (the instance metadata service). Such a failure that
    outlived botocore's retries is an outage: worth waiting out, whatever its length."""
    if isinstance(
        error,
        botocore_errors.ConnectionError
        | botocore_errors.HTTPClientError
        | botocore_errors.NoCredentialsError
        | botocore_errors.CredentialRetrievalError,
    ):
        return True
    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    codes = {error.response.get("Error", {}).get("Code", ""), error_code(error)}
    return status >= 500 or status == 429 or bool(codes & (THROTTLING_CODES | TRANSIENT_CODES))


def is_access_denied(error: Exception) -> bool:
    return isinstance(error, ClientError) and error_code(error) in {
        "AccessDenied",
        "AccessDeniedException",
    }


def queue_url(sqs: Any, name: str) -> str:
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


# A queue's depths as the status page and the logger's last hour name them (SQS's approximate counts).
DEPTH_ATTRIBUTES = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


def queue_depths(sqs: Any, url: str) -> dict[str, int]:
    """One GetQueueAttributes call: the messages visible, in flight and delayed."""
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES.values()))
    return {key: int(found["Attributes"].get(name, 0)) for key, name in DEPTH_ATTRIBUTES.items()}


def batches(entries: list[dict], body_key: str, max_bytes: int = 262_144) -> Iterator[list[dict]]:
    """Split entries for a batch API: at most 10 per call and `max_bytes` of bodies in all."""
    batch: list[dict] = []
    size = 0
    for entry in entries:
        entry_size = len(entry[body_key].encode())
        if batch and (len(batch) == 10 or size + entry_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


STARTUP_HINT = (
    "check AWS_REGION, the credentials (the instance role on EC2) and AWS_ENDPOINT_URL for an "
    "emulator, and that the stack exists (scripts/provision)"
)
