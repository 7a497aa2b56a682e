"""What operators look at: queue depths, live reply queues, whether replies flow, the latest results,
and the last hour minute by minute (the loggers' windows, qcompute.stats).

One snapshot serves every viewer of a process for a few seconds, the reply queues' tags are read at
most every half minute and the last hour at most every TRENDS_MAX_AGE_SECONDS: however many people
watch, the calls to AWS per minute stay the same.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from frontend.replies import HEARTBEAT_TAG
from frontend.submissions import EVERYONE, Submissions, Unavailable
from qcompute import aws, logs, stats
from qcompute.messages import N_, Sentence

log = logs.get_logger("frontend")

RECENT_RESULTS = 10
# The status page refreshes itself every 5 s; a snapshot younger than that is served as is.
SNAPSHOT_MAX_AGE_SECONDS = 4.0

# The loggers write their window once a minute: one LIST and a few GETs (stats.read_all) every 15 s
# per watched process are plenty, about $0.90 a month for a process watched day and night.
TRENDS_MAX_AGE_SECONDS = 15.0

_snapshot_lock = threading.Lock()
_snapshot: tuple[float, dict[str, Any]] | None = None
_trends: tuple[float, dict[str, Any] | None] | None = None


def stack_status(submissions: Submissions) -> dict[str, Any]:
    """One snapshot of the stack, as GET /api/status and the /status page show it."""
    global _snapshot
    with _snapshot_lock:
        if _snapshot is None or time.monotonic() - _snapshot[0] > SNAPSHOT_MAX_AGE_SECONDS:
            _snapshot = (time.monotonic(), _read_status(submissions))
        return _snapshot[1]


def _read_status(submissions: Submissions) -> dict[str, Any]:
    clients, names = submissions.clients, submissions.clients.names
    sqs = clients.sqs
    fixed = [
        (N_("requests"), names.requests_queue),
        (N_("requests dead letters"), names.requests_dlq),
        (N_("logs"), names.log_queue),
        (N_("logs dead letters"), names.log_dlq),
    ]
    now = time.time()
    try:
        queues = [
            {"role": role, "name": name, **aws.queue_depths(sqs, aws.queue_url(sqs, name))}
            for role, name in fixed
        ]
        replies = []
        for url, tags in sorted(submissions.channel.reply_queues().items()):
            try:
                depths = aws.queue_depths(sqs, url)
            except ClientError as error:
                if aws.is_missing_queue(error):
                    continue  # deleted since it was listed (ListQueues lists deleted queues a while)
                raise
            replies.append(
                {
                    "name": url.rsplit("/", 1)[-1],
                    "heartbeat_age_seconds": int(now - float(tags.get(HEARTBEAT_TAG, "0"))),
                    "this_process": url == submissions.channel.queue_url,
                    **depths,
                }
            )
    except (BotoCoreError, ClientError) as error:
        raise Unavailable(N_("the queues cannot be read; please try again shortly")) from error
    recent, _ = submissions.history(None, RECENT_RESULTS, EVERYONE)
    return {
        "stack": names.stack,
        "health": _health(submissions, queues),
        "queues": queues,
        "reply_queues": replies,
        "recent": recent,
        "trends": _last_hour(submissions),
    }


def _last_hour(submissions: Submissions) -> dict[str, Any] | None:
    """The loggers' last hour, merged; None while it cannot be read (the rest of the page still can).
    Called under the snapshot's lock."""
    global _trends
    if _trends is None or time.monotonic() - _trends[0] > TRENDS_MAX_AGE_SECONDS:
        clients = submissions.clients
        try:
            window = stats.read_all(clients.s3, clients.names.log_bucket, datetime.now(UTC))
        except (BotoCoreError, ClientError, ValueError, TypeError, KeyError) as error:
            # AWS failing, or an object in the bucket not shaped as a window: the charts wait.
            log.warning("trends_unavailable", error=str(error))
            window = None
        _trends = (time.monotonic(), window)
    return _trends[1]


def _health(submissions: Submissions, queues: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether work flows: this process's replies, and messages waiting to be tried again (delayed
    messages are those a worker or the logger put back because AWS was failing)."""
    replies = submissions.channel.health()
    retrying = {queue["role"]: queue["delayed"] for queue in queues if queue["delayed"]}
    dead = {
        queue["role"]: queue["visible"] for queue in queues if "dead" in queue["role"] and queue["visible"]
    }
    problems = list(replies["problems"])
    problems += [
        Sentence(N_("%(count)s message(s) in %(queue)s waiting to be tried again"), count=count, queue=role)
        for role, count in retrying.items()
    ]
    problems += [
        Sentence(N_("%(count)s message(s) in %(queue)s"), count=count, queue=role)
        for role, count in dead.items()
    ]
    return {"ok": not problems, "problems": problems, "replies": replies}
