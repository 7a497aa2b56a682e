"""What operators look at: queue depths, live reply queues, whether replies flow, the latest results,
and the last hour minute by minute (the loggers' windows, qcompute.stats).

One snapshot serves every viewer of a process for a few seconds, the reply queues (their tags, and
the depths of at most REPLY_QUEUES_SHOWN of them) are read at most every half minute and the last
hour at most every TRENDS_MAX_AGE_SECONDS: however many people watch, and however many reply queues
there are, a snapshot reads the same few depths.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from frontend.replies import QUEUE_LIST_MAX_AGE_SECONDS, heartbeat_of
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

# A depth is one call per queue: the page shows this many reply queues, this process's first, then
# the stalest heartbeats (a process that died leaves its queue, with its unread replies, until a
# sweep), and counts the others. A stack has one per frontend process, so usually all of them.
REPLY_QUEUES_SHOWN = 10

_snapshot_lock = threading.Lock()
_snapshot: tuple[float, dict[str, Any]] | None = None
_trends: tuple[float, dict[str, Any] | None] | None = None
_replies: tuple[float, dict[str, Any]] | None = None


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
    try:
        queues = [
            {"role": role, "name": name, **aws.queue_depths(sqs, aws.queue_url(sqs, name))}
            for role, name in fixed
        ]
        replies = _reply_queues(submissions)
    except (BotoCoreError, ClientError) as error:
        raise Unavailable(N_("the queues cannot be read; please try again shortly")) from error
    recent, _ = submissions.history(None, RECENT_RESULTS, EVERYONE)
    return {
        "stack": names.stack,
        "health": _health(submissions, queues),
        "queues": queues,
        "reply_queues": replies["queues"],
        "reply_queues_total": replies["total"],
        "reply_queues_read_seconds_ago": replies["read_seconds_ago"],
        "recent": recent,
        "trends": _last_hour(submissions),
    }


def _reply_queues(submissions: Submissions) -> dict[str, Any]:
    """The reply queues as the page shows them: read again, tags and depths together, only when the
    last read is older than QUEUE_LIST_MAX_AGE_SECONDS. Called under the snapshot's lock."""
    global _replies
    if _replies is None or time.monotonic() - _replies[0] > QUEUE_LIST_MAX_AGE_SECONDS:
        _replies = (time.monotonic(), _read_reply_queues(submissions))
    read_at, view = _replies
    now = time.time()
    return {
        "queues": [
            {
                "name": queue["name"],
                "heartbeat_age_seconds": int(now - queue["heartbeat"]),
                "this_process": queue["this_process"],
                **queue["depths"],
            }
            for queue in view["queues"]
        ],
        "total": view["total"],
        "read_seconds_ago": round(time.monotonic() - read_at),
    }


def _read_reply_queues(submissions: Submissions) -> dict[str, Any]:
    """The stack's reply queues with their tags, then the depths of the first REPLY_QUEUES_SHOWN."""
    channel = submissions.channel
    # The channel's read, shared with its sweep and at most QUEUE_LIST_MAX_AGE_SECONDS old: the page
    # adds no tag reads (a call per queue) of its own.
    listed = channel.reply_queues()
    heartbeats = {url: heartbeat_of(tags) for url, tags in listed.items()}
    first = sorted(listed, key=lambda url: (url != channel.queue_url, heartbeats[url], url))
    queues, gone = [], 0
    for url in first[:REPLY_QUEUES_SHOWN]:
        try:
            depths = aws.queue_depths(submissions.clients.sqs, url)
        except ClientError as error:
            if aws.is_missing_queue(error):
                gone += 1  # deleted since it was listed (ListQueues lists deleted queues a while)
                continue
            raise
        queues.append(
            {
                "name": url.rsplit("/", 1)[-1],
                "heartbeat": heartbeats[url],
                "this_process": url == channel.queue_url,
                "depths": depths,
            }
        )
    return {"queues": queues, "total": len(listed) - gone}


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
