"""The strict layer answers as AWS does: its limits, its error shapes (as botocore parses and retries
them), its eventual consistency and its outages. The project's own behaviour through the layer is
tested beside each service."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from harness.backend import REGION
from qcompute.aws import error_code

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _queues_usable_at_once(strict) -> None:
    """These tests use a queue right after creating it; the one-second rule has its own test."""
    strict.configure(new_queue_settle_seconds=0)


def _client(layer, service: str, attempts: int = 1):
    """A client through the layer; one attempt by default, so the layer's answer is seen as it is."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts}, s3={"addressing_style": "path"}
    )
    return boto3.client(
        service,
        endpoint_url=layer.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


def _code(call) -> str:
    """The error code botocore reports (for SQS, the legacy query code AWS sends in a header)."""
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def test_sqs_limits_are_refused_as_aws_refuses_them(strict, unique) -> None:
    sqs = _client(strict, "sqs")
    url = sqs.create_queue(QueueName=unique("limits"))["QueueUrl"]
    # The codes as AWS answers them (recorded against AWS in LocalStack's snapshot tests).
    assert _code(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21)) == "InvalidParameterValue"
    assert _code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x" * (1024 * 1024 + 1))) == (
        "InvalidParameterValue"
    )
    entries = [{"Id": str(i), "MessageBody": "x" * 200_000} for i in range(6)]  # 1.2 MB in all
    assert _code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=entries)) == (
        "AWS.SimpleQueueService.BatchRequestTooLong"
    )
    eleven = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    assert _code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=eleven)) == (
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    )
    sqs.send_message(QueueUrl=url, MessageBody="x" * (1024 * 1024 - 100))  # within the limit
    faults = {(f["api"], f["reason"].split(" ")[0]) for f in strict.faults()}
    assert ("sqs:ReceiveMessage", "wait") in faults, "every refusal is logged"


def test_sns_keeps_its_256_kib_limit(strict, unique) -> None:
    sns = _client(strict, "sns")
    topic = sns.create_topic(Name=unique("topic"))["TopicArn"]
    assert _code(lambda: sns.publish(TopicArn=topic, Message="x" * 262_145)) == "InvalidParameter"
    entries = [{"Id": str(i), "Message": "x" * 60_000} for i in range(5)]  # 300 kB in all
    code = _code(lambda: sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries))
    assert code == "BatchRequestTooLong"
    sns.publish(TopicArn=topic, Message="x" * 262_000)


def test_tag_calls_are_throttled_at_five_per_second_and_botocore_retries_them(strict, unique) -> None:
    sqs = _client(strict, "sqs")
    url = sqs.create_queue(QueueName=unique("tags"))["QueueUrl"]
    # Calls as fast as they go until five are throttled: a slow machine makes more calls, not fewer throttles.
    codes: list[str] = []
    started = time.monotonic()
    while codes.count("RequestThrottled") < 5 and len(codes) < 100:
        try:
            sqs.list_queue_tags(QueueUrl=url)
            codes.append("ok")
        except ClientError as error:
            codes.append(error_code(error))
    elapsed = time.monotonic() - started
    assert codes.count("RequestThrottled") == 5, codes
    assert set(codes) == {"ok", "RequestThrottled"}, codes
    # A bucket of five, refilled at five a second: no more got through than that allows.
    assert codes.count("ok") <= 5 + 5 * elapsed + 1, (codes, elapsed)
    # With the retries the services use, every call gets through, at about five per second.
    patient = _client(strict, "sqs", attempts=6)
    started = time.monotonic()
    for _ in range(15):
        patient.tag_queue(QueueUrl=url, Tags={"n": "1"})
    assert time.monotonic() - started >= 1.5


def test_list_queues_caps_at_1000_without_max_results_and_paginates_with_it(strict, unique) -> None:
    strict.configure(list_queues_cap=3)  # AWS's cap is 1,000; the rule is the same with fewer queues
    sqs = _client(strict, "sqs")
    prefix = unique("many")
    urls = sorted(sqs.create_queue(QueueName=f"{prefix}-{n}")["QueueUrl"] for n in range(7))
    assert len(sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]) == 3
    pages = sqs.get_paginator("list_queues").paginate(
        QueueNamePrefix=prefix, PaginationConfig={"PageSize": 2}
    )
    assert sorted(url for page in pages for url in page["QueueUrls"]) == urls


def test_a_new_queue_is_usable_only_after_a_second(strict, unique) -> None:
    strict.configure(new_queue_settle_seconds=1)
    sqs = _client(strict, "sqs")
    url = sqs.create_queue(QueueName=unique("new"))["QueueUrl"]
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="too soon")
    time.sleep(1.1)
    sqs.send_message(QueueUrl=url, MessageBody="in time")


def test_a_deleted_queue_is_still_listed_for_a_while_and_its_name_is_not_free(strict, unique) -> None:
    sqs = _client(strict, "sqs")
    name = unique("gone")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)
    assert sqs.list_queues(QueueNamePrefix=name)["QueueUrls"] == [url]
    with pytest.raises(ClientError) as raised:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    assert error_code(raised.value) == "QueueDoesNotExist"
    with pytest.raises(sqs.exceptions.QueueDeletedRecently) as raised:
        sqs.create_queue(QueueName=name)
    assert error_code(raised.value) == "QueueDeletedRecently"


def test_an_outage_answers_503_until_it_ends_and_s3_slowdown_is_retried(strict, unique) -> None:
    s3 = _client(strict, "s3", attempts=6)
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    strict.outage("s3", 60)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 5, "botocore retried it"
    strict.end_outages()
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    strict.configure(rates={"s3:GetObject": 1.0}, fault_kinds=["throttle"], after_share=0)
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_code(raised.value) == "SlowDown"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 5


def test_a_reset_outage_drops_connections(strict, unique) -> None:
    sns = _client(strict, "sns")
    strict.outage("sns", 60, kind="reset")
    with pytest.raises(ConnectionClosedError):
        sns.list_topics()
    _client(strict, "sqs").list_queues(QueueNamePrefix=unique("other"))  # SQS is unaffected


def test_random_faults_strike_at_their_rate_before_or_after_the_call(strict, unique) -> None:
    sqs = _client(strict, "sqs")
    url = sqs.create_queue(QueueName=unique("faults"))["QueueUrl"]
    strict.configure(fault_rate=0.3, fault_kinds=["internal"], after_share=0.5, seed=7)
    statuses = []
    for n in range(200):
        try:
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        except ClientError as error:
            statuses.append(error.response["ResponseMetadata"]["HTTPStatusCode"])
    failed = len(statuses)
    assert set(statuses) == {500}
    strict.configure(fault_rate=0.0)
    assert 35 <= failed <= 85, failed
    faults = strict.faults()
    assert len(faults) == failed
    after = sum(f["phase"] == "after" for f in faults)
    # A fault after the call means the message was sent although the client saw an error.
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert int(depth["Attributes"]["ApproximateNumberOfMessages"]) == 200 - failed + after


def test_a_json_protocol_service_is_throttled_in_json_and_botocore_retries_it(strict) -> None:
    strict.configure(
        rates={"ssm:GetParametersByPath": 1.0}, fault_kinds=["throttle"], after_share=0, max_random_faults=1
    )
    with pytest.raises(ClientError) as raised:
        _client(strict, "ssm").get_parameters_by_path(Path="/strict-layer-test")
    assert error_code(raised.value) == "Throttling", "the code botocore read: it retries it"
    strict.configure(max_random_faults=1)
    assert (
        _client(strict, "ssm", attempts=3).get_parameters_by_path(Path="/strict-layer-test")["Parameters"]
        == []
    )
    assert len(strict.faults()) == 2
