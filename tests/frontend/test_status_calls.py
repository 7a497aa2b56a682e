"""The status page's AWS calls per refresh do not grow with the number of reply queues: their depths
are read with their tags, at most every half minute, and for at most REPLY_QUEUES_SHOWN of them."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from frontend import status
from frontend.app import create_app
from frontend.replies import HEARTBEAT_TAG, QUEUE_LIST_MAX_AGE_SECONDS
from harness import openapi
from harness.services import SECRET_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def app(stack, monkeypatch):
    # Every GET makes a snapshot of its own, and no view of another test's stack lingers.
    monkeypatch.setattr(status, "SNAPSHOT_MAX_AGE_SECONDS", 0)
    # The last hour's charts are read once: a re-read 15 s on would add S3 calls to one refresh's count.
    monkeypatch.setattr(status, "TRENDS_MAX_AGE_SECONDS", float("inf"))
    for cache in ("_snapshot", "_replies", "_trends"):
        monkeypatch.setattr(status, cache, None, raising=False)
    app = create_app({"STACK_NAME": stack.name, "AWS_REGION": "us-east-1", "SECRET_KEY": SECRET_KEY})
    yield app
    app.extensions["replies"].close()


def _add_reply_queues(stack, count: int, first: int) -> None:
    """Queues of other frontend processes, their heartbeats 20 s apart (the oldest last made), all
    younger than the idle period: no sweep deletes them."""
    names, sqs = stack.clients.names, stack.clients.sqs
    for n in range(first, first + count):
        sqs.create_queue(
            QueueName=f"{names.reply_queue_prefix}host-{n}-{n:04x}",
            tags={**names.tags, HEARTBEAT_TAG: str(int(time.time()) - 20 * n)},
        )


def _refresh(app) -> tuple[dict, Counter]:
    """GET /api/status once; the AWS calls it made (the channel's own threads share the clients)."""
    clients = app.extensions["submissions"].clients
    made: Counter = Counter()
    me = threading.get_ident()

    def count(model, **_) -> None:
        if threading.get_ident() == me:
            made[model.name] += 1

    for client in (clients.sqs, clients.s3):
        client.meta.events.register("before-call", count, unique_id="status-calls")
    try:
        response = app.test_client().get("/api/status")
    finally:
        for client in (clients.sqs, clients.s3):
            client.meta.events.unregister("before-call", unique_id="status-calls")
    assert response.status_code == 200, response.get_data(as_text=True)
    openapi.check("GET", "/api/status", response.status_code, response.mimetype, response.get_data())
    return response.get_json(), made


def _without_ages(queues: list[dict]) -> list[dict]:
    return [{key: value for key, value in q.items() if key != "heartbeat_age_seconds"} for q in queues]


def test_a_refresh_makes_as_many_calls_with_30_reply_queues_as_with_3(stack, app) -> None:
    channel = app.extensions["replies"]
    _add_reply_queues(stack, 2, first=1)  # with the app's own: 3
    channel.reply_queues(max_age=0)  # as the sweep at start may not have seen them
    three, three_listed = _refresh(app)
    three_again, three_calls = _refresh(app)

    _add_reply_queues(stack, 27, first=3)  # 30
    channel.reply_queues(max_age=0)
    status._replies = None  # the reply queues read again at once, not in 30 s
    thirty, thirty_listed = _refresh(app)
    thirty_again, thirty_calls = _refresh(app)

    # Between two reads of the reply queues, a refresh reads only the stack's four fixed queues.
    assert thirty_calls == three_calls, (three_calls, thirty_calls)
    assert thirty_calls["GetQueueAttributes"] == 4
    # A read of the reply queues lists them with their tags, and reads at most ten depths.
    assert three_listed["GetQueueAttributes"] == 4 + 3
    assert thirty_listed["GetQueueAttributes"] == 4 + status.REPLY_QUEUES_SHOWN
    # The channel had just read them with their tags (as its sweep does): the page reads them no more.
    assert thirty_listed["ListQueues"] == three_listed["ListQueues"] == 0
    assert thirty_listed["ListQueueTags"] == three_listed["ListQueueTags"] == 0

    # What the page says is true: how many there are, this process's first, then the stalest.
    assert (three["reply_queues_total"], len(three["reply_queues"])) == (3, 3)
    # The same queues; their ages are counted at each request, so a second may have passed between.
    assert _without_ages(three_again["reply_queues"]) == _without_ages(three["reply_queues"])
    for first, again in zip(three["reply_queues"], three_again["reply_queues"], strict=True):
        assert 0 <= again["heartbeat_age_seconds"] - first["heartbeat_age_seconds"] <= 2
    assert (thirty["reply_queues_total"], len(thirty_again["reply_queues"])) == (
        30,
        status.REPLY_QUEUES_SHOWN,
    )
    shown = thirty["reply_queues"]
    assert [queue["this_process"] for queue in shown] == [True] + [False] * (len(shown) - 1)
    ages = [queue["heartbeat_age_seconds"] for queue in shown[1:]]
    assert ages == sorted(ages, reverse=True)
    assert ages[0] >= 20 * 29
    assert [queue["name"].rsplit("-", 2)[-2] for queue in shown[1:]] == [str(n) for n in range(29, 20, -1)]

    page = app.test_client().get("/status").get_data(as_text=True)
    assert (
        page.count('<tr data-queue="' + stack.clients.names.reply_queue_prefix) == status.REPLY_QUEUES_SHOWN
    )
    assert f"{status.REPLY_QUEUES_SHOWN} of 30 reply queues shown" in page


def _age_reply_queue_reads(app, seconds: float) -> None:
    """As if `seconds` had passed since the reply queues were read, by the channel and by the page."""
    channel = app.extensions["replies"]
    with channel._queue_list_lock:
        read_at, listed = channel._queue_list
        channel._queue_list = (read_at - seconds, listed)
    if status._replies is not None:
        status._replies = (status._replies[0] - seconds, status._replies[1])


@pytest.mark.parametrize("total", [3, 30])
def test_refreshes_read_the_reply_queues_tags_only_through_the_channels_30_s_read(stack, app, total) -> None:
    channel = app.extensions["replies"]
    _add_reply_queues(stack, total - 1, first=1)  # with the app's own
    channel.reply_queues(max_age=0)  # the channel's own read, as its sweep makes: one ListQueueTags a queue
    status._replies = None  # the page's view is due at once

    # A minute of refreshes, one every 5 s; half-way, both reads are over 30 s old.
    made: Counter = Counter()
    for tick in range(12):
        if tick == 6:
            _age_reply_queue_reads(app, QUEUE_LIST_MAX_AGE_SECONDS + 1)
        made += _refresh(app)[1]

    # At 0 s the channel's own read serves the page; at 30 s, that read lapsed, the page's refresh has
    # the channel read again: the tags once per 30 s, and no read of the page's own (it was twice).
    assert made["ListQueueTags"] == total
    assert made["ListQueues"] == 1
