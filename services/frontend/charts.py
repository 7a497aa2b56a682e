"""The result page's charts as SVG drawn on the server: data in, markup out.

No script and no style: the page's Content-Security-Policy allows neither inline, so colours, lines
and fonts are SVG presentation attributes. Each chart scales to its container (viewBox, width 100%)
and names itself to assistive technology with its <title> and <desc>; the page adds a table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction

from flask_babel import gettext as _
from markupsafe import Markup

Number = int | float
Formatter = Callable[..., str]

INK = "#1d2433"
MUTED = "#5b6478"
GRID = "#d9dde6"
BAR_FILL = "#bccbf2"
BAR_EDGE = "#2456c9"
# The markers differ in dash as well as colour, for readers who cannot tell the colours apart.
MARKERS = {
    "mean": {"stroke": "#b3261e", "stroke_dasharray": None},
    "median": {"stroke": "#1b6e3a", "stroke_dasharray": "7 4"},
    "mode": {"stroke": "#6a2c91", "stroke_dasharray": "2 3"},
}
# More modes than this are not drawn (a list of distinct numbers is all modes); the table has them.
MARKED_MODES = 3
FONT = {"font_family": "system-ui, sans-serif", "font_size": "12", "fill": INK}
# Width of a character of the 12-unit font, on average: how much room a label needs.
CHAR_WIDTH = 7


def format_number(value: Number, step: Number | None = None) -> str:
    """A number as a chart shows it: short ones in full, long ones in scientific form with enough
    digits to tell apart labels `step` apart. The one place to swap for locale formatting."""
    exact = Decimal(value)
    if exact == exact.to_integral_value() and len(str(abs(int(exact)))) <= 7:
        return str(int(exact))
    if Decimal("0.001") <= abs(exact) < Decimal(10**7):
        return f"{round(exact, 3).normalize():f}"
    digits = 3
    if step:
        digits = max(digits, exact.adjusted() - Decimal(step).adjusted() + 1)
    return format(exact, f".{min(digits, 20) - 1}e").replace("e+", "e")


# --- drawing ------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _open(tag: str, **attributes: object) -> Markup:
    """A start tag, unclosed; attribute names use _ for - (class_ for class), None leaves one out."""
    parts = [
        Markup('{}="{}"').format(
            name.rstrip("_").replace("_", "-"), _number(value) if isinstance(value, float) else value
        )
        for name, value in attributes.items()
        if value is not None
    ]
    return Markup("<{} {}").format(tag, Markup(" ").join(parts))


def _element(tag: str, content: str | None = None, **attributes: object) -> Markup:
    """One SVG element; Markup.format escapes its text and attribute values."""
    if content is None:
        return _open(tag, **attributes) + Markup("/>")
    return _open(tag, **attributes) + Markup(">{}</{}>").format(content, tag)


def _group(css_class: str, children: Iterable[Markup]) -> Markup:
    return Markup('<g class="{}">').format(css_class) + Markup("").join(children) + Markup("</g>")


def _svg(name: str, width: int, height: int, title: str, description: str, body: Iterable[Markup]) -> Markup:
    opening = _open(
        "svg",
        viewBox=f"0 0 {width} {height}",
        width="100%",
        role="img",
        aria_labelledby=f"{name}-title {name}-desc",
        class_=f"chart-{name}",
        **FONT,
    )
    return (
        opening
        + Markup(">")
        + _element("title", title, id=f"{name}-title")
        + _element("desc", description, id=f"{name}-desc")
        + _element("rect", x=0, y=0, width=width, height=height, fill="#fff")
        + Markup("").join(body)
        + Markup("</svg>")
    )


class Scale:
    """Values to x coordinates, exact until the last step: the values may have hundreds of digits."""

    def __init__(self, low: Number, high: Number, left: float, right: float):
        self.low, self.span = Fraction(low), Fraction(high) - Fraction(low) or Fraction(1)
        self.left, self.width = left, right - left

    def __call__(self, value: Number | Fraction) -> float:
        return self.left + float((Fraction(value) - self.low) / self.span) * self.width


def round_step(at_least: Fraction) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `at_least`."""
    power = 1
    while True:
        for factor in (1, 2, 5):
            if factor * power >= at_least:
                return factor * power
        power *= 10


def _spaced(labels: Sequence[tuple[float, str]], room: float) -> list[tuple[float, str]]:
    """Every k-th label, k the smallest that keeps the widest label clear of its neighbours."""
    if not labels:
        return []
    widest = max(len(text) for _x, text in labels) * CHAR_WIDTH + 10
    every = max(1, -(-int(widest * len(labels)) // int(room)))
    return list(labels[::every])


# --- the histogram ----------------------------------------------------------------------------------


def histogram_svg(
    histogram: dict[str, list[int]],
    *,
    mean: Number | None = None,
    median: Number | None = None,
    modes: list[int] | None = None,
    number: Formatter = format_number,
) -> Markup:
    """Bars of the histogram operation's counts on a count axis, with the mean, median and modes (those
    given) as vertical lines. An integer k fills [k, k+1) of the x axis, so a value sits at k + 1/2:
    a mode stands in the middle of its bar."""
    edges, counts = histogram["edges"], histogram["counts"]
    width, height = 480, 270
    left, right, top, bottom = 56, 468, 44, 236
    x = Scale(edges[0], edges[-1], left, right)
    y_step = round_step(Fraction(max(max(counts), 1), 4))
    y_top = -(-max(counts) // y_step) * y_step or y_step

    def y(count: int) -> float:
        return bottom - (bottom - top) * count / y_top

    grid, y_labels = [], []
    for tick in range(0, y_top + 1, y_step):
        grid.append(_element("line", x1=left, x2=right, y1=y(tick), y2=y(tick), stroke=GRID))
        y_labels.append(_element("text", number(tick), x=left - 6, y=y(tick) + 4, text_anchor="end"))
    bars = [
        _element(
            "rect",
            x=x(low) + 0.5,
            y=y(count),
            width=max(x(high) - x(low) - 1, 0.5),
            height=bottom - y(count),
            fill=BAR_FILL,
            stroke=BAR_EDGE,
            class_="bar",
            data_low=low,
            data_count=count,
        )
        for (low, high), count in zip(itertools.pairwise(edges), counts, strict=True)
    ]
    bin_width = edges[1] - edges[0]
    # One bin per value: label the values under their bars; wider bins: label the edges.
    ticks = [(k, k + Fraction(1, 2)) for k in edges[:-1]] if bin_width == 1 else [(e, e) for e in edges]
    x_labels = _spaced([(x(at), number(value, bin_width)) for value, at in ticks], right - left)
    x_axis = [_element("line", x1=left, x2=right, y1=bottom, y2=bottom, stroke=INK)] + [
        _element("text", text, x=at, y=bottom + 18, text_anchor="middle") for at, text in x_labels
    ]

    shown_modes = modes if modes and len(modes) <= MARKED_MODES else []
    marks = [("mean", mean), ("median", median)] + [("mode", value) for value in shown_modes]
    markers = [
        _element(
            "line",
            x1=x(Fraction(value) + Fraction(1, 2)),
            x2=x(Fraction(value) + Fraction(1, 2)),
            y1=top - 6,
            y2=bottom,
            stroke_width=2,
            class_=f"marker marker-{kind}",
            data_value=str(value),
            **MARKERS[kind],
        )
        for kind, value in marks
        if value is not None
    ]
    entries = [
        (kind, label, value)
        for kind, label, value in (
            ("mean", _("Mean"), None if mean is None else number(mean)),
            ("median", _("Median"), None if median is None else number(median)),
            ("mode", _("Mode"), ", ".join(number(m) for m in shown_modes) or None),
        )
        if value is not None
    ]
    total = sum(counts)
    title = _("Histogram of %(count)s integers in %(bins)s bins") % {
        "count": number(total),
        "bins": number(len(counts)),
    }
    description = _("Bins %(width)s wide from %(low)s to %(high)s; the fullest holds %(most)s.") % {
        "width": number(bin_width),
        "low": number(edges[0]),
        "high": number(edges[-1]),
        "most": number(max(counts)),
    }
    if entries:
        description += " " + "; ".join(f"{label} {value}" for _kind, label, value in entries) + "."
    return _svg(
        "histogram",
        width,
        height,
        title,
        description,
        [
            _group("grid", grid),
            _group("bars", bars),
            _group("axis axis-x", x_axis),
            _group("axis axis-y", y_labels),
            _group("markers", markers),
            _legend(entries, left, 16),
        ],
    )


def _legend(entries: Sequence[tuple[str, str, str]], left: float, top: float) -> Markup:
    """A line sample and its words for each marker, in a row above the plot."""
    items, at = [], left
    for kind, label, value in entries:
        text = f"{label} {value}"
        items.append(
            _element(
                "line",
                x1=at,
                x2=at + 22,
                y1=top,
                y2=top,
                stroke_width=2,
                **MARKERS[kind],
            )
        )
        items.append(_element("text", text, x=at + 27, y=top + 4))
        at += 27 + len(text) * CHAR_WIDTH + 16
    return _group("legend", items)


# --- the box plot ----------------------------------------------------------------------------------


def box_plot_svg(box: dict[str, Number | list[int]], *, number: Formatter = format_number) -> Markup:
    """The box_plot operation drawn on one axis: box from Q1 to Q3, median line, whiskers to the
    most extreme numbers within the fences, a dot per listed outlier. A whisker that falls inside the
    box (a quartile interpolated across a wide gap) is not drawn."""
    low_outliers, high_outliers = box["extremes_low"], box["extremes_high"]
    # The outliers listed are the most extreme: the first low one is the minimum, the last high the maximum.
    lowest = low_outliers[0] if low_outliers else box["whisker_low"]
    highest = high_outliers[-1] if high_outliers else box["whisker_high"]
    width, height = 480, 150
    # Room at both ends for half a long axis label, centred under the first and last tick.
    left, right, middle, half = 36, 444, 56, 22
    x = (
        Scale(lowest, highest, left, right)
        if highest > lowest
        else Scale(lowest - 1, lowest + 1, left, right)
    )

    step = round_step(max(Fraction(highest - lowest, 5), Fraction(1)))
    first = -(-lowest // step) * step
    ticks = range(first, highest + 1, step)
    axis_y = 104
    axis = [_element("line", x1=left, x2=right, y1=axis_y, y2=axis_y, stroke=INK)]
    for at, text in _spaced([(x(tick), number(tick, step)) for tick in ticks], right - left):
        axis.append(_element("line", x1=at, x2=at, y1=axis_y, y2=axis_y + 5, stroke=INK))
        axis.append(_element("text", text, x=at, y=axis_y + 20, text_anchor="middle"))

    q1, q3 = x(box["q1"]), x(box["q3"])
    whiskers = []
    for end, edge, outside in (
        (box["whisker_low"], q1, box["whisker_low"] < box["q1"]),
        (box["whisker_high"], q3, box["whisker_high"] > box["q3"]),
    ):
        if outside:
            whiskers.append(
                _element("line", x1=x(end), x2=edge, y1=middle, y2=middle, stroke=INK, class_="whisker")
            )
            whiskers.append(
                _element(
                    "line",
                    x1=x(end),
                    x2=x(end),
                    y1=middle - half / 2,
                    y2=middle + half / 2,
                    stroke=INK,
                    class_="whisker-cap",
                    data_value=str(end),
                )
            )
    parts = [
        _element(
            "rect",
            x=q1,
            y=middle - half,
            width=max(q3 - q1, 1.0),
            height=2 * half,
            fill=BAR_FILL,
            stroke=BAR_EDGE,
            stroke_width=1.5,
            class_="box",
        ),
        _element(
            "line",
            x1=x(box["median"]),
            x2=x(box["median"]),
            y1=middle - half,
            y2=middle + half,
            stroke=MARKERS["median"]["stroke"],
            stroke_width=3,
            class_="median",
            data_value=str(box["median"]),
        ),
    ]
    dots = [
        _element(
            "circle",
            cx=x(value),
            cy=middle,
            r=4,
            fill="none",
            stroke=INK,
            class_="outlier",
            data_value=str(value),
        )
        for value in [*low_outliers, *high_outliers]
    ]
    title = _("Box plot from %(low)s to %(high)s") % {"low": number(lowest), "high": number(highest)}
    description = _(
        "Quartiles %(q1)s, %(median)s (median) and %(q3)s; whiskers at %(whisker_low)s and "
        "%(whisker_high)s; %(below)s outliers below and %(above)s above."
    ) % {
        "q1": number(box["q1"]),
        "median": number(box["median"]),
        "q3": number(box["q3"]),
        "whisker_low": number(box["whisker_low"]),
        "whisker_high": number(box["whisker_high"]),
        "below": number(box["outliers_low"]),
        "above": number(box["outliers_high"]),
    }
    return _svg(
        "box-plot",
        width,
        height,
        title,
        description,
        [
            _group("axis axis-x", axis),
            _group("whiskers", whiskers),
            _group("box", parts),
            _group("outliers", dots),
        ],
    )
