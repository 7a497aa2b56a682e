"""Cost per request: the price table, 64 KB chunks and batches, the recorder's counts, the cost tables."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.client
import pytest
from botocore.stub import Stubber

from bench import calls, cpu, prices, report
from bench.cpu import TICKS, seconds
from bench.load import Load, run
from bench.plan import FULL, SMOKE
from bench.results import IdleRow, LoadRow, Run

KIB = 1024


def test_a_message_is_billed_by_the_started_64_kb_chunk():
    assert prices.billed_requests("sqs", "SendMessage", 10) == 1
    assert prices.billed_requests("sqs", "SendMessage", 64 * KIB) == 1
    assert prices.billed_requests("sqs", "SendMessage", 64 * KIB + 1) == 2
    assert prices.billed_requests("sns", "Publish", 256 * KIB) == 4
    # A batch is one request per 64 KB of the whole batch: ten 1 KB messages are one request.
    assert prices.billed_requests("sqs", "SendMessageBatch", 10 * KIB) == 1
    assert prices.billed_requests("sns", "PublishBatch", 10 * 20 * KIB) == 4
    # An empty receive is billed like any other.
    assert prices.billed_requests("sqs", "ReceiveMessage", 0) == 1
    assert prices.billed_requests("sqs", "ReceiveMessage", None) == 1
    # Not billed by the chunk: an object is one PUT whatever its size.
    assert prices.billed_requests("s3", "PutObject", 10 * 1024 * KIB) == 1


def test_list_prices_per_request():
    assert prices.dollars("sqs", "ReceiveMessage", 1_000_000) == pytest.approx(0.40)
    assert prices.dollars("sns", "Publish", 1_000_000) == pytest.approx(0.50)
    assert prices.dollars("s3", "PutObject", 1000) == pytest.approx(0.005)
    assert prices.dollars("s3", "ListObjectsV2", 1000) == pytest.approx(0.005)
    assert prices.dollars("s3", "GetObject", 1000) == pytest.approx(0.0004)
    assert prices.dollars("s3", "HeadObject", 1000) == pytest.approx(0.0004)
    assert prices.dollars("s3", "DeleteObject", 1000) == 0.0
    assert prices.price_per_request("ssm", "GetParameter") is None
    assert prices.dollars("ssm", "GetParameter", 1000) == 0.0


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    """The recorder installed in this process for one test, then removed."""
    module = calls.recorder()
    monkeypatch.setattr(
        botocore.client.BaseClient, "_make_api_call", botocore.client.BaseClient._make_api_call
    )
    monkeypatch.setattr(module, "_path", [])
    return module


def stubbed(service: str):
    client = boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )  # fmt: skip
    return client, Stubber(client)


def test_the_recorder_counts_calls_by_process_service_and_api_with_their_payloads(recorder, tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    url = "https://sqs.us-east-1.amazonaws.com/1/q"
    sqs, stub = stubbed("sqs")
    body = "x" * (40 * KIB)
    # Two workers: one role. Each sends a batch of two 40 KB messages (80 KB: two chunks) and
    # receives one 100 KB message (two chunks), then finds the queue empty (one request).
    for process in ("worker-0", "worker-1"):
        recorder.install(str(folder / f"{process}.jsonl"))
        entries = [{"Id": str(n), "MessageBody": body} for n in range(2)]
        stub.add_response("send_message_batch", {"Successful": [], "Failed": []})
        stub.add_response(
            "receive_message", {"Messages": [{"Body": "y" * (100 * KIB), "ReceiptHandle": "r"}]}
        )
        stub.add_response("receive_message", {})
        with stub:
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
            sqs.receive_message(QueueUrl=url)
            sqs.receive_message(QueueUrl=url)
    recorder.install(str(folder / "client.jsonl"))
    s3, s3_stub = stubbed("s3")
    s3_stub.add_client_error("put_object", "AccessDenied")
    with s3_stub, pytest.raises(botocore.exceptions.ClientError):
        s3.put_object(Bucket="b", Key="k", Body=b"z")

    lines = [json.loads(line) for line in (folder / "worker-0.jsonl").read_text().splitlines()]
    assert [(e["operation"], e.get("bytes")) for e in lines] == [
        ("SendMessageBatch", 80 * KIB),
        ("ReceiveMessage", 100 * KIB),
        ("ReceiveMessage", 0),
    ]
    assert lines[0]["params"] == {"QueueUrl": url}, "the resource, as the least-privilege test reads it"
    counted = calls.count(calls.read(folder), 0, 2**40)
    assert counted == [
        {"process": "client", "service": "s3", "operation": "PutObject", "calls": 1, "billed": 1},
        {"process": "worker", "service": "sqs", "operation": "ReceiveMessage", "calls": 4, "billed": 6},
        {"process": "worker", "service": "sqs", "operation": "SendMessageBatch", "calls": 2, "billed": 4},
    ], "a refused call is recorded too"
    assert calls.dollars(counted) == pytest.approx(10 * prices.SQS_PER_REQUEST + prices.S3_WRITE_PER_REQUEST)


def test_only_calls_that_started_inside_the_window_count(tmp_path: Path):
    folder = tmp_path / "calls"
    folder.mkdir()
    lines = [
        {"service": "sqs", "operation": "ReceiveMessage", "t": 99.0},
        {"service": "sqs", "operation": "ReceiveMessage", "t": 100.0},
        {"service": "sns", "operation": "Publish", "t": 150.0, "bytes": 70 * KIB},
        {"service": "sqs", "operation": "ReceiveMessage", "t": 200.5},
    ]
    (folder / "logger.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines) + '{"service": "s'
    )
    assert calls.count(calls.read(folder), 100.0, 200.0) == [
        {"process": "logger", "service": "sns", "operation": "Publish", "calls": 1, "billed": 2},
        {"process": "logger", "service": "sqs", "operation": "ReceiveMessage", "calls": 1, "billed": 1},
    ]
    assert calls.in_window(folder, None) == []
    assert calls.in_window(tmp_path / "none", (0, 1)) == []


class FakeMeter:
    def __init__(self, seen: list[int]):
        self.seen, self.events = seen, []
        self.window, self.cpu_seconds = None, {}

    def begin(self):
        self.events.append(("begin", len(self.seen)))

    def end(self):
        self.events.append(("end", len(self.seen)))
        self.window, self.cpu_seconds = (1.0, 2.0), {"worker": 0.5}


def test_the_meter_watches_the_measured_requests_and_not_the_warm_ups():
    seen: list[int] = []

    def factory():
        return seen.append

    meter = FakeMeter(seen)
    measured = run(factory, Load(clients=3, requests=12, warmup_per_client=2, time_cap=30), meter)
    assert meter.events == [("begin", 6), ("end", 18)], "begins after the 6 warm-ups, ends after all"
    assert measured.window == (1.0, 2.0)
    assert measured.cpu_seconds == {"worker": 0.5}


def test_cpu_is_user_and_system_time_of_the_process_and_its_descendants(tmp_path: Path):
    def process(pid: int, parent: int, ticks: tuple[int, int, int, int]) -> None:
        (tmp_path / str(pid)).mkdir()
        rest = " ".join(["0"] * 9)  # pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt, cmajflt
        times = " ".join(str(t) for t in ticks)
        (tmp_path / str(pid) / "stat").write_text(
            f"{pid} (gunicorn: a) b) S {parent} {rest} {times} 20 0 1\n"
        )

    process(10, 1, (TICKS, TICKS, 0, 0))  # 2 s of its own
    process(11, 10, (3 * TICKS, 0, 0, TICKS))  # 3 s, and 1 s of a child it waited for
    process(20, 1, (100 * TICKS, 0, 0, 0))
    assert seconds(10, tmp_path) == pytest.approx(6.0)
    assert seconds(10, tmp_path, descendants=False) == pytest.approx(2.0)
    assert seconds(99, tmp_path) == 0.0


def row(system: str, completed: int, aws_calls: list[dict], cpu: dict[str, float], **extra) -> LoadRow:
    counts = {"sent": completed, "completed": completed, "errors": 0, "seconds": 10.0}
    latencies = {"p50_ms": 10.0, "p95_ms": 20.0, "p99_ms": 30.0}
    return LoadRow("moto", system, 1, 4, **counts, **latencies, aws_calls=aws_calls, cpu_seconds=cpu, **extra)


def made(process: str, service: str, operation: str, count: int, billed: int | None = None) -> dict:
    return {
        "process": process,
        "service": service,
        "operation": operation,
        "calls": count,
        "billed": billed or count,
    }


PROJECT = row(
    "project",
    100,
    [
        made("frontend", "sqs", "SendMessage", 100),
        made("worker", "sqs", "ReceiveMessage", 50),
        made("worker", "sns", "PublishBatch", 20),
        made("logger", "s3", "PutObject", 100),
        made("frontend", "ssm", "GetParameter", 1),
    ],
    {"frontend": 0.2, "worker": 0.5, "logger": 0.1},
)


def test_the_cost_table_gives_calls_per_request_by_service_and_dollars_per_million():
    table = report.cost_table([PROJECT, row("raw", 10, [], {})])
    assert len(table) == 1, "a row without counted calls has no cost"
    cells = dict(zip(report.COST_HEADERS, table[0], strict=True))
    assert cells["AWS calls/req"] == "2.71"
    assert (cells["sqs calls/req"], cells["sns calls/req"], cells["s3 calls/req"]) == ("1.50", "0.20", "1.00")
    # Per request: 1.5 x $0.40 + 0.2 x $0.50 per million, and 1 PUT at $0.005 per thousand.
    assert cells["$ per million req"] == "$5.70"
    assert cells["unpriced"] == "ssm"


def test_where_the_money_goes_puts_the_dearest_call_first_with_its_share():
    again = row("project", 100, [made("logger", "s3", "PutObject", 100)], {})
    table = report.where_table([PROJECT, again])
    first = dict(zip(report.WHERE_HEADERS, table[0], strict=True))
    assert (first["process"], first["API"], first["calls/req"]) == ("logger", "s3 PutObject", "1.00")
    # 200 PUTs ($1e-3) of $1.0e-3 + 150 SQS ($6e-5) + 20 SNS ($1e-5) over the two phases.
    assert first["share"] == "93%"
    assert [r[4] for r in table] == [
        "s3 PutObject", "sqs SendMessage", "sqs ReceiveMessage", "sns PublishBatch", "ssm GetParameter"
    ]  # fmt: skip


def test_idle_calls_are_scaled_to_an_hour_and_priced_over_a_month():
    quiet = IdleRow(
        "moto", "seed", 1, 10.0, [made("seed-worker", "sqs", "ReceiveMessage", 20)], {"seed-worker": 5}
    )
    cells = dict(zip(report.IDLE_HEADERS, report.idle_table([quiet])[0], strict=True))
    assert cells["calls/hour"] == "7,200"
    # 7,200 requests an hour at $0.40 per million, for 730 hours.
    assert cells["$ per month"] == "$2.10"
    assert cells["CPU % of a core"] == "50.0"
    assert cells["most calls"] == "seed-worker sqs ReceiveMessage (100%)"


def test_cpu_per_request_per_service():
    headers = report.cpu_headers([PROJECT])
    assert headers == [
        "backend",
        "system",
        "workers",
        "clients",
        *(f"{p} ms/req" for p in ("frontend", "worker", "logger")),
        "total ms/req",
    ]
    cells = dict(zip(headers, report.cpu_table([PROJECT])[0], strict=True))
    assert (cells["frontend ms/req"], cells["worker ms/req"], cells["total ms/req"]) == (
        "2.00",
        "5.00",
        "8.00",
    )


def test_the_emulators_cpu_is_shown_beside_the_systems_own_not_in_it():
    measured = dataclasses.replace(PROJECT, cpu_seconds={**PROJECT.cpu_seconds, "emulator": 1.5})
    headers = report.cpu_headers([measured])
    assert headers[-2:] == ["total ms/req", "emulator ms/req"]
    cells = dict(zip(headers, report.cpu_table([measured])[0], strict=True))
    assert (cells["total ms/req"], cells["emulator ms/req"]) == ("8.00", "15.00")
    quiet = IdleRow("moto", "seed", 1, 10.0, [], {"seed-worker": 5, "emulator": 3})
    assert (
        dict(zip(report.IDLE_HEADERS, report.idle_table([quiet])[0], strict=True))["CPU % of a core"]
        == "50.0"
    )


def test_every_window_measures_the_emulator_the_run_talks_to(monkeypatch: pytest.MonkeyPatch):
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        monkeypatch.setitem(cpu.EMULATOR, "pid", burner.pid)
        meter = cpu.Meter({}, include_self=False)
        meter.begin()
        time.sleep(0.5)
        meter.end()
    finally:
        burner.kill()
        burner.wait()
    assert meter.cpu_seconds["emulator"] > 0


def test_the_rendered_report_and_json_keep_cost_idle_and_cpu():
    quiet = IdleRow("moto", "project", 1, 3.0, [made("worker", "sqs", "ReceiveMessage", 1)], {"worker": 0.01})
    run_ = Run(backends=["moto"], smoke=True, load=[PROJECT], idle=[quiet])
    rendered = report.render(run_)
    for shown in ("$ per million req", "$5.70", "calls/hour", "worker ms/req"):
        assert shown in rendered
    again = Run.from_json(json.loads(json.dumps(run_.to_json())))
    assert again.load == run_.load
    assert again.idle == run_.idle
    assert Run.from_json({"backends": [], "smoke": False}).idle == [], "results from before idle rows"


def test_every_plan_watches_idle_and_the_smoke_test_only_briefly():
    assert FULL.idle_seconds >= 30
    assert 0 < SMOKE.idle_seconds <= 3
    assert FULL.idle().settle > SMOKE.idle().settle
