"""The status page's last hour in Chromium: three charts whose dots are the values of their tables,
the requests the test made counted, nothing wider than a phone, and no serious accessibility finding
in the charts' section."""

from __future__ import annotations

from datetime import UTC, datetime

import requests

from frontend.trends import NO_VALUE
from harness import client
from harness.browser import PHONE_VIEWPORT, accessibility_violations, horizontal_overflow
from harness.fixtures import send_request
from harness.waiting import eventually
from qcompute import stats

EXPECTED = {"done": 3, "error": 1, "cancelled": 1}


def _totals(trends: dict) -> dict[str, int]:
    return {status: sum(v for v in values if v is not None) for status, values in trends["requests"].items()}


def test_the_status_page_charts_the_last_hour(stack, run, chromium, page_screenshots) -> None:
    run.logger(STATS_FLUSH_SECONDS=1)
    front = run.frontend()
    # Cancelled while queued (no worker yet), then three done and one the worker refuses.
    cancelled = client.submit(front.url, [7, 8], wait=0).json()["id"]
    assert client.cancel(front.url, cancelled).status_code == 202
    run.worker()
    for numbers in ([1, 2], [3, 4, 5], [6]):
        client.compute(front.url, numbers)
    send_request(stack, [10**30], ["sum"], reply_to=None)
    bucket = stack.clients.names.log_bucket
    eventually(
        lambda: _totals(stats.read_all(stack.clients.s3, bucket, datetime.now(UTC))) == EXPECTED,
        timeout=90,
        what="the loggers' window with every request",
    )

    # The API gives the same series (its answer checked against the OpenAPI document).
    def api_trends() -> dict | None:
        trends = requests.get(f"{front.url}/api/status", timeout=30).json()["trends"]
        return trends if trends and _totals(trends) == EXPECTED else None

    api = eventually(api_trends, timeout=60, what="the counts in GET /api/status")
    assert len(api["minutes"]) == stats.WINDOW_MINUTES

    for name, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", PHONE_VIEWPORT)):
        page = chromium.new_page(viewport=viewport)
        try:
            # Each gunicorn process reads the window at most every 15 s.
            eventually(
                lambda page=page: _done_on_page(page, front.url) == 3,
                timeout=60,
                interval=1,
                what="the counts",
            )
            figures = page.locator("#trends figure.trend")
            assert figures.count() == 3
            for chart in ("chart-requests", "chart-latency", "chart-depths"):
                _check_chart(page, chart)
            page.locator("#trends").screenshot(path=str(page_screenshots / f"status-charts-{name}.png"))
            page.locator("#trends details").evaluate_all("all => all.forEach(d => d.open = true)")
            assert page.locator("#trends details:not([open])").count() == 0
            # The charts and their open tables; the page's older tables (queues, latest results) are
            # wider than a phone by themselves, which is the stylesheet's to fix.
            assert horizontal_overflow(page, "#trends") == 0, f"wider than the {name} viewport"
            assert accessibility_violations(page, "#trends") == []
        finally:
            page.close()


def _done_on_page(page, url: str) -> float:
    page.goto(f"{url}/status")
    # Paused: the checks below read one version of the page, not parts of two.
    page.uncheck("#live-updates")
    done = page.locator("#chart-requests g[data-series='done'] circle")
    return sum(float(value) for value in done.evaluate_all("dots => dots.map(d => d.dataset.value)"))


def _check_chart(page, chart: str) -> None:
    """Every dot is a value of the table beside it, in its column and row; every value has its dot."""
    figure = page.locator(f"#{chart}")
    svg = figure.locator("svg.trend-chart")
    assert svg.get_attribute("role") == "img"
    labelled = svg.get_attribute("aria-labelledby").split()
    assert [figure.locator(f"#{id_}").count() for id_ in labelled] == [1, 1]
    keys = figure.locator("ul.legend li").evaluate_all("items => items.map(i => i.dataset.series)")
    # The tables side by side, one column per series in the legend's order.
    tables = figure.locator("table.trend-values tbody").evaluate_all(
        "bodies => bodies.map(b => [...b.rows].map(r => [...r.cells].map(c => c.textContent.trim())))"
    )
    rows = [
        [tables[0][i][0], *[cell for table in tables for cell in table[i][1:]]] for i in range(len(tables[0]))
    ]
    assert len(rows) == stats.WINDOW_MINUTES
    assert all(len(row) == len(keys) + 1 for row in rows)
    minutes = svg.evaluate("s => [...s.querySelectorAll('g.x-axis text')].map(t => t.textContent)")
    assert (rows[0][0], rows[-1][0]) == (minutes[0], minutes[-1])
    for column, key in enumerate(keys, start=1):
        dots = svg.locator(f"g[data-series='{key}'] circle").evaluate_all(
            "dots => dots.map(d => [d.dataset.minute.slice(11, 16), d.dataset.value])"
        )
        table = [(row[0], row[column]) for row in rows if row[column] != NO_VALUE]
        assert [minute for minute, _ in dots] == [minute for minute, _ in table], (chart, key)
        assert [float(value) for _, value in dots] == [float(cell.replace(",", "")) for _, cell in table]
