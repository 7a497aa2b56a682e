"""The status page's charts (frontend/trends.py): each value drawn where it belongs, gaps left as gaps,
an accessible image with a text alternative, and nothing the Content-Security-Policy would refuse."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from frontend import trends
from qcompute import stats

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 3, 1, 12, 30, 20, tzinfo=UTC)
MINUTES = stats.window_minutes(NOW)


def _series(values: dict[int, float]) -> list[float | None]:
    return [values.get(index) for index in range(stats.WINDOW_MINUTES)]


def _trends() -> dict:
    empty: list[float | None] = [None] * stats.WINDOW_MINUTES
    return {
        "minutes": MINUTES,
        "loggers": 1,
        "requests": {
            "done": _series({i: i % 7 for i in range(30, 60)}),
            "error": _series(dict.fromkeys(range(30, 60), 0) | {40: 3}),
            "cancelled": _series(dict.fromkeys(range(30, 60), 0)),
        },
        "latency_ms": {
            "p50": _series({31: 120.0, 32: 95.5, 35: 130.0, 36: 88.0}),
            "p90": _series({31: 300.0, 32: 210.0, 35: 400.0, 36: 180.0}),
            "p99": _series({31: 950.0, 32: 620.0, 35: 1400.0, 36: 450.0}),
        },
        "depths": {
            queue: {"visible": _series({59: 12.0}), "in_flight": list(empty)} for queue in stats.QUEUES
        },
    }


def _svg(chart: trends.Chart) -> ET.Element:
    return ET.fromstring(str(chart.svg))  # noqa: S314 - our own output, not untrusted input


def _drawn(root: ET.Element, key: str) -> dict[int, float]:
    """The values a series' dots stand for, read back from their positions alone."""
    top = float(root.get("data-top"))
    dots = root.findall(f"{SVG}g[@data-series='{key}']/{SVG}circle")
    width, height = trends.RIGHT - trends.LEFT, trends.BOTTOM - trends.TOP
    values = {}
    for dot in dots:
        index = round((float(dot.get("cx")) - trends.LEFT) / width * (stats.WINDOW_MINUTES - 1))
        assert dot.get("data-minute") == MINUTES[index]
        values[index] = (trends.BOTTOM - float(dot.get("cy"))) / height * top
    return values


@pytest.mark.parametrize("which", [0, 1, 2])
def test_every_value_is_drawn_at_its_minute_and_height_and_gaps_are_not(which: int) -> None:
    chart = trends.charts(_trends())[which]
    root = _svg(chart)
    for series in chart.series:
        expected = {i: value for i, value in enumerate(series.values) if value is not None}
        drawn = _drawn(root, series.key)
        assert drawn.keys() == expected.keys(), series.key
        for index, value in expected.items():
            assert drawn[index] == pytest.approx(value, abs=0.01 * float(root.get("data-top"))), series.key


def test_a_gap_breaks_the_line() -> None:
    latency = trends.charts(_trends())[1]
    lines = _svg(latency).findall(f"{SVG}g[@data-series='p50']/{SVG}polyline")
    # Minutes 31-32 and 35-36: two lines, not one across the gap.
    assert [len(line.get("points").split()) for line in lines] == [2, 2]
    # A single value (the depths' last minute) is a dot without a line.
    depths = _svg(trends.charts(_trends())[2])
    assert not depths.findall(f"{SVG}g[@data-series='requests-visible']/{SVG}polyline")
    assert len(depths.findall(f"{SVG}g[@data-series='requests-visible']/{SVG}circle")) == 1


def test_the_y_axis_ends_at_a_round_number_above_the_highest_value() -> None:
    assert [trends.nice_ceiling(v) for v in (0, 0.4, 1, 3, 6, 10, 11, 1400, 20_001)] == [
        1, 1, 1, 5, 10, 10, 20, 2000, 50_000,
    ]  # fmt: skip
    root = _svg(trends.charts(_trends())[1])
    assert root.get("data-top") == "2000"
    assert [text.text for text in root.findall(f"{SVG}g[@class='y-axis']/{SVG}text")] == [
        "0",
        "1,000",
        "2,000",
    ]
    times = [text.text for text in root.findall(f"{SVG}g[@class='x-axis']/{SVG}text")]
    assert times == ["11:31", "11:46", "12:01", "12:16", "12:30"]


def test_each_chart_is_an_image_named_and_described_with_its_values_as_a_table() -> None:
    for chart in trends.charts(_trends()):
        root = _svg(chart)
        assert root.get("role") == "img"
        assert root.get("width") == "100%"
        assert root.get("viewBox") == f"0 0 {trends.WIDTH} {trends.HEIGHT}"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        assert title.text == chart.title
        tables = chart.tables
        assert [series for table in tables for series in table.series] == chart.series
        for table in tables:
            assert len(table.rows) == stats.WINDOW_MINUTES
            assert table.rows[-1][0] == "12:30"
            # At most four columns: a phone's width holds them.
            assert len(table.series) <= 3
            for column, series in enumerate(table.series):
                assert [row[1][column] for row in table.rows] == [
                    trends.NO_VALUE if value is None else trends.format_number(value)
                    for value in series.values
                ]
    requests = trends.charts(_trends())[0]
    assert "error: highest 3, last 0." in _svg(requests).find(f"{SVG}desc").text
    depths = trends.charts(_trends())[2]
    assert "requests in flight: no data." in _svg(depths).find(f"{SVG}desc").text


def test_nothing_the_content_security_policy_refuses_and_text_is_escaped() -> None:
    data = _trends()
    chart = trends.Chart(
        "chart-x",
        "<b>title</b>",
        "a & b",
        MINUTES,
        [trends.Series("s", "<i>", data["requests"]["done"], "#000")],
    )
    markup = str(chart.svg) + str(chart.series[0].swatch)
    for element in _svg(chart).iter():
        assert "style" not in element.attrib
        assert not element.tag.endswith(("style", "script"))
    assert "<b>" not in markup
    assert "&lt;b&gt;title&lt;/b&gt;" in markup
    assert "&lt;i&gt;" in markup
    assert "a &amp; b" in markup


def test_an_empty_hour_draws_axes_and_no_line() -> None:
    empty = stats.merge([], NOW)
    for chart in trends.charts(empty):
        root = _svg(chart)
        assert not root.findall(f".//{SVG}circle")
        assert not root.findall(f".//{SVG}polyline")
        assert root.get("data-top") == "1"
        for table in chart.tables:
            assert all(row[1] == [trends.NO_VALUE] * len(table.series) for row in table.rows)
