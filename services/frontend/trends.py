"""The status page's charts of the last hour: series in, SVG out (pure functions, no I/O).

Drawn on the server as SVG with presentation attributes only: the page's Content-Security-Policy allows
no inline script or style. The viewBox and `width="100%"` let a chart shrink to a phone's width.
A None value is a gap in the line (no logger ran, no request finished, no depth sampled), never a zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from flask_babel import gettext as _
from markupsafe import Markup

from frontend.charts import round_step
from qcompute import stats

WIDTH, HEIGHT = 600, 250
# The plotting area inside the viewBox: room on the left for the values, below for the times.
LEFT, TOP, RIGHT, BOTTOM = 64, 14, 588, 214
FONT_SIZE = 17
GRID = "#d9dde6"
# At least 4.5:1 against the page's white and near-white backgrounds; dashes tell lines apart without colour.
BLUE, RED, GREEN, GREY, ORANGE, PURPLE = "#2456c9", "#b3261e", "#1b6e3a", "#5b6478", "#8a4b08", "#7b3fa0"
SOLID, DASHED, DOTTED = "", "8 4", "2 4"
# In the table of values, a minute without one.
NO_VALUE = "\N{EN DASH}"


def format_number(value: float) -> str:
    """Numbers as the charts write them when no language is given (tests; the page passes its own)."""
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.3g}"


def format_minute(minute: str) -> str:
    """'2026-03-01T12:30Z' -> '12:30' (UTC, the same in both languages)."""
    return minute[11:16]


@dataclass(frozen=True)
class Formats:
    number: Callable[[float], str] = format_number
    minute: Callable[[str], str] = format_minute


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    values: list[float | None]
    colour: str
    dash: str = SOLID
    # Its column's heading in a table of one group of series (the group named by the table's caption).
    column: str = ""

    @property
    def swatch(self) -> Markup:
        """A short sample of the line, for the legend."""
        return Markup(
            '<svg class="swatch" viewBox="0 0 28 10" width="28" height="10" aria-hidden="true">'
            '<line x1="0" y1="5" x2="28" y2="5" stroke="{}" stroke-width="3"{}/></svg>'
        ).format(self.colour, _dash(self.dash))


@dataclass(frozen=True)
class Table:
    """Part of a chart's text alternative: a value per minute of each of its series."""

    caption: str
    series: list[Series]
    rows: list[tuple[str, list[str]]]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    summary: str
    minutes: list[str]
    series: list[Series]
    formats: Formats = field(default_factory=Formats)
    # Series shown in tables of their own, by caption (few columns each: a phone's width holds four).
    groups: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def svg(self) -> Markup:
        return line_chart(self)

    @property
    def tables(self) -> list[Table]:
        """The text alternative: each minute with each series' value (NO_VALUE where there is none)."""
        groups = self.groups or [("", [series.key for series in self.series])]
        by_key = {series.key: series for series in self.series}
        tables = []
        for caption, keys in groups:
            series = [by_key[key] for key in keys]
            rows = [
                (
                    self.formats.minute(minute),
                    [NO_VALUE if s.values[i] is None else self.formats.number(s.values[i]) for s in series],
                )
                for i, minute in enumerate(self.minutes)
            ]
            tables.append(Table(caption, series, rows))
        return tables


def charts(trends: dict[str, Any], formats: Formats | None = None) -> list[Chart]:
    """The three charts of GET /api/status's `trends`."""
    formats = formats or Formats()
    minutes, requests, latency, depths = (
        trends["minutes"],
        trends["requests"],
        trends["latency_ms"],
        trends["depths"],
    )
    r_depth, r_dlq, l_depth, l_dlq = (depths[queue] for queue in stats.QUEUES)
    return [
        Chart(
            "chart-requests",
            _("Requests finished per minute"),
            _("Requests logged in each minute, by how they ended."),
            minutes,
            [
                Series("done", _("done"), requests["done"], GREEN),
                Series("error", _("error"), requests["error"], RED, DASHED),
                Series("cancelled", _("cancelled"), requests["cancelled"], GREY, DOTTED),
            ],
            formats,
        ),
        Chart(
            "chart-latency",
            _("Total time per request (ms)"),
            _("From submission to result, percentiles of the requests finished in each minute."),
            minutes,
            [
                Series("p50", _("median (p50)"), latency["p50"], BLUE),
                Series("p90", _("p90"), latency["p90"], ORANGE, DASHED),
                Series("p99", _("p99"), latency["p99"], RED, DOTTED),
            ],
            formats,
        ),
        Chart(
            "chart-depths",
            _("Queue depths"),
            _("Messages in each queue, the highest count sampled in each minute."),
            minutes,
            [
                Series(
                    "requests-visible", _("requests waiting"), r_depth["visible"], BLUE, SOLID, _("waiting")
                ),
                Series(
                    "requests-in-flight",
                    _("requests in flight"),
                    r_depth["in_flight"],
                    BLUE,
                    DASHED,
                    _("in flight"),
                ),
                Series(
                    "requests-dlq",
                    _("requests dead letters"),
                    r_dlq["visible"],
                    RED,
                    SOLID,
                    _("dead letters"),
                ),
                Series("logs-visible", _("logs waiting"), l_depth["visible"], GREEN, SOLID, _("waiting")),
                Series(
                    "logs-in-flight", _("logs in flight"), l_depth["in_flight"], GREEN, DASHED, _("in flight")
                ),
                Series(
                    "logs-dlq", _("logs dead letters"), l_dlq["visible"], PURPLE, DOTTED, _("dead letters")
                ),
            ],
            formats,
            [
                (_("Request queue"), ["requests-visible", "requests-in-flight", "requests-dlq"]),
                (_("Log queue"), ["logs-visible", "logs-in-flight", "logs-dlq"]),
            ],
        ),
    ]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2 or 5 x 10^k at or above value, and at least 1: the top of the y axis
    (the result page's charts round their steps the same way)."""
    return float(round_step(Fraction(value)))


def _dash(dash: str) -> Markup:
    return Markup(' stroke-dasharray="{}"').format(dash) if dash else Markup("")


def _x(index: int, count: int) -> float:
    return round(LEFT + (RIGHT - LEFT) * index / max(1, count - 1), 2)


def _y(value: float, top: float) -> float:
    return round(BOTTOM - (BOTTOM - TOP) * value / top, 2)


def _description(chart: Chart) -> str:
    parts = [chart.summary]
    for series in chart.series:
        present = [value for value in series.values if value is not None]
        if present:
            parts.append(
                _(
                    "%(label)s: highest %(highest)s, last %(last)s.",
                    label=series.label,
                    highest=chart.formats.number(max(present)),
                    last=chart.formats.number(present[-1]),
                )
            )
        else:
            parts.append(_("%(label)s: no data.", label=series.label))
    return " ".join(parts)


def _axes(chart: Chart, top: float) -> list[Markup]:
    """Grid lines and values at 0, half and the top; times at the start, every quarter hour, the end."""
    count = len(chart.minutes)
    parts = [Markup('<g class="y-axis" fill="currentColor" text-anchor="end" stroke="{}">').format(GRID)]
    for value in (0, top / 2, top) if top >= 2 else (0, top):
        y = _y(value, top)
        parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}"/>').format(LEFT, y, RIGHT, y))
        parts.append(
            Markup('<text x="{}" y="{:.2f}" stroke="none">{}</text>').format(
                LEFT - 8, y + FONT_SIZE / 3, chart.formats.number(value)
            )
        )
    parts.append(Markup('</g><g class="x-axis" fill="currentColor" text-anchor="middle">'))
    for index in sorted({0, *range(15, count - 1, 15), count - 1}) if count else []:
        # The first and last labels end inside the picture.
        anchor = "start" if index == 0 else "end" if index == count - 1 else "middle"
        parts.append(
            Markup('<text x="{}" y="{}" text-anchor="{}">{}</text>').format(
                _x(index, count), HEIGHT - 12, anchor, chart.formats.minute(chart.minutes[index])
            )
        )
    parts.append(Markup("</g>"))
    return parts


def _series(series: Series, minutes: list[str], top: float) -> list[Markup]:
    """A line through each run of values (a None breaks it) and a dot on every value."""
    parts = [
        Markup('<g data-series="{}" stroke="{}" fill="{}">').format(series.key, series.colour, series.colour)
    ]
    run: list[str] = []
    dots = []
    for index, value in enumerate([*series.values, None]):
        if value is None:
            if len(run) > 1:
                parts.append(
                    Markup(
                        '<polyline points="{}" fill="none" stroke-width="2.5" stroke-linejoin="round"{}/>'
                    ).format(" ".join(run), _dash(series.dash))
                )
            run = []
            continue
        x, y = _x(index, len(minutes)), _y(value, top)
        run.append(f"{x},{y}")
        dots.append(
            Markup('<circle cx="{}" cy="{}" r="3" stroke="none" data-minute="{}" data-value="{:g}"/>').format(
                x, y, minutes[index], value
            )
        )
    return [*parts, *dots, Markup("</g>")]


def line_chart(chart: Chart) -> Markup:
    """The chart as an SVG image, its title and description read out in its place."""
    present = [value for series in chart.series for value in series.values if value is not None]
    top = nice_ceiling(max(present, default=0))
    head = Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" role="img"'
        ' aria-labelledby="{}-title {}-desc" class="trend-chart" font-size="{}"'
        ' font-family="system-ui, sans-serif" data-top="{:g}">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>'
    ).format(
        WIDTH,
        HEIGHT,
        chart.id,
        chart.id,
        FONT_SIZE,
        top,
        chart.id,
        chart.title,
        chart.id,
        _description(chart),
    )
    parts = [head, *_axes(chart, top)]
    for series in chart.series:
        parts += _series(series, chart.minutes, top)
    return Markup("").join([*parts, Markup("</svg>")])
