"""Large requests: a million integers through the API, big results, file uploads, several cores.

These run with the services' default limits (1,000,000 integers per request).
"""

from __future__ import annotations

import random
import re
import time
from fractions import Fraction

import pytest
import requests

from harness import client
from harness.fixtures import log_keys, read_log
from harness.waiting import eventually
from qcompute.operations import OPERATIONS

pytestmark = pytest.mark.integration


def test_a_million_integers_end_to_end(stack, run) -> None:
    run.worker()
    run.logger()
    front = run.frontend(REPLY_WAIT_SECONDS=60)
    rng = random.Random(1_000_000)
    numbers = [rng.randint(-(10**18), 10**18) for _ in range(1_000_000)]
    started = time.monotonic()
    document = client.compute(front.url, numbers)
    print(f"a million integers, every operation: {time.monotonic() - started:.1f} s end to end")

    results, errors = document["results"], document["errors"]
    ordered = sorted(numbers)
    assert document["count"] == 1_000_000
    assert results["sum"] == sum(numbers)
    assert (results["min"], results["max"], results["count"]) == (ordered[0], ordered[-1], 1_000_000)
    assert results["sorted"] == ordered
    assert results["median"] == (ordered[499_999] + ordered[500_000]) / 2
    assert results["mean"] == float(Fraction(sum(numbers), len(numbers)))
    # The population variance by its definition, in exact integers: sum((n*x - S)^2) / n^3.
    n, total = len(numbers), sum(numbers)
    variance = Fraction(sum((n * x - total) ** 2 for x in numbers), n**3)
    assert results["variance"] == float(variance)
    assert results["stdev"] == pytest.approx(float(variance) ** 0.5, rel=1e-15)
    assert set(results) | set(errors) == set(OPERATIONS)
    assert {errors["product"]["code"], errors["lcm"]["code"]} == {"result_too_large"}, "refused, not computed"

    # The log holds the whole request and result; the payloads that carried them are gone.
    record = eventually(lambda: read_log(stack, document["id"]), timeout=300, what="the log record")
    assert record["request"]["numbers"] == numbers
    assert record["results"]["sorted"] == ordered
    eventually(lambda: log_keys(stack, "payloads/") == [], timeout=120, what="payload cleanup")


def test_a_large_result_comes_back_whole_through_s3(stack, run) -> None:
    worker = run.worker()
    run.logger()
    front = run.frontend()
    numbers = list(range(30_000, 0, -1))  # sorted, they are about 170 KB; with the input, too big
    document = client.compute(front.url, numbers, ["sorted", "sum"])
    assert document["results"] == {"sorted": sorted(numbers), "sum": sum(numbers)}
    # Either gunicorn process answers: from its own replies or, once logged, from S3.
    again = client.until_done(front.url, document["id"])
    assert again["results"]["sorted"] == sorted(numbers)
    assert worker.events("computed")[0]["count"] == 30_000
    eventually(lambda: log_keys(stack, "payloads/") == [], timeout=120, what="payload cleanup")
    assert read_log(stack, document["id"])["results"]["sorted"][:3] == [1, 2, 3]


def test_the_page_takes_a_text_or_csv_file(stack, run) -> None:
    run.worker()
    run.logger()
    front = run.frontend()
    session = requests.Session()
    rows = "\n".join(f"{i},{-i}" for i in range(1, 25_001))  # a two-column CSV: 50,000 integers
    csv = ("numbers.csv", ("\ufeff" + rows).encode(), "text/csv")  # with a spreadsheet's byte-order mark
    response = client.submit_form(session, front.url, "", ["count", "sum", "max"], upload=csv)
    html = client.result_page(session, front.url, response)
    assert re.search(r'id="result-count">.*?<td class="value">50000</td>', html, re.S)
    assert re.search(r'id="result-sum">.*?<td class="value">0</td>', html, re.S)
    assert "The first 1,000 are shown" in html

    both = client.submit_form(session, front.url, "1 2", ["sum"], upload=("n.txt", b"3 4", "text/plain"))
    assert both.status_code == 400
    assert "type the integers or upload a file, not both" in both.text
    picture = ("photo.png", b"\x89PNG\r\n\x1a\n\xff\xfe", "image/png")
    binary = client.submit_form(session, front.url, "", ["sum"], upload=picture)
    assert binary.status_code == 400
    assert "&#39;photo.png&#39; is not a text file (UTF-8 expected)" in binary.text


def test_large_requests_use_several_processes_and_stop_warm(stack, run) -> None:
    worker = run.worker(WORKER_PROCESSES=2, PARALLEL_FROM_NUMBERS=1_000)
    run.logger()
    front = run.frontend()
    rng = random.Random(9)
    numbers = [rng.randint(-(10**9), 10**9) for _ in range(5_000)]
    document = client.compute(front.url, numbers)
    assert document["results"]["sorted"] == sorted(numbers)
    assert document["results"]["sum"] == sum(numbers)
    assert worker.events("computed")[-1]["parallel"] is True
    small = client.compute(front.url, [1, 2, 3], ["sum"])
    assert small["results"] == {"sum": 6}
    assert worker.events("computed")[-1]["parallel"] is False

    # A warm stop while the process pool is busy: the batch finishes, the pool shuts down, exit 0.
    pending = [
        client.submit(front.url, numbers[: 4_000 + i], ["sorted", "mode", "median"], wait=0) for i in range(6)
    ]
    worker.wait_for_event("batch_received", count=3, timeout=120)
    assert worker.stop(timeout=120) == 0
    assert "BrokenProcessPool" not in worker.tail(200)
    run.worker("worker-2", WORKER_PROCESSES=2, PARALLEL_FROM_NUMBERS=1_000)
    for response in pending:
        done = client.until_done(front.url, response.json()["id"], timeout=180)
        assert done["status"] == "done"
