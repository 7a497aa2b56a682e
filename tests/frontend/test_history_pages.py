"""History pages at scale (frontend/history.py): the newest keys before any cursor, exactly those a
full listing would give, in a bounded number of LIST calls however many keys the bucket holds."""

from __future__ import annotations

import bisect
import random
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontend.history import MAX_CALLS_PER_PAGE, NewestFirst, first_key_at, key_time
from qcompute import contract

DAY = 86_400.0
NOW = time.time()


def _key(prefix: str, seconds: float) -> str:
    millis = int(seconds * 1000)
    value = (millis << 80) | (0x7 << 76) | (secrets.randbits(12) << 64) | (0b10 << 62) | secrets.randbits(62)
    request_id = str(uuid.UUID(int=value))
    return f"{prefix}{contract.request_time(request_id):%Y/%m/%d}/{request_id}.json"


class ListingS3:
    """S3's ListObjectsV2 as AWS documents it (keys in UTF-8 binary order, StartAfter exclusive, at
    most MaxKeys, IsTruncated), over keys held in memory: the pure logic's test double."""

    def __init__(self, keys: list[str]):
        self.keys = sorted(keys)
        self.calls = 0

    def list_objects_v2(self, *, Bucket: str, Prefix: str, MaxKeys: int, StartAfter: str = "") -> dict:
        self.calls += 1
        start = bisect.bisect_right(self.keys, max(StartAfter, Prefix)) if StartAfter else 0
        start = max(start, bisect.bisect_left(self.keys, Prefix))
        matching = []
        for key in self.keys[start:]:
            if not key.startswith(Prefix):
                break
            matching.append(key)
            if len(matching) > MaxKeys:
                break
        page = matching[:MaxKeys]
        return {"Contents": [{"Key": key} for key in page], "IsTruncated": len(matching) > MaxKeys}


def _expected(keys: list[str], prefix: str, end: str | None, count: int) -> list[str]:
    below = sorted(key for key in keys if key.startswith(prefix) and (end is None or key < end))
    return below[::-1][:count]


def test_a_key_sorts_after_the_first_key_of_its_moment_and_before_the_next_moments() -> None:
    key = _key("logs/", NOW)
    moment = key_time(key)
    assert moment is not None
    assert first_key_at("logs/", moment) < key < first_key_at("logs/", moment + 0.001)
    assert key_time("logs/readme.txt") is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bursts=st.lists(
        st.tuples(
            st.one_of(st.floats(0, 60), st.floats(0, 400 * DAY)),  # how long ago: close bursts, or not
            st.floats(min_value=0.001, max_value=5 * DAY),  # over how long
            st.integers(min_value=0, max_value=1_200),  # how many keys: some bursts outgrow a listing
        ),
        max_size=5,
    ),
    count=st.integers(min_value=1, max_value=101),  # a page of up to 100, and one to tell if more follow
    cursor_at=st.floats(min_value=0, max_value=1),
    listing_keys=st.sampled_from([250, 1000]),  # S3's 1,000, and less so that bursts overflow a listing
)
def test_every_page_is_what_a_full_listing_gives(bursts, count, cursor_at, listing_keys) -> None:
    random.seed(0)
    keys = [_key("logs/", NOW - ago - random.random() * span) for ago, span, n in bursts for _ in range(n)]
    keys += [_key("users/al/", NOW - 5), "logs/readme.txt"]  # another prefix, a stray object
    s3 = ListingS3(keys)
    newest = NewestFirst(s3, "bucket", listing_keys=listing_keys)
    logs = sorted(key for key in keys if key_time(key) is not None and key.startswith("logs/"))
    end = logs[int(cursor_at * (len(logs) - 1))] if logs and cursor_at < 1 else None
    for _ in range(2):  # the second time from what the first remembered
        s3.calls = 0
        assert newest.before("logs/", end, count) == _expected(logs, "logs/", end, count)
        assert s3.calls <= MAX_CALLS_PER_PAGE


def test_walking_the_whole_history_page_by_page_loses_and_repeats_nothing() -> None:
    keys = [_key("users/al/", NOW - random.random() * 30 * DAY) for _ in range(700)]
    newest = NewestFirst(ListingS3(keys), "bucket", listing_keys=50)
    seen: list[str] = []
    end = None
    while page := newest.before("users/al/", end, 21):
        seen += page[:20]
        if len(page) <= 20:
            break
        end = page[19]
    assert seen == sorted(keys, reverse=True)


def test_at_a_steady_rate_a_page_costs_one_or_two_listings_at_any_depth() -> None:
    # 20,000 keys over ten days, 2,000 of them today, pages of 21, listings of 100: at a tenth of the
    # issue's scale (1,000,000 keys, listings of 1,000), the same ratios.
    keys = [_key("logs/", NOW - DAY * (1 + 9 * random.random())) for _ in range(18_000)]
    keys += [_key("logs/", NOW - DAY * random.random()) for _ in range(2_000)]
    s3 = ListingS3(keys)
    newest = NewestFirst(s3, "bucket", listing_keys=100)
    ordered = sorted(keys, reverse=True)
    first = newest.before("logs/", None, 21)
    assert first == ordered[:21]
    assert s3.calls <= 1 + 3, "the oldest key once, then a window or two as the rate is learnt"
    costs = []
    for depth in (0, 100, 1_000, 5_000, 15_000, 0):
        s3.calls = 0
        end = ordered[depth - 1] if depth else None
        assert newest.before("logs/", end, 21) == ordered[depth : depth + 21]
        costs.append(s3.calls)
    assert max(costs) <= 2, costs


def test_after_a_quiet_spell_the_first_page_still_costs_one_listing() -> None:
    # A steady day until two hours ago, then nothing: a window reaching back from now would be empty.
    keys = [_key("logs/", NOW - 7_200 - DAY * random.random()) for _ in range(5_000)]
    s3 = ListingS3(keys)
    newest = NewestFirst(s3, "bucket", listing_keys=1000)
    assert newest.before("logs/", None, 21) == sorted(keys, reverse=True)[:21]
    costs = []
    for _ in range(5):
        s3.calls = 0
        assert newest.before("logs/", None, 21) == sorted(keys, reverse=True)[:21]
        costs.append(s3.calls)
    assert costs == [1] * 5
    # A key written since is on the next first page, with no further listing.
    keys.append(_key("logs/", time.time()))
    s3.keys = sorted(keys)
    s3.calls = 0
    assert newest.before("logs/", None, 21) == sorted(keys, reverse=True)[:21]
    assert s3.calls == 1


def test_two_processes_serving_a_busy_log_list_once_a_page_once_warm() -> None:
    # The benchmark's shape at a tenth of its size: 100,000 records, a tenth of them in the last
    # three hours, the newest five minutes old; two frontend processes take turns.
    keys = [_key("logs/", random.uniform(NOW - 9 * DAY, NOW - 3 * 3600)) for _ in range(90_000)]
    keys += [_key("logs/", random.uniform(NOW - 3 * 3600, NOW - 300)) for _ in range(10_000)]
    s3 = ListingS3(keys)
    processes = [NewestFirst(s3, "bucket"), NewestFirst(s3, "bucket")]
    newest = sorted(keys, reverse=True)
    costs = []
    for turn in range(20):
        s3.calls = 0
        assert processes[turn % 2].before("logs/", None, 21) == newest[:21]
        costs.append(s3.calls)
    assert costs[2:] == [1] * 18, costs


@pytest.mark.parametrize("burst", [5_000, 100_000])
def test_a_burst_after_a_quiet_week_is_found_not_walked(burst: int) -> None:
    # A load test a week ago, five requests since: the page needs 16 keys from the top of the burst.
    keys = [_key("logs/", NOW - 7 * DAY - random.random() * 3600) for _ in range(burst)]
    keys += [_key("logs/", NOW - random.random() * 3600) for _ in range(5)]
    s3 = ListingS3(keys)
    newest = NewestFirst(s3, "bucket")
    assert newest.before("logs/", None, 21) == sorted(keys, reverse=True)[:21]
    assert s3.calls <= 30, "a search, not a walk through the burst (100 keys a listing: 50-1,000 calls)"
    s3.calls = 0
    assert newest.before("logs/", None, 21) == sorted(keys, reverse=True)[:21]
    assert s3.calls == 1


def test_keys_from_a_frontend_whose_clock_runs_an_hour_ahead() -> None:
    keys = [_key("logs/", NOW - random.random() * 10_800) for _ in range(20_000)]
    keys += [_key("logs/", NOW + 3_600 - random.random() * 10_800) for _ in range(20_000)]
    s3 = ListingS3(keys)
    newest = NewestFirst(s3, "bucket")
    for _ in range(3):
        assert newest.before("logs/", None, 21) == sorted(keys, reverse=True)[:21]
    assert s3.calls <= 40
    s3.calls = 0
    assert newest.before("logs/", None, 21) == sorted(keys, reverse=True)[:21]
    assert s3.calls == 1


def test_an_empty_or_sparse_history_is_crossed_in_a_few_listings() -> None:
    s3 = ListingS3([])
    assert NewestFirst(s3, "bucket").before("users/new/", None, 21) == []
    assert s3.calls == 1
    keys = [_key("users/rare/", NOW - ago * DAY) for ago in (0.5, 40, 300, 2_000)]
    s3 = ListingS3(keys)
    assert NewestFirst(s3, "bucket").before("users/rare/", None, 21) == sorted(keys, reverse=True)
    assert s3.calls <= 8


@pytest.mark.integration
def test_on_the_emulator_pages_match_and_listings_stay_few(backend, unique) -> None:
    """The same through a real S3 API (StartAfter, MaxKeys and IsTruncated as the emulator implements
    them): 1,200 keys over six days."""
    s3 = boto3.client("s3")
    bucket = unique("history")
    s3.create_bucket(Bucket=bucket)
    keys = [_key("logs/", NOW - DAY * 6 * random.random()) for _ in range(1_200)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b""), keys))
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append("list"))
    newest = NewestFirst(s3, bucket, listing_keys=60)
    ordered = sorted(keys, reverse=True)
    assert newest.before("logs/", None, 21) == ordered[:21]
    for depth in (20, 200, 1_000, 1_190):
        calls.clear()
        assert newest.before("logs/", ordered[depth - 1], 21) == ordered[depth : depth + 21]
        assert len(calls) <= 2, (depth, len(calls))
