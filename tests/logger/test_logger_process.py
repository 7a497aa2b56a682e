"""The logger as a real process: one S3 object per request whatever SNS delivers, poison to the DLQ."""

from __future__ import annotations

import json

import pytest

from harness.fixtures import drain, log_keys, queue_depth, queue_url, read_log
from harness.waiting import eventually
from qcompute import contract

pytestmark = pytest.mark.integration


def _record(request_id: str, worker: str, total: int) -> dict:
    request = {"id": request_id, "correlation_id": "c", "submitted_at": contract.utc_now()}
    return contract.result_record(
        request,
        numbers=[total],
        operations=["sum"],
        results={"sum": total},
        received_at=contract.utc_now(),
        computed_at=contract.utc_now(),
        worker=worker,
        attempt=1,
    )


def _publish(stack, record: dict) -> None:
    stack.clients.sns.publish(TopicArn=stack.clients.names.results_topic_arn, Message=contract.encode(record))


def test_each_record_is_written_once_under_its_request_id(stack, run) -> None:
    logger = run.logger()
    request_id = contract.new_request_id(b"tests")
    _publish(stack, _record(request_id, "first", 1))
    eventually(lambda: read_log(stack, request_id), what="the first write")
    # A redelivery (a worker that died after publishing, say) leaves the first write as it was.
    _publish(stack, _record(request_id, "second", 1))
    logger.wait_for_event("already_logged")
    assert log_keys(stack) == [contract.log_key(request_id)]
    assert read_log(stack, request_id)["worker"] == "first"
    assert queue_depth(stack, queue_url(stack, "log_queue")) == 0


def test_a_write_whose_answer_was_lost_is_logged_once_not_taken_for_a_redelivery(stack, run, strict) -> None:
    # S3 writes the first record's object, then its answer is lost (a 500 after the write): the SDK's
    # retry is refused with 412, as a redelivery would be.
    faults = {"fault_kinds": ["internal"], "after_share": 1.0, "max_random_faults": 1}
    strict.configure(rates={"s3:PutObject": 1.0}, **faults)
    logger = run.logger(AWS_ENDPOINT_URL=strict.endpoint, STATS_FLUSH_SECONDS=60)
    sent = [contract.new_request_id(b"tests") for _ in range(10)]
    for n, request_id in enumerate(sent):
        _publish(stack, _record(request_id, "w", n))
    eventually(lambda: len(log_keys(stack)) == len(sent), what="every record in S3")
    lost = [f for f in strict.faults() if f["api"] == "s3:PutObject" and f["phase"] == "after"]
    assert len(lost) == 1, "one answer was lost after its write"
    # Each record is counted as logged exactly once (the status page's counts follow these lines).
    logged = logger.wait_for_event("logged", count=len(sent))
    assert sorted(line["request_id"] for line in logged) == sorted(sent)
    assert logger.events("already_logged") == []


def test_records_are_stored_byte_for_byte_with_huge_integers(stack, run) -> None:
    contract.allow_big_integers()
    run.logger()
    request_id = contract.new_request_id(b"tests")
    huge = 7**20_000  # about 17,000 digits
    _publish(stack, _record(request_id, "w", huge))
    record = eventually(lambda: read_log(stack, request_id), what="the record")
    assert record["results"]["sum"] == huge


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ('{"v": 1, "id": "nope"}', "invalid request id"),
        (json.dumps({"v": 1, "id": "01a21935-bcd5-7b15-98ad-2910291e68d4", "correlation_id": "c"}), "status"),
    ],
)
def test_a_poison_record_goes_to_the_dead_letter_queue(stack, run, body: str, reason: str) -> None:
    logger = run.logger()
    stack.clients.sns.publish(TopicArn=stack.clients.names.results_topic_arn, Message=body)
    dead = drain(stack, queue_url(stack, "log_dlq"), until=1)
    assert dead[0]["Body"] == body
    assert reason in dead[0]["MessageAttributes"]["poison_reason"]["StringValue"]
    assert log_keys(stack) == []
    request_id = contract.new_request_id(b"tests")
    _publish(stack, _record(request_id, "w", 3))
    eventually(lambda: read_log(stack, request_id), what="a good record after the poison one")
    assert logger.process.poll() is None
