"""The report: ratios to the emulator's ceiling and to this project, the tables, the targets, the JSON."""

from __future__ import annotations

import dataclasses

import pytest

from bench import report, targets
from bench.results import HistoryRow, LoadRow, Run, SizeRow


def row(system: str, workers: int | None, clients: int, completed: int, p50: float, **extra) -> LoadRow:
    """A row of 10 s on LocalStack: `completed` / 10 requests per second."""
    latencies = {"p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3}
    counts = {"sent": completed, "completed": completed, "errors": 0, "seconds": 10.0}
    return LoadRow("localstack", system, workers, clients, **{**counts, **latencies, **extra})


ROWS = [
    row("raw", None, 16, 4000, 4.0),  # 400 req/s
    row("project", 1, 16, 1500, 20.0),
    row("project", 2, 16, 2000, 10.0),  # 200 req/s
    row("celery", 2, 16, 1000, 100.0),  # half the project's req/s: short of the 3x target
    row("seed", 2, 16, 100, 1000.0, errors=3, first_error="TimeoutError: no reply", capped=True),
]


def test_ratios_compare_under_the_same_load():
    seed, celery, raw = ROWS[4], ROWS[3], ROWS[0]
    assert report.ceiling_for(ROWS, celery) is raw
    assert report.project_for(ROWS, celery) is ROWS[2], "same number of workers"
    assert report.project_for(ROWS, raw) is ROWS[2], "the ceiling is compared with the project's best"
    assert report.ratio(celery.rps, ROWS[2].rps) == pytest.approx(0.5)
    assert report.ratio(1.0, 0.0) is None
    assert report.ratio(None, 2.0) is None
    assert report.project_for([raw], seed) is None


def test_the_load_table_shows_figures_ratios_and_what_went_wrong():
    table = report.load_table(ROWS)
    headers = report.LOAD_HEADERS
    celery = dict(zip(headers, table[3], strict=True))
    assert celery["req/s"] == "100.0"
    assert celery["req/s ÷ ceiling"] == "0.25x"
    assert celery["req/s ÷ qcompute"] == "0.50x"
    assert celery["p50 ÷ qcompute"] == "10.00x"
    assert celery["workers"] == "2"
    seed = dict(zip(headers, table[4], strict=True))
    assert "3 errors (TimeoutError: no reply)" in seed["notes"]
    assert "time cap reached" in seed["notes"]
    assert dict(zip(headers, table[0], strict=True))["workers"] == "-"


def test_tables_are_aligned_for_a_terminal_and_valid_markdown():
    rows = [["a", "1"], ["long cell", "22"]]
    text = report.format_table(["name", "n"], rows).splitlines()
    assert text[0] == "name       n"
    assert text[1] == "---------  --"
    assert text[3] == "long cell  22"
    markdown = report.format_table(["name", "n"], rows, markdown=True).splitlines()
    assert markdown[:2] == ["| name | n |", "| --- | --- |"]
    assert markdown[3] == "| long cell | 22 |"


def test_the_size_table_reports_refusals_and_peaks():
    sizes = [
        SizeRow("moto", 1_000_000, "refused (400: too_many_numbers)", peak_mib={"frontend": 80.0}),
        SizeRow("moto", 1000, "done", 0.5, 0.75, {"frontend": 80.0, "worker": 60.25, "logger": 50.0}),
    ]
    table = report.size_table(sizes)
    assert table[0][:4] == ["moto", "1,000,000", "refused (400: too_many_numbers)", "-"]
    assert table[1][3:] == ["0.50", "0.75", "80.0", "60.2", "50.0"]
    run = Run(backends=["moto"], smoke=True, load=ROWS, sizes=sizes, failures=["moto: celery: boom"])
    rendered = report.render(run)
    assert "FAILED: moto: celery: boom" in rendered
    assert "1,000,000" in rendered


def test_targets_say_whether_met_and_by_how_much():
    largest = SizeRow("localstack", 1_000_000, "done", 1.25, 1.5, {"frontend": 300.0, "worker": 700.0})
    loads = [*ROWS]
    for clients in (1, 4, 64):
        loads += [row("project", 1, clients, 500, 10.0), row("celery", 1, clients, 400, 12.0)]
    history = [
        HistoryRow("localstack", 1_000_000, "first page", 1800.0, 50, 40.0, 90.0, 120.0, 1.0, 20.0),
        HistoryRow("localstack", 1_000_000, "1,000 deep", 1800.0, 50, 60.0, 310.0, 400.0, 1.2, 20.0),
    ]
    run = Run(backends=["localstack"], smoke=False, load=loads, sizes=[largest], history=history)
    verdicts = targets.evaluate(run)
    assert [v.met for v in verdicts] == [True, False, None, False, True]
    assert "16: 200 vs 100 req/s (celery), p50 10.0 vs 100.0 ms (celery)" in verdicts[0].measured
    assert "200 / 400 = 50%, p99 30 ms" in verdicts[1].measured
    assert "1,000 deep over 1,000,000: p95 310 ms, 1.2 listings" in verdicts[3].measured
    assert "1.25 s; peaks frontend 300 MiB, worker 700 MiB" in verdicts[4].measured
    assert "1,000,000    1,000 deep" in report.render(run)
    assert verdicts[1].line().startswith("MISSED")
    slow = [*loads, row("seed", 1, 1, 900, 5.0)]
    assert targets.evaluate(Run(backends=[], smoke=False, load=slow))[0].met is False
    assert targets.evaluate(Run(backends=[], smoke=True))[0].met is None


def test_the_largest_request_is_missed_when_a_service_peaks_at_the_instances_memory():
    def largest(peaks: dict[str, float]) -> targets.Verdict:
        size = SizeRow("localstack", 1_000_000, "done", 1.0, 1.2, peaks)
        return targets.evaluate(Run(backends=["localstack"], smoke=False, sizes=[size]))[-1]

    fits = largest({"frontend": 300.0, "worker": 1023.0, "logger": 100.0})
    assert fits.met is True
    assert "the instance has 1 GiB" in fits.measured
    over = largest({"frontend": 300.0, "worker": 1024.0, "logger": 100.0})
    assert over.met is False, "fast enough, but the worker needs the whole instance"
    assert "worker 1024 MiB" in over.measured


def test_a_missing_p50_is_not_judged_and_never_counts_as_ahead():
    def ahead(*rows: LoadRow) -> targets.Verdict:
        loads = [row("project", 1, c, 500, 10.0) for c in (1, 16, 64)] + [
            row("celery", 1, c, 400, 12.0) for c in (1, 16, 64)
        ]
        return targets.evaluate(Run(backends=[], smoke=False, load=[*loads, *rows]))[0]

    def without_p50(load: LoadRow) -> LoadRow:
        return dataclasses.replace(load, p50_ms=None)

    ours, celery = row("project", 1, 4, 500, 10.0), row("celery", 1, 4, 400, 12.0)
    assert ahead(ours, celery).met is True
    # Ours missing: not "0 ms, ahead of everyone"; a peer's missing: not "behind" either.
    mine = ahead(without_p50(ours), celery)
    assert mine.met is None
    assert "4: 50 vs 40 req/s (celery), p50 - vs 12.0 ms (celery) (a p50 missing" in mine.measured
    assert ahead(ours, without_p50(celery)).met is None
    # Fewer req/s is a miss whatever the p50s, and so is any other load's miss.
    assert ahead(without_p50(ours), row("celery", 1, 4, 900, 12.0)).met is False
    assert ahead(without_p50(ours), celery, row("seed", 1, 64, 900, 5.0)).met is False


def test_a_run_survives_its_json():
    run = Run(backends=["moto"], smoke=True, load=ROWS[:2], sizes=[SizeRow("moto", 10, "done", 0.1)])
    document = run.to_json()
    assert document["load"][0]["rps"] == 400.0
    again = Run.from_json(document)
    assert again.load == run.load
    assert again.sizes == run.sizes


def test_a_smoke_run_fails_on_any_error_and_a_full_run_only_when_a_phase_could_not_run():
    from bench.__main__ import failed

    broken = row("celery", 1, 4, 10, 50.0, errors=2)
    refused = SizeRow("moto", 1_000_000, "refused (400: too_many_numbers)")
    assert failed(Run(backends=["moto"], smoke=True, load=[ROWS[1]], sizes=[refused])) == []
    assert failed(Run(backends=["moto"], smoke=True, load=[broken])) == [
        "localstack celery 4 clients: 2 errors"
    ]
    assert failed(Run(backends=["moto"], smoke=False, load=[broken])) == []
    assert failed(Run(backends=["moto"], smoke=False, failures=["moto: sizes: boom"])) == [
        "moto: sizes: boom"
    ]
