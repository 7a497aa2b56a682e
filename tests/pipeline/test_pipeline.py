"""The whole flow over real HTTP and a real emulator: frontend -> SQS -> worker -> reply + SNS -> S3."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness import client, reference
from harness.fixtures import read_log
from harness.services import ROOT, SECRET_KEY
from harness.waiting import eventually
from qcompute import contract
from qcompute.operations import OPERATIONS

pytestmark = pytest.mark.integration


def logged_record(pipeline, request_id: str) -> dict:
    """The S3 log object of a request, once the logger has written it."""
    return eventually(
        lambda: read_log(pipeline.stack, request_id), timeout=60, what=f"S3 log of {request_id}"
    )


def test_every_operation_round_trip(pipeline) -> None:
    numbers = [12, -7, 3, 3, 18, 0, 5, 10**18, -(10**18)]
    response = client.submit(pipeline.url, numbers)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["status"] == "done"
    assert document["operations"] == list(OPERATIONS)
    assert list(document["results"]) == list(OPERATIONS)
    for name in OPERATIONS:
        assert reference.matches(name, numbers, document["results"][name]), (name, document["results"][name])
    timings = document["timings"]
    assert 0 <= timings["queued_ms"] <= timings["total_ms"]
    assert timings["compute_ms"] >= 0

    # The other frontend never saw this request: it finds the result in the S3 log.
    again = client.until_done(pipeline.frontends[1].url, document["id"])
    assert again["results"] == document["results"]

    record = logged_record(pipeline, document["id"])
    assert record["request"] == {"numbers": numbers, "operations": list(OPERATIONS), "count": len(numbers)}
    assert record["results"] == document["results"]
    assert record["worker"] == "worker"
    assert set(record["timings"]) >= {"submitted_at", "received_at", "computed_at", "queued_ms", "compute_ms"}


def test_integers_may_be_sent_as_decimal_strings(pipeline) -> None:
    document = client.compute(pipeline.url, ["123456789012345678", "-5", 7], ["sum", "max"])
    assert document["results"] == {"sum": 123456789012345680, "max": 123456789012345678}


def test_concurrent_requests_across_two_frontends_each_get_their_own_answer(pipeline) -> None:
    rng = random.Random(20261126)
    inputs = [[rng.randint(-(10**12), 10**12) for _ in range(rng.randint(1, 30))] + [i] for i in range(240)]
    operations = ["sum", "count", "min", "max", "sorted"]

    def one(index: int) -> tuple[list[int], int, dict]:
        front = pipeline.frontends[index % 2].url
        response = client.submit(front, inputs[index], operations)
        document = response.json()
        if response.status_code == 202:
            document = client.until_done(front, document["id"])
        return inputs[index], response.status_code, document

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(one, range(len(inputs))))

    ids = [document["id"] for _, _, document in answers]
    assert len(set(ids)) == len(inputs), "every request gets its own id"
    for numbers, status, document in answers:
        assert status in (200, 202)
        assert document["status"] == "done"
        assert document["results"] == {
            "sum": sum(numbers),
            "count": len(numbers),
            "min": min(numbers),
            "max": max(numbers),
            "sorted": sorted(numbers),
        }, "a response carries the results of its own input, never another's"
    print(f"{sum(status == 200 for _, status, _ in answers)} of {len(answers)} answered within the wait")

    # Every request is in the S3 log exactly once, under its own key, with its own input.
    for numbers, _, document in answers:
        record = logged_record(pipeline, document["id"])
        assert record["request"]["numbers"] == numbers
    clients = pipeline.stack.clients
    keys = [
        item["Key"]
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=clients.names.log_bucket)
        for item in page.get("Contents", [])
    ]
    assert len(keys) == len(set(keys))
    assert {contract.log_key(request_id) for request_id in ids} <= set(keys)


def test_history_lists_every_operation_newest_first_in_pages(pipeline) -> None:
    submitted = [client.compute(pipeline.url, [i, i + 1], ["sum"])["id"] for i in range(3)]
    for request_id in submitted:
        logged_record(pipeline, request_id)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"before": cursor} if cursor else {}
        page = requests.get(f"{pipeline.url}/api/history", params=params, timeout=30).json()
        assert len(page["entries"]) <= 20
        seen += [entry["id"] for entry in page["entries"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True), "newest first"
    assert len(seen) == len(set(seen)), "pages do not overlap"
    assert seen[:3] == list(reversed(submitted))

    html = requests.get(f"{pipeline.url}/history", timeout=30).text
    rows = re.findall(r'<tr data-id="([^"]+)">', html)
    assert rows == seen[:20]
    assert f'href="/requests/{submitted[-1]}"' in html
    if len(seen) > 20:
        assert f'href="/history?before={seen[19]}"' in html
        older = requests.get(f"{pipeline.url}/history", params={"before": seen[19]}, timeout=30).text
        assert re.findall(r'<tr data-id="([^"]+)">', older) == seen[20:40]


def test_result_page_shows_input_results_and_timings(pipeline) -> None:
    document = client.compute(pipeline.url, [4, 8, 15, 16, 23, 42], ["sum", "mean", "mode"])
    logged_record(pipeline, document["id"])
    page = requests.get(f"{pipeline.frontends[1].url}/requests/{document['id']}", timeout=30)
    assert page.status_code == 200
    html = page.text
    assert "4, 8, 15, 16, 23, 42" in html
    assert re.search(r'id="result-sum">\s*<th scope="row">Sum</th>\s*<td class="value">108</td>', html)
    assert re.search(r'id="result-mean">.*?<td class="value">18</td>', html, re.S)
    assert re.search(r'id="result-mode">.*?<td class="value">4, 8, 15, 16, 23, 42</td>', html, re.S)
    for timing in ("queued", "computed", "total"):
        # Grouped when a fault slowed it past a second: "1,234.5 ms".
        assert re.search(rf'id="timing-{timing}">[0-9.,]+ ms<', html)

    # One "total" for the request: the API's answer (from the submitting process's reply), the result
    # page served by another process (from the log) and the history (from the log's metadata).
    total = document["timings"]["total_ms"]
    assert f'id="timing-total">{total:,} ms<' in html
    history = requests.get(f"{pipeline.url}/api/history", timeout=30).json()["entries"]
    assert next(entry for entry in history if entry["id"] == document["id"])["total_ms"] == total
    row = re.search(
        rf'<tr data-id="{document["id"]}">.*?</tr>',
        requests.get(f"{pipeline.url}/history", timeout=30).text,
        re.S,
    )
    assert f"{total:,} ms" in row.group(0)


def test_the_form_computes_and_shows_the_result(pipeline, backend) -> None:
    session = requests.Session()
    response = client.submit_form(session, pipeline.url, "3, 1 4\n1 5", ["sum", "median"])
    if backend.strict:
        # A lost ReceiveMessage answer (1% of calls fail there) leaves the request invisible for the
        # queue's visibility timeout, as on AWS: longer than the form's wait, so its page follows.
        assert response.status_code in (200, 303)
    else:
        assert response.status_code == 200, "shown at once"
    html = client.result_page(session, pipeline.url, response)
    assert re.search(r'id="result-sum">.*?<td class="value">14</td>', html, re.S)
    assert re.search(r'id="result-median">.*?<td class="value">3</td>', html, re.S)
    permalink = re.search(r'data-permalink="(/requests/[0-9a-f-]+)"', html).group(1)
    assert requests.get(pipeline.url + permalink, timeout=30).status_code in (200, 202)


def test_the_largest_allowed_request_is_computed(pipeline) -> None:
    numbers = [10**18 - i for i in range(10_000)]
    document = client.compute(pipeline.url, numbers, ["sum", "count", "max", "range"])
    assert document["results"] == {
        "sum": sum(numbers),
        "count": 10_000,
        "max": 10**18,
        "range": 9_999,
    }


def test_unknown_pending_and_expired_ids(pipeline) -> None:
    secret = SECRET_KEY.encode()
    never_seen = "0193f0c2-a1b2-7c3e-9f1a-2b3c4d5e6f70"
    assert client.result(pipeline.url, never_seen).status_code == 404
    assert client.result(pipeline.url, "not-an-id").status_code == 404
    assert requests.get(f"{pipeline.url}/requests/{never_seen}", timeout=30).status_code == 404

    # An id this stack issued whose result is not (yet) logged: pending, and the page refreshes itself.
    pending = contract.new_request_id(secret)
    response = client.result(pipeline.url, pending)
    assert (response.status_code, response.json()) == (202, {"id": pending, "status": "pending"})
    page = requests.get(f"{pipeline.url}/requests/{pending}", timeout=30)
    assert page.status_code == 202
    assert '<meta http-equiv="refresh" content="2">' in page.text
    assert "Still computing" in page.text

    # Past the pending timeout the page stops refreshing: it never waits forever.
    expired = contract.new_request_id(secret, now=time.time() - 3600)
    response = client.result(pipeline.url, expired)
    assert response.status_code == 410
    assert response.json()["status"] == "expired"
    page = requests.get(f"{pipeline.url}/requests/{expired}", timeout=30)
    assert page.status_code == 410
    assert "http-equiv" not in page.text


def test_health_and_readiness(pipeline) -> None:
    for front in pipeline.frontends:
        assert requests.get(f"{front.url}/healthz", timeout=10).json() == {"status": "ok", "version": "dev"}
        ready = requests.get(f"{front.url}/readyz", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"reply_queue": True, "replies": True, "request_queue": True}
        assert ready.json()["problems"] == []


def test_pages_carry_security_headers(pipeline) -> None:
    for path in ("/", "/history", "/api/operations"):
        headers = requests.get(f"{pipeline.url}{path}", timeout=10).headers
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_one_grep_follows_a_request_through_all_three_services(pipeline) -> None:
    document = client.compute(pipeline.url, [1, 2, 3], ["sum"])
    request_id = document["id"]
    logged_record(pipeline, request_id)
    services = {process.name: process for process in pipeline.services.started}

    def mentioned(name: str) -> list[str]:
        return [entry["event"] for entry in services[name].events() if entry.get("request_id") == request_id]

    frontend_events = mentioned("frontend-a")
    assert "submitted" in frontend_events
    assert "http_request" in frontend_events, "the access log line carries the request id"
    assert "computed" in eventually(lambda: mentioned("worker"), timeout=30)
    assert "logged" in eventually(lambda: mentioned("logger"), timeout=30)


def test_the_cli_client_prints_a_table(pipeline) -> None:
    def submit(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts/submit"), "--url", pipeline.url, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = submit("1", "2", "3", "-4", "--op", "mean", "--op", "sorted")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"request [0-9a-f-]{36}  done  4 integers  \(queued [0-9.]+ ms, computed", lines[0])
    assert lines[1:] == ["operation  result", "---------  ------", "mean       0.5", "sorted     -4, 1, 2, 3"]

    piped = submit("-", "--op", "sum", stdin="1 2\n3,4\n")
    assert piped.stdout.splitlines()[-1] == "sum        10"

    refused = submit("1", "x", "--op", "sum")
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        == "error (numbers): 'x' (number 2) is not an integer; use whole numbers like 42 or -7"
    )

    unreachable = subprocess.run(
        [sys.executable, str(ROOT / "scripts/submit"), "--url", "http://127.0.0.1:9", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unreachable.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in unreachable.stderr


def test_the_status_page_shows_queues_reply_queues_and_latest_results(pipeline) -> None:
    names = pipeline.stack.clients.names
    document = client.compute(pipeline.url, [7, 8], ["sum"])
    logged_record(pipeline, document["id"])
    sqs = pipeline.stack.clients.sqs
    dead_letters = sqs.get_queue_url(QueueName=names.requests_dlq)["QueueUrl"]
    sqs.send_message(QueueUrl=dead_letters, MessageBody="a dead letter")
    try:

        def status_with_the_dead_letter() -> dict | None:
            status = requests.get(f"{pipeline.url}/api/status", timeout=30).json()
            # The list of reply queues is read at most every 30 s, whoever is watching.
            complete = status["queues"][1]["visible"] == 1 and len(status["reply_queues"]) == 4
            return status if complete else None

        status = eventually(status_with_the_dead_letter, timeout=90, what="the dead letter in the status")
        assert status["stack"] == pipeline.stack.name
        assert [q["name"] for q in status["queues"]] == [
            names.requests_queue,
            names.requests_dlq,
            names.log_queue,
            names.log_dlq,
        ]
        for queue in status["queues"]:
            assert set(queue) == {"role", "name", "visible", "in_flight", "delayed"}
        # Two frontends with two gunicorn processes each: four live reply queues, one of them ours.
        assert len(status["reply_queues"]) == 4
        assert sum(queue["this_process"] for queue in status["reply_queues"]) == 1
        assert all(0 <= queue["heartbeat_age_seconds"] < 300 for queue in status["reply_queues"])
        assert status["recent"][0]["id"] == document["id"]
        assert status["health"]["ok"] is False
        assert "1 message(s) in requests dead letters" in status["health"]["problems"]
        assert status["health"]["replies"]["ok"] is True

        def page_with_every_reply_queue() -> str | None:
            # The other gunicorn process of that frontend may serve the page, with its own view of
            # the reply queues (read at most every 30 s).
            text = requests.get(f"{pipeline.url}/status", timeout=30).text
            return text if text.count('<tr data-queue="' + names.reply_queue_prefix) == 4 else None

        page = eventually(page_with_every_reply_queue, timeout=90, what="four reply queues on the page")
        assert re.search(
            r'<ul id="health" class="error">\s*<li>1 message\(s\) in requests dead letters', page
        )
        assert '<meta http-equiv="refresh" content="5">' in page
        assert re.search(rf'<tr data-queue="{names.requests_dlq}" class="error">.*?<td>1</td>', page, re.S)
        assert f'<tr data-id="{document["id"]}">' in page
    finally:
        sqs.purge_queue(QueueUrl=dead_letters)
