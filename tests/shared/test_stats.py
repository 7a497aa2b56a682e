"""The last hour's per-minute window (qcompute.stats): percentiles, rolling over, merging loggers."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from qcompute import stats

NOW = datetime(2026, 3, 1, 12, 30, 20, tzinfo=UTC)


def _exact(values: list[float], p: float) -> float:
    return sorted(values)[math.ceil(p / 100 * len(values)) - 1]


@pytest.mark.parametrize("values", [list(range(1, 101)), [5.0] * 7 + [900.0] * 3, [0.5, 12_000.0]])
def test_percentiles_are_the_nearest_rank_within_the_buckets_error(values: list[float]) -> None:
    window = stats.Window("a", NOW)
    for value in values:
        window.record("done", value, NOW, NOW)
    merged = stats.merge([window.document(NOW)], NOW)
    for p in stats.PERCENTILES:
        got = merged["latency_ms"][f"p{p}"][-1]
        assert got == pytest.approx(_exact(values, p), rel=stats.RELATIVE_ERROR + 0.001), p


def test_percentiles_of_many_random_times_stay_within_the_error() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(4, 1.5) for _ in range(5000)]
    histogram: dict[int, int] = {}
    for value in values:
        histogram[stats.bucket(value)] = histogram.get(stats.bucket(value), 0) + 1
    for p in (50, 90, 99, 100):
        assert stats.percentile(histogram, p) == pytest.approx(_exact(values, p), rel=0.05)
    assert stats.percentile({}, 50) is None


def test_counts_by_status_in_the_minute_each_request_finished() -> None:
    window = stats.Window("a", NOW - timedelta(minutes=5))
    window.record("done", 10, NOW - timedelta(minutes=2), NOW)
    window.record("done", 10, NOW - timedelta(minutes=2), NOW)
    window.record("error", 10, NOW - timedelta(minutes=2), NOW)
    window.record("cancelled", None, NOW, NOW)
    window.record("done", 10, NOW + timedelta(minutes=3), NOW)  # a clock ahead: counted now
    merged = stats.merge([window.document(NOW)], NOW)
    assert len(merged["minutes"]) == stats.WINDOW_MINUTES
    assert merged["minutes"][-1] == "2026-03-01T12:30Z"
    requests = merged["requests"]
    assert requests["done"][-3:] == [2, 0, 1]
    assert requests["error"][-3:] == [1, 0, 0]
    assert requests["cancelled"][-3:] == [0, 0, 1]
    # Covered since the logger started (12:25): zeros; before, no logger ran: gaps.
    assert requests["done"][-6:-3] == [0, 0, 0]
    assert requests["done"][: stats.WINDOW_MINUTES - 6] == [None] * (stats.WINDOW_MINUTES - 6)
    # No request finished in a minute: no latency.
    assert merged["latency_ms"]["p50"][-2] is None


def test_the_window_rolls_over_after_sixty_minutes() -> None:
    start = NOW - timedelta(minutes=90)
    window = stats.Window("a", start)
    window.record("done", 10, start, start)
    window.sample({"requests": {"visible": 4, "in_flight": 1}}, start)
    assert len(window.document(start)["minutes"]) == 1
    document = window.document(NOW)
    # The 90-minute-old minute is gone; the last hour is all covered (the logger ran through it).
    assert sorted(document["minutes"]) == stats.window_minutes(NOW)
    assert sum(entry["done"] for entry in document["minutes"].values()) == 0
    window.record("done", 10, NOW - timedelta(minutes=61), NOW)  # finished over an hour ago: off the chart
    assert sum(entry["done"] for entry in window.document(NOW)["minutes"].values()) == 0
    window.record("done", 10, NOW - timedelta(minutes=59), NOW)
    merged = stats.merge([window.document(NOW)], NOW)
    assert merged["requests"]["done"][0] == 1


def test_loggers_add_up_and_depths_keep_the_highest_sample() -> None:
    one, two = stats.Window("one", NOW), stats.Window("two", NOW)
    one.record("done", 100, NOW, NOW)
    two.record("done", 200, NOW, NOW)
    two.record("error", 300, NOW, NOW)
    one.sample({q: {"visible": 3, "in_flight": 0} for q in stats.QUEUES}, NOW)
    one.sample({q: {"visible": 1, "in_flight": 2} for q in stats.QUEUES}, NOW)
    two.sample({q: {"visible": 5, "in_flight": 1} for q in stats.QUEUES}, NOW)
    merged = stats.merge([one.document(NOW), two.document(NOW)], NOW)
    assert merged["loggers"] == 2
    assert (merged["requests"]["done"][-1], merged["requests"]["error"][-1]) == (2, 1)
    assert merged["latency_ms"]["p50"][-1] == pytest.approx(200, rel=stats.RELATIVE_ERROR)
    assert merged["latency_ms"]["p99"][-1] == pytest.approx(300, rel=stats.RELATIVE_ERROR)
    assert merged["depths"]["requests"] == {
        "visible": [None] * 59 + [5],
        "in_flight": [None] * 59 + [2],
    }


def test_a_restarted_logger_goes_on_with_its_window_without_counting_twice() -> None:
    before = stats.Window("a", NOW - timedelta(minutes=3))
    before.record("done", 50, NOW - timedelta(minutes=1), NOW)
    written = before.document(NOW)
    after = stats.Window("a", NOW)
    after.record("done", 60, NOW - timedelta(minutes=1), NOW)  # counted before the read-back
    after.absorb(written)
    # The minutes the earlier run covered stay covered (zeros), the one before is a gap.
    assert stats.merge([after.document(NOW)], NOW)["requests"]["done"][-5:] == [None, 0, 0, 2, 0]
