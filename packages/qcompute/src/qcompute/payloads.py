"""Claim checks: numbers and results too large for a message travel through the stack's bucket.

The message then carries only the payload's key (see contract.payload_key). The logger inlines the
payloads into the request's log record and then deletes them; a lifecycle rule on the bucket
(provision.py) removes any left by a request that never finished.
"""

from __future__ import annotations

import io
import json
from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code


def put(s3: Any, bucket: str, key: str, document: Any) -> None:
    """Store a JSON value. It is encoded straight to bytes: a million numbers make 14 MB of them, and
    a second copy as text is memory a small instance does not have."""
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def get(s3: Any, bucket: str, key: str) -> bytes | None:
    """The payload's JSON, as bytes (json.loads reads them as they are), or None if it is gone."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
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


class Joined(io.RawIOBase):
    """Several byte buffers read as one seekable stream, for an upload, without joining them into a
    copy: a log record with a million numbers and their sorted copy is 28 MB of them."""

    def __init__(self, parts: list[bytes]):
        self.parts = [memoryview(part) for part in parts if part]
        self.size = sum(len(part) for part in self.parts)
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, min(self.size, base + offset))
        return self.position

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        written, start = 0, 0
        for part in self.parts:
            end = start + len(part)
            if self.position < end and written < len(target):
                offset = self.position - start
                count = min(len(part) - offset, len(target) - written)
                target[written : written + count] = part[offset : offset + count]
                written += count
                self.position += count
            start = end
        return written
