"""boto3 clients and scratch resources for the baselines, on the emulator under test."""

from __future__ import annotations

import secrets
from typing import Any

import boto3

from bench.workload import REGION
from harness.backend import Backend
from qcompute.aws import client_config


def client(backend: Backend, service: str, pool_size: int = 10) -> Any:
    """A client of its own session (boto3 sessions are not shared between threads).

    Credentials and region come from the SDK's standard variables, as for the services.
    """
    session = boto3.session.Session(region_name=REGION)
    return session.client(
        service,
        endpoint_url=backend.endpoint,
        config=client_config(pool_size, emulator=True),
    )


def scratch_name(prefix: str) -> str:
    """A name no other run or phase uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def delete_queues(sqs: Any, prefix: str) -> None:
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)


def delete_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)
