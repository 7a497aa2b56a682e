"""The worker's cancel check: at most one LIST of the markers per CANCEL_CHECK_SECONDS per process,
whatever the number of batches, and still every cancel stored longer than that before a worker takes
the request is honoured."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest

from harness.fixtures import drain, own_reply_queue, send_request
from harness.services import ROOT
from qcompute import contract
from worker.cancels import CancelMarkers

pytestmark = pytest.mark.integration

SECRET = b"tests"


def _store_cancel(stack, request_id: str) -> None:
    stack.clients.s3.put_object(
        Bucket=stack.clients.names.log_bucket, Key=contract.cancel_key(request_id), Body=b"{}"
    )


def _reply(stack, replies: str, request_id: str) -> dict:
    reply = json.loads(drain(stack, replies, until=1)[0]["Body"])
    assert reply["id"] == request_id
    return reply


def test_a_worker_lists_the_markers_once_a_second_not_once_a_batch_and_honours_earlier_cancels(
    stack, run, tmp_path: Path
) -> None:
    calls = tmp_path / "worker.jsonl"
    hook = ROOT / "tests/harness/record_calls"
    run.worker(PYTHONPATH=f"{ROOT / 'services'}:{hook}", RECORD_AWS_CALLS=calls, CANCEL_CHECK_SECONDS=1)
    replies = own_reply_queue(stack)

    # One request at a time: each is a batch of its own, which the worker used to LIST for.
    sequential = 60
    started = time.time()
    for i in range(sequential):
        request_id = send_request(stack, [i, 1], ["sum"], reply_to=replies)
        assert _reply(stack, replies, request_id)["results"] == {"sum": i + 1}
    elapsed = time.time() - started

    # A cancel stored longer than CANCEL_CHECK_SECONDS before the request is taken is honoured,
    # though the worker listed the markers just before it was stored.
    cancelled = contract.new_request_id(SECRET)
    _store_cancel(stack, cancelled)
    time.sleep(1.5)
    send_request(stack, [1, 2], ["sum"], reply_to=replies, request_id=cancelled)
    assert _reply(stack, replies, cancelled)["status"] == "cancelled"

    # A request older than the listing's window (a backlog, a redrive) is checked on its own.
    old = contract.new_request_id(SECRET, now=time.time() - 7200)
    _store_cancel(stack, old)
    send_request(stack, [3, 4], ["sum"], reply_to=replies, request_id=old)
    assert _reply(stack, replies, old)["status"] == "cancelled"
    old_kept = contract.new_request_id(SECRET, now=time.time() - 7200)
    send_request(stack, [3, 4], ["sum"], reply_to=replies, request_id=old_kept)
    assert _reply(stack, replies, old_kept)["results"] == {"sum": 7}

    lists = [
        call
        for call in map(json.loads, calls.read_text().splitlines())
        if call["operation"] == "ListObjectsV2"
        and call["params"]["Prefix"].startswith(contract.CANCEL_PREFIX)
    ]
    during = [call["t"] for call in lists if call["t"] <= started + elapsed]
    assert len(during) <= elapsed + 2, f"{len(during)} listings for {sequential} batches in {elapsed:.1f} s"
    assert len(during) < sequential / 2, f"{len(during)} listings for {sequential} batches"
    # The clock starts before each listing's call: successive calls are a second apart, give or take.
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    assert min(gaps, default=1) >= 0.9, gaps
    # The two old requests were each looked up apart, under their own keys.
    apart = [call["params"]["Prefix"] for call in lists if call["params"]["Prefix"] != contract.CANCEL_PREFIX]
    assert apart == [contract.cancel_key(old), contract.cancel_key(old_kept)]


class _SlowListings:
    """The stack's S3 client, counting the listings and making each take a while."""

    def __init__(self, s3):
        self.s3, self.listings, self.started = s3, [], []

    def get_paginator(self, name: str):
        paginator = self.s3.get_paginator(name)
        outer = self

        class Paginator:
            def paginate(self, **params):
                outer.started.append(params)
                time.sleep(0.3)
                pages = list(paginator.paginate(**params))
                outer.listings.append([item["Key"] for page in pages for item in page.get("Contents", [])])
                return pages

        return Paginator()


def test_loops_share_one_listing_and_it_reads_only_the_markers_of_recent_requests(stack) -> None:
    names = stack.clients.names
    recent = [contract.new_request_id(SECRET) for _ in range(3)]
    long_ago = contract.new_request_id(SECRET, now=time.time() - 7200)
    for request_id in [*recent, long_ago]:
        _store_cancel(stack, request_id)
    s3 = _SlowListings(stack.clients.s3)
    markers = CancelMarkers(s3, names.log_bucket, interval=60)

    # Eight loops ask at once: one listing answers them all.
    answers: list[set[str]] = []
    threads = [threading.Thread(target=lambda: answers.append(markers.among(recent[:2]))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [set(recent[:2])] * 8
    assert len(s3.listings) == 1
    # The markers of requests that can no longer be queued are not read (they may linger for days).
    assert sorted(s3.listings[0]) == sorted(contract.cancel_key(i) for i in recent)

    # Within the interval a batch answers from what the listing saw, and lists nothing.
    fresh = contract.new_request_id(SECRET)
    assert markers.among([recent[2], fresh]) == {recent[2]}
    assert len(s3.listings) == 1
    # An older request is looked up apart, and honoured.
    assert markers.among([long_ago, fresh]) == {long_ago}
    assert len(s3.listings) == 2
    assert s3.started[-1]["Prefix"] == contract.cancel_key(long_ago)


def test_a_listing_older_than_the_interval_is_read_again(stack) -> None:
    names = stack.clients.names
    now = [1000.0]
    s3 = _SlowListings(stack.clients.s3)
    markers = CancelMarkers(s3, names.log_bucket, interval=1.0, monotonic=lambda: now[0])
    request_id = contract.new_request_id(SECRET)
    assert markers.among([request_id]) == set()
    _store_cancel(stack, request_id)
    now[0] += 0.5
    assert markers.among([request_id]) == set(), "within the interval: the listing before the cancel"
    now[0] += 0.6
    assert markers.among([request_id]) == {request_id}
    assert len(s3.listings) == 2
