"""The logger's last hour for the status page's charts: counted from the records it writes, with the
queue depths, written to S3; continued by a logger restarted under its name, added to by another one
running beside it, and written a last time on SIGTERM."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import pytest

from harness.fixtures import queue_url
from harness.waiting import eventually
from qcompute import contract, stats

pytestmark = pytest.mark.integration

# Every record of the test finished in one minute, five before the test began: well inside the window.
FINISHED = datetime.now(UTC)  # set again as the test begins (a long suite may run it an hour after import)


@pytest.fixture(autouse=True)
def _finished_five_minutes_ago() -> None:
    global FINISHED
    FINISHED = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(minutes=5)


def _record(status: str, total_ms: int) -> dict:
    request_id = contract.new_request_id(b"tests")
    submitted = FINISHED - timedelta(milliseconds=total_ms)
    request = {"id": request_id, "correlation_id": "c", "submitted_at": contract.format_time(submitted)}
    error = {"code": "boom", "message": "m", "field": None} if status == "error" else None
    return contract.result_record(
        request,
        numbers=[1],
        operations=["sum"],
        results={"sum": 1} if status == "done" else None,
        error=contract.CANCELLED_ERROR if status == "cancelled" else error,
        received_at=contract.format_time(submitted),
        computed_at=contract.format_time(FINISHED),
        worker="w",
        attempt=1,
        cancelled=status == "cancelled",
    )


def _publish(stack, record: dict) -> None:
    stack.clients.sns.publish(TopicArn=stack.clients.names.results_topic_arn, Message=contract.encode(record))


def _window(stack) -> dict:
    return stats.read_all(stack.clients.s3, stack.clients.names.log_bucket, datetime.now(UTC))


def _at_finished(window: dict) -> dict:
    index = window["minutes"].index(stats.minute_of(FINISHED))
    return {
        **{status: window["requests"][status][index] for status in contract.STATUSES},
        **{name: values[index] for name, values in window["latency_ms"].items()},
    }


def _counts(stack, expected: dict[str, int]):
    def check() -> dict | None:
        window = _window(stack)
        found = _at_finished(window)
        return window if {status: found[status] for status in expected} == expected else None

    return check


def test_the_last_hour_is_counted_continued_after_a_restart_and_written_on_sigterm(stack, run) -> None:
    names, sqs = stack.clients.names, stack.clients.sqs
    # Queue depths to sample: three requests waiting (no worker runs), one dead letter.
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=queue_url(stack, "requests_queue"), MessageBody=body)
    sqs.send_message(QueueUrl=queue_url(stack, "requests_dlq"), MessageBody="dead")

    first = run.logger("logger-a", LOGGER_NAME="logger-a", STATS_FLUSH_SECONDS=1)
    records = [
        _record("done", 100),
        _record("done", 200),
        _record("done", 300),
        _record("error", 1000),
        _record("cancelled", 50),
    ]
    for record in records:
        _publish(stack, record)
    window = eventually(_counts(stack, {"done": 3, "error": 1, "cancelled": 1}), what="the counts")
    found = _at_finished(window)
    # Nearest rank of 50, 100, 200, 300, 1000 ms, within the histogram's error.
    assert found["p50"] == pytest.approx(200, rel=stats.RELATIVE_ERROR)
    assert found["p90"] == pytest.approx(1000, rel=stats.RELATIVE_ERROR)
    assert found["p99"] == pytest.approx(1000, rel=stats.RELATIVE_ERROR)
    assert window["loggers"] == 1
    depths = window["depths"]
    assert max(v for v in depths["requests"]["visible"] if v is not None) == 3
    assert max(v for v in depths["requests_dlq"]["visible"] if v is not None) == 1
    # A redelivered record is not counted again.
    _publish(stack, records[0])
    first.wait_for_event("already_logged")

    assert first.stop() == 0
    assert first.events("stats_final_write")

    # Restarted under its name (a container restarted in place), writing only once a minute: what it
    # counts reaches S3 only with the last write, on SIGTERM.
    again = run.logger("logger-a-again", LOGGER_NAME="logger-a", STATS_FLUSH_SECONDS=60)
    again.wait_for_event("consumer_started")
    _publish(stack, _record("done", 400))
    again.wait_for_event("logged")
    assert _at_finished(_window(stack))["done"] == 3, "nothing written before the minute is up"
    again.send(signal.SIGTERM)
    assert again.wait(timeout=45) == 0
    assert again.events("stats_continued"), "it read its earlier window back"
    assert again.events("stats_final_write")
    window = _window(stack)
    assert window["loggers"] == 1, "the same object, continued"
    assert {s: _at_finished(window)[s] for s in contract.STATUSES} == {"done": 4, "error": 1, "cancelled": 1}

    # Two loggers at once (a rollout's overlap, or scaled): each writes its own object, the reader
    # adds them up.
    run.logger("logger-b", LOGGER_NAME="logger-b", STATS_FLUSH_SECONDS=1)
    run.logger("logger-c", LOGGER_NAME="logger-c", STATS_FLUSH_SECONDS=1)
    for _ in range(4):
        _publish(stack, _record("error", 20))
    counted = _counts(stack, {"done": 4, "error": 5, "cancelled": 1})
    # Each writes within a second of its start, whether it logged any of these or not.
    eventually(lambda: (window := counted()) and window["loggers"] == 3, what="three loggers' counts")
    keys = [
        item["Key"]
        for item in stack.clients.s3.list_objects_v2(Bucket=names.log_bucket, Prefix=contract.STATS_PREFIX)[
            "Contents"
        ]
    ]
    assert sorted(keys) == [contract.stats_key(name) for name in ("logger-a", "logger-b", "logger-c")]
