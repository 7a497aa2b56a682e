"""AWS list prices for the calls the systems make, us-east-1, and how a call becomes billed requests.

Taken 2026-12-05 from the project's research note for issue 14, which quotes the list prices AWS
publishes (and which are widely quoted): re-check them against aws.amazon.com/sqs/pricing,
aws.amazon.com/sns/pricing and aws.amazon.com/s3/pricing before relying on a figure.

    SQS standard queue   $0.40 per million requests. Every API action is a request; each 64 KB chunk of
                         a payload is one request; a batch of up to 10 messages is one request (per
                         64 KB of the whole batch); an empty receive is a request like any other.
    SNS standard topic   $0.50 per million publishes, each 64 KB chunk of a payload one publish (a
                         PublishBatch as SQS's batches). Assumed, to re-check: deliveries to SQS
                         subscribers are not charged, and SNS's other API calls cost as publishes.
    S3 Standard          PUT, COPY, POST and LIST requests $0.005 per 1,000; GET, HEAD and every other
                         request $0.0004 per 1,000; DELETE free (DeleteObjects assumed free too).

Free tiers are ignored, as are data transfer and storage: these are request prices only. Calls to any
other service (SSM, STS...) are counted but not priced.
"""

from __future__ import annotations

import math

TAKEN = "2026-12-05"
SOURCE = (
    "AWS list prices, us-east-1, from the research note of issue 14; re-check at "
    "aws.amazon.com/{sqs,sns,s3}/pricing"
)
CHUNK_BYTES = 64 * 1024
HOURS_PER_MONTH = 730  # AWS's own convention for monthly estimates

SQS_PER_REQUEST = 0.40 / 1_000_000
SNS_PER_REQUEST = 0.50 / 1_000_000
S3_WRITE_PER_REQUEST = 0.005 / 1_000  # PUT, COPY, POST, LIST
S3_READ_PER_REQUEST = 0.0004 / 1_000  # GET, HEAD and the rest

# The calls billed by the 64 KB chunk of what they send (or, for ReceiveMessage, receive).
CHUNKED = {
    ("sqs", "SendMessage"),
    ("sqs", "SendMessageBatch"),
    ("sqs", "ReceiveMessage"),
    ("sns", "Publish"),
    ("sns", "PublishBatch"),
}
S3_WRITES = ("Put", "Copy", "Post", "List", "Create", "Upload", "Complete", "Restore")
S3_FREE = ("Delete", "AbortMultipartUpload")


def billed_requests(service: str, operation: str, payload_bytes: int | None) -> int:
    """How many requests AWS bills for one call: one, or one per started 64 KB of its payload."""
    if (service, operation) in CHUNKED and payload_bytes:
        return max(1, math.ceil(payload_bytes / CHUNK_BYTES))
    return 1


def price_per_request(service: str, operation: str) -> float | None:
    """Dollars per billed request; None for a service this table does not price."""
    if service == "sqs":
        return SQS_PER_REQUEST
    if service == "sns":
        return SNS_PER_REQUEST
    if service == "s3":
        if operation.startswith(S3_FREE):
            return 0.0
        return S3_WRITE_PER_REQUEST if operation.startswith(S3_WRITES) else S3_READ_PER_REQUEST
    return None


def dollars(service: str, operation: str, billed: int | float) -> float:
    """What `billed` requests of one operation cost; 0 for an unpriced service."""
    return billed * (price_per_request(service, operation) or 0.0)


TABLE = [
    ("SQS", "any request (64 KB chunk; batch of <= 10 = 1)", "$0.40 per million"),
    ("SNS", "Publish, PublishBatch (64 KB chunk); SQS deliveries free", "$0.50 per million"),
    ("S3", "PUT, COPY, POST, LIST", "$0.005 per 1,000"),
    ("S3", "GET, HEAD, other", "$0.0004 per 1,000"),
    ("S3", "DELETE", "free"),
]
