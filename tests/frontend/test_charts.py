"""The result page's charts (frontend/charts.py and templates/_charts.html), read back as XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask, render_template

from frontend import charts, i18n, web
from frontend.submissions import Outcome
from qcompute.operations import OPERATIONS

NUMBERS = [3, 1, 4, 1, 5, 9, 2, 6]  # mean 3.875, median 3.5, mode 1


def computed(numbers: list[int], names: list[str]) -> dict:
    return {name: OPERATIONS[name].compute(numbers) for name in names}


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # noqa: S314 (our own markup)


def bars(svg: ET.Element) -> list[ET.Element]:
    return svg.findall(".//rect[@class='bar']")


def marker(svg: ET.Element, kind: str) -> ET.Element:
    (line,) = svg.findall(f".//line[@class='marker marker-{kind}']")
    return line


def center(bar: ET.Element) -> float:
    return float(bar.get("x")) + float(bar.get("width")) / 2


def test_bar_heights_are_proportional_to_the_counts_and_markers_sit_at_their_values() -> None:
    results = computed(NUMBERS, ["histogram", "mean", "median", "mode"])
    svg = parse(
        charts.histogram_svg(
            results["histogram"], mean=results["mean"], median=results["median"], modes=results["mode"]
        )
    )
    drawn = bars(svg)
    assert [int(bar.get("data-count")) for bar in drawn] == [2, 1, 1, 1, 1, 1, 0, 0, 1]
    assert [int(bar.get("data-low")) for bar in drawn] == list(range(1, 10))
    heights = [float(bar.get("height")) for bar in drawn]
    per_count = heights[0] / 2
    assert per_count > 10
    for bar, height in zip(drawn, heights, strict=True):
        assert height == pytest.approx(per_count * int(bar.get("data-count")), abs=0.02)
    # All bars stand on the same baseline.
    assert len({round(float(bar.get("y")) + float(bar.get("height")), 1) for bar in drawn}) == 1

    # One bin per value: each value's marker stands in the middle of its bar.
    by_value = {int(bar.get("data-low")): center(bar) for bar in drawn}
    assert float(marker(svg, "mode").get("x1")) == pytest.approx(by_value[1], abs=0.02)
    assert float(marker(svg, "median").get("x1")) == pytest.approx((by_value[3] + by_value[4]) / 2, abs=0.02)
    mean_x = by_value[3] + 0.875 * (by_value[4] - by_value[3])
    assert float(marker(svg, "mean").get("x1")) == pytest.approx(mean_x, abs=0.02)
    assert marker(svg, "mean").get("data-value") == "3.875"

    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "histogram-title histogram-desc"
    assert svg.find("title").get("id") == "histogram-title"
    assert svg.find("title").text == "Histogram of 8 integers in 9 bins"
    assert "Mean 3.875; Median 3.5; Mode 1." in svg.find("desc").text
    legend = [text.text for text in svg.findall(".//g[@class='legend']/text")]
    assert legend == ["Mean 3.875", "Median 3.5", "Mode 1"]
    assert "style" not in str(charts.histogram_svg(results["histogram"])), "no inline style (CSP)"


def test_markers_are_drawn_only_for_results_given_and_at_most_three_modes() -> None:
    svg = parse(charts.histogram_svg(computed([1, 2, 3, 4], ["histogram"])["histogram"], modes=[1, 2, 3, 4]))
    assert svg.findall(".//line[@class]") == [], "four modes: none marked"
    svg = parse(charts.histogram_svg(computed([5, 5, 7], ["histogram"])["histogram"], median=5))
    assert [line.get("class") for line in svg.findall(".//g[@class='markers']/line")] == [
        "marker marker-median"
    ]


def test_wide_bins_are_labelled_at_their_edges_and_huge_numbers_abbreviated() -> None:
    numbers = [-(10**300), 10**300, 0, 1, 2, 3]
    results = computed(numbers, ["histogram", "mean", "median"])
    svg = parse(charts.histogram_svg(results["histogram"], mean=results["mean"], median=results["median"]))
    labels = [text.text for text in svg.findall(".//g[@class='axis axis-x']/text")]
    assert labels
    assert all(len(label) <= 12 for label in labels), labels
    assert labels[0] == "-1.00e300"
    edges_x = [float(text.get("x")) for text in svg.findall(".//g[@class='axis axis-x']/text")]
    assert edges_x[0] == pytest.approx(float(bars(svg)[0].get("x")), abs=1), "a label at the first edge"
    # The median (1.5) sits at the left edge of the bin from 0 (10**299 wide): computed exactly.
    (zero,) = [bar for bar in bars(svg) if bar.get("data-low") == "0"]
    assert float(marker(svg, "median").get("x1")) == pytest.approx(float(zero.get("x")), abs=1)


def test_the_box_plot_draws_box_median_whiskers_and_outliers_on_one_axis() -> None:
    box = OPERATIONS["box_plot"].compute([1, 2, 3, 4, 5, 6, 7, 8, 100, -50])
    svg = parse(charts.box_plot_svg(box))
    (rect,) = svg.findall(".//rect[@class='box']")
    (median,) = svg.findall(".//line[@class='median']")
    caps = {
        cap.get("data-value"): float(cap.get("x1")) for cap in svg.findall(".//line[@class='whisker-cap']")
    }
    dots = {dot.get("data-value"): float(dot.get("cx")) for dot in svg.findall(".//circle[@class='outlier']")}
    assert set(caps) == {str(box["whisker_low"]), str(box["whisker_high"])} == {"1", "8"}
    assert set(dots) == {"-50", "100"}
    left, right = float(rect.get("x")), float(rect.get("x")) + float(rect.get("width"))
    assert dots["-50"] < caps["1"] < left < float(median.get("x1")) < right < caps["8"] < dots["100"]
    # Positions are linear in the values: -50 and 100 are the ends of the axis.
    scale = (dots["100"] - dots["-50"]) / 150
    assert left == pytest.approx(dots["-50"] + scale * (box["q1"] + 50), abs=0.02)
    assert float(median.get("x1")) == pytest.approx(dots["-50"] + scale * (4.5 + 50), abs=0.02)
    assert svg.find("desc").text.endswith("1 outliers below and 1 above.")


def test_a_whisker_inside_the_box_is_not_drawn() -> None:
    box = OPERATIONS["box_plot"].compute([1, 1, 10**18, -(10**18)])
    assert box["whisker_low"] > box["q1"]
    svg = parse(charts.box_plot_svg(box))
    # -10**18 is an outlier (just); the low whisker, 1, lies inside the box: only the high one is drawn.
    assert [cap.get("data-value") for cap in svg.findall(".//line[@class='whisker-cap']")] == [str(10**18)]
    assert [dot.get("data-value") for dot in svg.findall(".//circle")] == [str(-(10**18))]


def test_text_is_escaped() -> None:
    histogram = {"edges": [0, 1, 2], "counts": [1, 1]}
    markup = str(charts.histogram_svg(histogram, mean=1, number=lambda value, step=None: "<b>&"))
    assert "<b>" not in markup
    assert "&lt;b&gt;&amp;" in markup
    parse(markup)


def test_format_number_keeps_short_numbers_and_abbreviates_long_ones() -> None:
    assert charts.format_number(-1234567) == "-1234567"
    assert charts.format_number(3.875) == "3.875"
    assert charts.format_number(12345678) == "1.23e7"
    assert charts.format_number(10**18 + 5 * 10**15, 10**15) == "1.005e18", "enough digits for the step"
    assert charts.format_number(-(10**400)) == "-1.00e400"


# --- the page's partial --------------------------------------------------------------------------------

TEMPLATES = Path(web.__file__).parent / "templates"


@pytest.fixture
def app() -> Flask:
    app = Flask("charts", template_folder=str(TEMPLATES))
    app.register_blueprint(web.blueprint)
    i18n.init_app(app)
    app.config["SETTINGS"] = SimpleNamespace(app_version="test")
    return app


def render(app: Flask, numbers: list[int], names: list[str], status: str = "done") -> str:
    outcome = Outcome.from_record(
        {
            "id": "0" * 36,
            "status": status,
            "request": {"operations": names, "count": len(numbers)},
            "results": computed(numbers, names) if status == "done" else {},
            "timings": {"submitted_at": "2025-01-01T00:00:00Z", "computed_at": "2025-01-01T00:00:01Z"},
        }
    )
    with app.test_request_context():
        return render_template("_charts.html", outcome=outcome)


def test_the_page_shows_both_charts_with_tables_keeping_big_numbers_exact(app: Flask) -> None:
    big = 10**18 - 1
    html = render(app, [1, 2, 3, big], ["histogram", "box_plot", "mean", "median", "mode"])
    assert html.count("<figure") == 2
    assert html.count("<figcaption>") == 2
    assert 'id="histogram-data"' in html
    assert 'id="box-plot-data"' in html
    assert f"{big}" in html.split('id="box-plot-data"')[1], "exact in the table"
    assert "9.99e17" in html or "1.00e18" in html, "abbreviated on the axis"
    assert "style=" not in html
    assert "<script" not in html


def test_no_charts_without_their_operations_or_when_not_done(app: Flask) -> None:
    assert "<figure" not in render(app, [1, 2], ["sum", "mean"])
    only_box = render(app, [1, 2], ["box_plot"])
    assert only_box.count("<figure") == 1
    assert 'id="chart-box-plot"' in only_box
    assert "<figure" not in render(app, [1, 2], ["histogram"], status="cancelled")


def test_object_results_read_as_text_in_the_results_table() -> None:
    assert web.show({"edges": [1, 2, 3], "counts": [2, 1]}) == "edges: 1, 2, 3; counts: 2, 1"
    box = OPERATIONS["box_plot"].compute([1, 2, 3, 4, 100])
    assert web.show(box) == (
        "q1: 2; median: 3; q3: 4; whisker_low: 1; whisker_high: 4; outliers_low: 0; outliers_high: 1; "
        "extremes_high: 100"
    )
