"""The web pages: the form, the result page and the history page."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import gettext

from frontend import auth, charts, i18n, trends
from frontend.api import waiting_slot
from frontend.i18n import localized
from frontend.replies import QUEUE_LIST_MAX_AGE_SECONDS
from frontend.status import stack_status
from qcompute.messages import N_
from qcompute.operations import OPERATIONS
from qcompute.validation import InputError, parse_numbers_text, parse_operations

blueprint = Blueprint("web", __name__)
# The result page's charts (templates/_charts.html) draw with these.
blueprint.add_app_template_global(partial(charts.histogram_svg, number=i18n.chart_number), "histogram_chart")
blueprint.add_app_template_global(partial(charts.box_plot_svg, number=i18n.chart_number), "box_plot_chart")

# Seconds between refreshes of a page whose result is not back yet (without JavaScript: with it, the
# page waits for its result by long polling) and of the status page.
REFRESH_SECONDS = 2
STATUS_REFRESH_SECONDS = 5
# How long one long poll of a pending page waits. Long polling, not Server-Sent Events: each poll is a
# bounded, ordinary GET that any frontend process or container can answer from the S3 log (through the
# proxy, across rollouts), and it holds a gunicorn thread only while it waits, within the same bound
# of waiting slots as the API's GET ?wait= (api.waiting_slot). An event stream would hold a thread for
# as long as the page stays open.
LIVE_WAIT_SECONDS = 20
# A result known from a reply waits this long for its log record, which holds the input numbers and
# is usually written within tens of milliseconds; then the page shows it without them, saying why.
NUMBERS_GRACE_SECONDS = 0.5


def _submissions() -> Any:
    return current_app.extensions["submissions"]


def form_page(
    error: str | None = None, *, field: str | None = None, status: int = 200, keep_input: bool = True
) -> tuple[str, int]:
    """The form, showing what the user typed and ticked, with any error next to its field."""
    posted = keep_input and request.method == "POST"
    return render_template(
        "index.html",
        numbers=request.form.get("numbers", "") if posted else "",
        selected=set(request.form.getlist("operations")) if posted else set(OPERATIONS),
        operations=OPERATIONS.values(),
        limits=current_app.config["SETTINGS"].limits,
        error=error,
        error_field=field,
    ), status


@blueprint.get("/")
def index() -> Any:
    return form_page()


@blueprint.post("/")
def submit() -> Any:
    settings = current_app.config["SETTINGS"]
    try:
        numbers = parse_numbers_text(_typed_or_uploaded(), settings.limits)
        operations = parse_operations(request.form.getlist("operations"))
        waiter = auth.submit(numbers, operations)
    except InputError as error:
        return form_page(localized(error), field=error.field, status=400)
    outcome = _submissions().wait(waiter, settings.reply_wait_seconds)
    permalink = url_for("web.result", request_id=waiter.request_id)
    if outcome is None:
        return redirect(permalink, 303)
    # Shown at once, not redirected: another process may serve the redirect before the logger has
    # written the result. app.js puts the permalink in the address bar.
    return render_template("result.html", outcome=outcome, permalink=permalink)


def _typed_or_uploaded() -> str:
    """The integers typed in the box, or those of an uploaded text or CSV file."""
    typed = request.form.get("numbers", "")
    upload = request.files.get("numbers_file")
    if upload is None or not upload.filename:
        return typed
    if typed.strip():
        raise InputError("two_inputs", N_("type the integers or upload a file, not both"), "numbers")
    try:
        # utf-8-sig: spreadsheets often start their CSV files with a byte-order mark.
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            "invalid_file",
            N_("%(file)s is not a text file (UTF-8 expected)"),
            "numbers",
            file=repr(upload.filename),
        ) from None


@blueprint.get("/requests/<request_id>")
def result(request_id: str) -> Any:
    """A request's page. `?wait=S` (up to LIVE_WAIT_SECONDS) holds a pending answer until the result is
    there: the pending page's script asks so, and swaps the answer in without a reload (app.js)."""
    settings = current_app.config["SETTINGS"]
    live_wait = _live_wait()
    # Waiting for the numbers holds a thread too: only within a waiting slot, like a live wait.
    with waiting_slot(max(live_wait, NUMBERS_GRACE_SECONDS)) as granted:
        lookup = _submissions().find(
            request_id,
            auth.viewer(),
            with_numbers=True,
            wait=min(granted, live_wait),
            numbers_grace=NUMBERS_GRACE_SECONDS if granted else 0,
        )
    if lookup.outcome is not None:
        return render_template(
            "result.html", outcome=lookup.outcome, permalink=url_for("web.result", request_id=request_id)
        )
    if lookup.status == "pending":
        page = render_template(
            "pending.html", request_id=request_id, refresh=REFRESH_SECONDS, live_wait=LIVE_WAIT_SECONDS
        )
        return page, 202, {"Retry-After": "1"}
    if lookup.status == "expired":
        return render_template(
            "pending.html", request_id=request_id, expired=True, timeout=settings.pending_timeout_seconds
        ), 410
    return render_template(
        "error.html", status=404, message=gettext("There is no request with this id.")
    ), 404


def _live_wait() -> float:
    try:
        return min(max(float(request.args.get("wait", 0)), 0), LIVE_WAIT_SECONDS)
    except ValueError:
        return 0


@blueprint.post("/requests/<request_id>/cancel")
def cancel(request_id: str) -> Any:
    """The pending page's Cancel button (a form, with its CSRF token): back to the request's page,
    which shows it cancelled once the worker has skipped it."""
    if _submissions().cancel(request_id, auth.viewer()) == "unknown":
        return render_template(
            "error.html", status=404, message=gettext("There is no request with this id.")
        ), 404
    return redirect(url_for("web.result", request_id=request_id), 303)


@blueprint.get("/history")
def history() -> Any:
    settings = current_app.config["SETTINGS"]
    before = request.args.get("before")
    entries, next_cursor = _submissions().history(before, settings.history_page_size, auth.viewer())
    return render_template("history.html", entries=entries, next_cursor=next_cursor, first_page=not before)


@blueprint.get("/status")
def status() -> Any:
    snapshot = stack_status(_submissions())
    formats = trends.Formats(
        number=lambda value: i18n.number(round(value) if value >= 100 else round(value, 2))
    )
    charts = trends.charts(snapshot["trends"], formats) if snapshot["trends"] else None
    return render_template(
        "status.html",
        status=snapshot,
        charts=charts,
        refresh=STATUS_REFRESH_SECONDS,
        reply_queues_every=QUEUE_LIST_MAX_AGE_SECONDS,
    )


@blueprint.app_context_processor
def page_constants() -> dict[str, Any]:
    # A page shows at most this many values of a list; the JSON API has them all.
    return {
        "labels": OPERATIONS,
        "page_items": 1000,
        "app_version": current_app.config["SETTINGS"].app_version,
    }


@blueprint.app_template_filter("show")
def show(value: Any) -> str:
    """A result as text: integers in full, floats in Python's shortest exact form, lists and objects
    joined."""
    if isinstance(value, list):
        return ", ".join(show(item) for item in value)
    if isinstance(value, dict):
        # An object result (histogram, box_plot) on one line, in the API's field names; an empty list
        # (no outliers listed) is left out.
        return "; ".join(f"{key}: {show(item)}" for key, item in value.items() if item != [])
    return repr(value) if isinstance(value, float) else str(value)
