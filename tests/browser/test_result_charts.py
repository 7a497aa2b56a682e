"""The result page's charts in real Chromium: drawn to scale, readable on a phone, accessible."""

from __future__ import annotations

import pytest

from harness.browser import PHONE_VIEWPORT, accessibility_violations, horizontal_overflow

# Known counts: 1 twice, 2 to 6 once, 7 and 8 never, 9 once; mean 3.875, median 3.5, mode 1.
NUMBERS = "3 1 4 1 5 9 2 6"
COUNTS = {1: 2, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 0, 8: 0, 9: 1}

# Each bar's value, count and box on the screen (getBBox: user units; getBoundingClientRect: pixels).
BARS = """() => [...document.querySelectorAll('#chart-histogram rect.bar')].map(bar => {
  const box = bar.getBBox();
  return {value: +bar.dataset.low, count: +bar.dataset.count, x: box.x, width: box.width, height: box.height};
})"""
MARKERS = """() => Object.fromEntries([...document.querySelectorAll('#chart-histogram line.marker')].map(
  line => [line.classList[1], line.getBBox().x]))"""
SCREEN_WIDTHS = """() => [...document.querySelectorAll('figure.chart svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  return {left: box.left, right: box.right};
})"""


def submit(page, url: str) -> None:
    page.goto(url + "/")
    page.fill("#numbers", NUMBERS)
    page.click("#submit")
    page.wait_for_selector("#chart-histogram svg")


def test_the_charts_draw_the_numbers_to_scale_on_desktop_and_phone(
    stack, run, chromium, page_screenshots
) -> None:
    run.worker()
    run.logger()
    front = run.frontend()
    problems: list[str] = []
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    submit(page, front.url)

    bars = page.evaluate(BARS)
    assert {bar["value"]: bar["count"] for bar in bars} == COUNTS
    per_count = bars[0]["height"] / 2
    assert per_count > 10
    for bar in bars:
        assert bar["height"] == pytest.approx(per_count * bar["count"], abs=0.05), bar
    centre = {bar["value"]: bar["x"] + bar["width"] / 2 for bar in bars}
    markers = page.evaluate(MARKERS)
    assert set(markers) == {"marker-mean", "marker-median", "marker-mode"}
    assert markers["marker-mode"] == pytest.approx(centre[1], abs=0.5), "in the middle of the bar of 1"
    assert markers["marker-median"] == pytest.approx((centre[3] + centre[4]) / 2, abs=0.5)
    assert markers["marker-mean"] == pytest.approx(centre[3] + 0.875 * (centre[4] - centre[3]), abs=0.5)
    assert page.locator("#chart-histogram .legend text").all_text_contents() == [
        "Mean 3.875",
        "Median 3.5",
        "Mode 1",
    ]

    box = page.locator("#chart-box-plot")
    assert box.locator("rect.box").count() == 1
    assert box.locator("line.median").get_attribute("data-value") == "3.5"
    assert sorted(box.locator("line.whisker-cap").evaluate_all("caps => caps.map(c => c.dataset.value)")) == [
        "1",
        "9",
    ]
    assert box.locator("circle.outlier").count() == 0
    # The text alternative: a table of every bin, the box plot's five numbers.
    page.click("#histogram-data summary")
    assert page.locator("#histogram-data tbody tr").count() == 9
    page.click("#box-plot-data summary")
    assert "3.5" in page.inner_text("#box-plot-data")
    for name in ("histogram", "box-plot"):
        svg = page.locator(f"#chart-{name} svg")
        assert svg.get_attribute("role") == "img"
        labelled_by = svg.get_attribute("aria-labelledby").split()
        tags = [page.locator(f"#{ref}").evaluate("e => e.tagName") for ref in labelled_by]
        assert tags == ["title", "desc"]
    assert accessibility_violations(page) == []
    assert problems == [], "no Content-Security-Policy refusals"
    page.screenshot(path=page_screenshots / "charts-desktop.png", full_page=True)

    phone = chromium.new_page(viewport=PHONE_VIEWPORT)
    phone.goto(page.url)
    phone.wait_for_selector("#chart-histogram svg")
    assert horizontal_overflow(phone) == 0
    for svg in phone.evaluate(SCREEN_WIDTHS):
        assert 0 <= svg["left"] < svg["right"] <= PHONE_VIEWPORT["width"], svg
    assert accessibility_violations(phone) == []
    phone.screenshot(path=page_screenshots / "charts-phone.png", full_page=True)
    page.close()
    phone.close()


def test_big_integers_keep_the_charts_within_a_phone(stack, run, chromium, page_screenshots) -> None:
    run.worker()
    run.logger()
    front = run.frontend()
    page = chromium.new_page(viewport=PHONE_VIEWPORT)
    page.goto(front.url + "/")
    extremes = [-(10**18), 10**18, -(10**18) + 1, 999_999_999_999_999_999]
    page.fill("#numbers", " ".join(str(n) for n in [*extremes, *range(-40, 60, 3)]))
    page.click("#submit")
    page.wait_for_selector("#chart-box-plot svg")
    assert horizontal_overflow(page) == 0
    labels = page.locator("#chart-histogram .axis-x text").all_text_contents()
    assert labels
    assert all(len(label) <= 9 for label in labels), labels
    assert page.locator("#chart-box-plot circle.outlier").count() == 4
    page.click("#box-plot-data summary")
    assert str(10**18) in page.inner_text("#box-plot-data"), "exact in the table"
    assert accessibility_violations(page) == []
    page.screenshot(path=page_screenshots / "charts-big-integers-phone.png", full_page=True)
    page.close()
