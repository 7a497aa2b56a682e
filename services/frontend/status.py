"""What operators look at: queue depths, live reply queues and the latest results."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from frontend.replies import HEARTBEAT_TAG
from frontend.submissions import Submissions, Unavailable
from qcompute import aws
from qcompute.provision import reply_queues

DEPTH_ATTRIBUTES = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}
RECENT_RESULTS = 10


def _depths(sqs: Any, url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES.values()))
    return {key: int(attributes["Attributes"].get(name, 0)) for key, name in DEPTH_ATTRIBUTES.items()}


def stack_status(submissions: Submissions) -> dict[str, Any]:
    """One snapshot of the stack, as GET /api/status and the /status page show it."""
    clients, names = submissions.clients, submissions.clients.names
    sqs = clients.sqs
    fixed = [
        ("requests", names.requests_queue),
        ("requests dead letters", names.requests_dlq),
        ("logs", names.log_queue),
        ("logs dead letters", names.log_dlq),
    ]
    now = time.time()
    try:
        queues = [
            {"role": role, "name": name, **_depths(sqs, aws.queue_url(sqs, name))} for role, name in fixed
        ]
        replies = []
        for url, tags in sorted(reply_queues(sqs, names).items()):
            replies.append(
                {
                    "name": url.rsplit("/", 1)[-1],
                    "heartbeat_age_seconds": int(now - float(tags.get(HEARTBEAT_TAG, "0"))),
                    "this_process": url == submissions.channel.queue_url,
                    **_depths(sqs, url),
                }
            )
    except (BotoCoreError, ClientError) as error:
        raise Unavailable("the queues cannot be read; please try again shortly") from error
    recent, _ = submissions.history(None, RECENT_RESULTS)
    return {"stack": names.stack, "queues": queues, "reply_queues": replies, "recent": recent}
