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
from botocore.exceptions import ClientError

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
    # The clock starts before each listing's call, so successive calls are a second apart, less however
    # long a loaded machine took to make the earlier one (its paginator, signing): never two in a row.
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    assert min(gaps, default=1) >= 0.5, gaps
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


class _BrownOut:
    """S3 in a brown-out: the shared listing fails, after `seconds` (botocore's retries) and, while
    `gate` is clear, not before it is set; a batch's own listing, under its prefix, answers."""

    def __init__(self, cancelled: list[str], seconds: float = 0.0):
        self.keys = sorted(contract.cancel_key(i) for i in cancelled)
        self.seconds, self.failing = seconds, True
        self.gate = threading.Event()
        self.gate.set()
        self.shared: list[dict] = []
        self.own: list[dict] = []

    def get_paginator(self, name: str):
        return self

    def paginate(self, **params):
        if "StartAfter" not in params:
            self.own.append(params)
            return [{"Contents": [{"Key": k} for k in self.keys if k.startswith(params["Prefix"])]}]
        self.shared.append(params)
        time.sleep(self.seconds)
        self.gate.wait(10)
        if self.failing:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "reduce your rate"}}, "ListObjectsV2")
        return [{"Contents": [{"Key": k} for k in self.keys if k > params["StartAfter"]]}]


def _ask_at_once(markers: CancelMarkers, ids: list[str], loops: int) -> list[set[str]]:
    answers: list[set[str]] = []
    start = threading.Barrier(loops)

    def ask() -> None:
        start.wait()
        answers.append(markers.among(ids))

    threads = [threading.Thread(target=ask) for _ in range(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_while_listings_fail_loops_do_not_each_list_again_and_cancels_are_still_honoured() -> None:
    cancelled, kept = contract.new_request_id(SECRET), contract.new_request_id(SECRET)
    s3 = _BrownOut([cancelled], seconds=0.2)
    now = [1000.0]
    markers = CancelMarkers(s3, "bucket", interval=1.0, monotonic=lambda: now[0])

    # Eight loops ask while S3 fails: one shared listing fails, and each batch then reads its own
    # markers (it used to be eight shared listings in turn, each taking its retries).
    assert _ask_at_once(markers, [cancelled, kept], 8) == [{cancelled}] * 8
    assert (len(s3.shared), len(s3.own)) == (1, 8)
    # Within the back-off no loop tries the shared listing again.
    now[0] += 0.9
    assert _ask_at_once(markers, [cancelled, kept], 8) == [{cancelled}] * 8
    assert (len(s3.shared), len(s3.own)) == (1, 16)

    # After it, one loop lists again (the others, not waiting for it, read their own); S3 answers,
    # and batches answer from that listing once more.
    now[0] += 0.2
    s3.failing = False
    assert _ask_at_once(markers, [cancelled, kept], 8) == [{cancelled}] * 8
    assert len(s3.shared) == 2
    own = len(s3.own)
    assert _ask_at_once(markers, [cancelled, kept], 8) == [{cancelled}] * 8
    assert (len(s3.shared), len(s3.own)) == (2, own)


def test_a_batch_does_not_wait_behind_another_loops_failing_listing() -> None:
    cancelled = contract.new_request_id(SECRET)
    s3 = _BrownOut([cancelled])
    now = [1000.0]
    markers = CancelMarkers(s3, "bucket", interval=1.0, monotonic=lambda: now[0])
    assert markers.among([cancelled]) == {cancelled}  # the listing failed; the batch listed its own

    # The back-off over, one loop tries the shared listing again, and S3 is slow to fail it.
    now[0] += 1.1
    s3.gate.clear()
    trying = threading.Thread(target=markers.among, args=([cancelled],))
    trying.start()
    try:
        while len(s3.shared) < 2:
            time.sleep(0.01)
        # Another loop's batch meanwhile: answered from its own listing, not held behind the lock.
        answers: list[set[str]] = []
        other = threading.Thread(target=lambda: answers.append(markers.among([cancelled])))
        other.start()
        other.join(timeout=2)
        assert not other.is_alive(), "a batch waited behind another loop's failing listing"
        assert answers == [{cancelled}]
    finally:
        s3.gate.set()
        trying.join()
    assert len(s3.shared) == 2
