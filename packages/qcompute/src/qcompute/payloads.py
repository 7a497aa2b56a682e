"""Claim checks: numbers and results too large for a message travel through the stack's bucket.

The message then carries only the payload's key (see contract.payload_key). The logger inlines the
payloads into the request's log record and then deletes them; a lifecycle rule on the bucket
(provision.py) removes any left by a request that never finished.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code


def put(s3: Any, bucket: str, key: str, text: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/json")


def get(s3: Any, bucket: str, key: str) -> str | None:
    """The payload's text, or None if it is gone."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except ClientError as error:
        if error_code(error) in {"NoSuchKey", "404"}:
            return None
        raise


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in {"NoSuchKey", "404", "NotFound"}:
            return False
        raise
    return True


def delete(s3: Any, bucket: str, keys: list[str]) -> None:
    if keys:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True})
