"""What a boto3 call looks like on the wire, and how AWS answers an error, per protocol.

botocore speaks three protocols to the services this project uses: SQS is JSON (`X-Amz-Target:
AmazonSQS.<Operation>`, query-compatible errors), SNS and STS are the query protocol (a form body with
`Action=`, XML errors), S3 is REST (the operation follows from method, path and query; XML errors). The
strict layer reads calls and writes errors in exactly these shapes, so botocore parses and retries them
as it would AWS's own.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")


@dataclass
class Call:
    """One AWS API call as the strict layer sees it."""

    service: str  # "sqs", "sns", "s3", "sts", ...
    operation: str  # "SendMessage", "Publish", "PutObject", ...
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, Any] = field(default_factory=dict)
    # A fault drawn for this call that strikes after the emulator has carried it out.
    after_fault: Any = None

    @property
    def api(self) -> str:
        return f"{self.service}:{self.operation}"

    @property
    def is_head(self) -> bool:
        return self.method == "HEAD"


def identify(method: str, target: str, headers: dict[str, str], body: bytes) -> Call:
    """Name the service and operation of a request, and read the parameters the rules look at."""
    parts = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    scope = _SCOPE.search(lowered.get("authorization", ""))
    service = scope.group(1) if scope else ""
    amz_target = lowered.get("x-amz-target", "")
    call = Call(service, "", method, parts.path, parts.query, lowered, body)
    if amz_target:  # the JSON-protocol services: SQS, SSM, CloudWatch Logs
        call.operation = amz_target.rsplit(".", 1)[1]
        call.params = json.loads(body or b"{}")
        if amz_target.startswith("AmazonSQS."):
            call.service = "sqs"
    elif service == "s3":
        call.operation = s3_operation(method, parts.path, parts.query, lowered)
    else:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        call.operation = form.get("Action", f"{method} {parts.path}")
        call.params = form
        call.service = call.service or "unknown"
    return call


_BUCKET_SUBRESOURCES = {
    "lifecycle": "BucketLifecycleConfiguration",
    "encryption": "BucketEncryption",
    "publicAccessBlock": "PublicAccessBlock",
    "tagging": "BucketTagging",
    "policy": "BucketPolicy",
    "location": "BucketLocation",
    "versioning": "BucketVersioning",
    "notification": "BucketNotificationConfiguration",
}


def s3_operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request (emulators are reached path-style, see aws.py)."""
    keys = set(parse_qs(query, keep_blank_values=True))
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets"
    if not key:
        sub = next((name for name in _BUCKET_SUBRESOURCES if name in keys), None)
        if method == "POST" and "delete" in keys:
            return "DeleteObjects"
        if sub is not None:
            verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method)
            return f"{verb}{_BUCKET_SUBRESOURCES[sub]}"
        return {
            "HEAD": "HeadBucket",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
            "GET": "ListObjectsV2" if "list-type" in keys else "ListObjects",
        }.get(method, f"{method}Bucket")
    if "uploadId" in keys:
        return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(
            method, "ListParts"
        )
    if method == "PUT" and "x-amz-copy-source" in headers:
        return "CopyObject"
    return {
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "PUT": "PutObject",
        "DELETE": "DeleteObject",
        "POST": "CreateMultipartUpload" if "uploads" in keys else "PostObject",
    }.get(method, method)


# --- errors, as each protocol writes them ------------------------------------------------------------


@dataclass(frozen=True)
class Error:
    """An AWS error: HTTP status, code and message; `query_code` is SQS's query-compatible code."""

    status: int
    code: str
    message: str
    query_code: str | None = None
    sender_fault: bool = True


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def error_response(call: Call, error: Error) -> Response:
    request_id = str(uuid.uuid4())
    if call.service == "sqs":
        body = json.dumps({"__type": f"com.amazonaws.sqs#{error.code}", "message": error.message}).encode()
        fault = "Sender" if error.sender_fault else "Receiver"
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-RequestId": request_id,
            "x-amzn-query-error": f"{error.query_code or error.code};{fault}",
        }
    elif call.service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{error.code}</Code><Message>{error.message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>strict-layer</HostId></Error>"
        ).encode()
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    elif call.headers.get("content-type", "").startswith("application/x-amz-json"):
        # SSM, CloudWatch Logs: JSON-protocol services read the code from __type (an XML body would
        # reach botocore as a bare status, which it does not retry as throttling).
        body = json.dumps({"__type": error.code, "message": error.message}).encode()
        headers = {"Content-Type": call.headers["content-type"], "x-amzn-RequestId": request_id}
    else:
        fault = "Sender" if error.sender_fault else "Receiver"
        body = (
            "<ErrorResponse><Error>"
            f"<Type>{fault}</Type><Code>{error.code}</Code><Message>{error.message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
    if call.is_head:
        body = b""  # a HEAD answer has no body: botocore reads the status alone
    return Response(error.status, headers, body)


def internal_error(call: Call) -> Error:
    if call.service == "s3":
        return Error(500, "InternalError", "We encountered an internal error. Please try again.", None, False)
    if call.service == "sqs":
        return Error(500, "InternalFailure", "We encountered an internal error.", "InternalError", False)
    return Error(500, "InternalError", "Internal Error", None, False)


def unavailable_error(call: Call) -> Error:
    message = "Service is unable to handle request."
    return Error(503, "ServiceUnavailable", message, "ServiceUnavailable", False)


def throttling_error(call: Call) -> Error:
    if call.service == "s3":
        return Error(503, "SlowDown", "Please reduce your request rate.", None, False)
    if call.service == "sqs":
        return Error(400, "RequestThrottled", "Request is throttled.", "RequestThrottled")
    return Error(400, "Throttling", "Rate exceeded")


def sqs_error(shape: str, message: str, query_code: str | None = None, status: int = 400) -> Error:
    """An SQS error: `shape` is the JSON `__type` name, `query_code` the legacy code botocore reports
    as Error.Code (AWS.SimpleQueueService.* for SQS's own errors)."""
    return Error(status, shape, message, query_code or shape)


def invalid_parameter(message: str) -> Error:
    return Error(400, "InvalidParameterValueException", message, "InvalidParameterValue")


def access_denied(message: str) -> Error:
    return Error(403, "AccessDeniedException", message, "AccessDenied")


def queue_name(call: Call) -> str:
    """The queue an SQS call names (by name or by URL)."""
    return call.params.get("QueueName") or str(call.params.get("QueueUrl", "")).rsplit("/", 1)[-1]


def json_response(document: dict[str, Any], headers: dict[str, str]) -> Response:
    body = json.dumps(document).encode()
    kept = {k: v for k, v in headers.items() if k.lower() not in {"content-length", "content-type"}}
    return Response(200, {**kept, "Content-Type": "application/x-amz-json-1.0"}, body)
