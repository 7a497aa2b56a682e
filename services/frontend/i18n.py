"""The page in English and French (Flask-Babel): the language, its number and time formats, and
errors told in it.

The language is the one the visitor chose with the switch in the header (a cookie), else the best
match of the browser's Accept-Language, else English. The JSON API stays in English: its messages
are for programs, which read the codes. Translations live in translations/<language>/LC_MESSAGES
(messages.po, compiled to messages.mo; tests/shared/test_translations.py checks both are complete
and current).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from babel.numbers import get_decimal_symbol
from flask import Blueprint, Flask, Response, redirect, request
from flask_babel import Babel, format_datetime, format_decimal, format_timedelta, get_locale, gettext
from markupsafe import Markup, escape

from frontend import auth, charts
from qcompute import contract
from qcompute.messages import N_

LANGUAGES = {"en": "English", "fr": "Français"}
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "qcompute_language"
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600
PLACEHOLDERS = re.compile(r"%\((\w+)\)s")

blueprint = Blueprint("i18n", __name__)


def chosen_language() -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=chosen_language)
    app.register_blueprint(blueprint)
    app.jinja_env.filters.update(
        number=number,
        milliseconds=milliseconds,
        when=when,
        localized=localized,
        recorded_error=recorded_error,
    )
    app.after_request(_vary)

    @app.context_processor
    def language() -> dict[str, Any]:
        return {"languages": LANGUAGES, "language": str(get_locale())}


@blueprint.get("/language/<code>")
def switch(code: str) -> Any:
    """The header's switch: remember the choice and go back to the page it was made on."""
    # Only a path of this site: never a way to send someone elsewhere.
    response = redirect(auth.local_path(request.args.get("next", "/")) or "/", 303)
    if code in LANGUAGES:
        secure = bool(request.environ.get("wsgi.url_scheme") == "https")
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            max_age=LANGUAGE_COOKIE_SECONDS,
            samesite="Lax",
            secure=secure,
            httponly=True,
        )
    return response


def _vary(response: Response) -> Response:
    # A page's words depend on these headers: a shared cache must not give one visitor another's.
    if response.mimetype == "text/html":
        response.vary.update(("Accept-Language", "Cookie"))
    return response


def localized(error: Exception | str) -> str:
    """An error's (or a `Sentence`'s) words in the page's language (see qcompute.messages)."""
    template = getattr(error, "template", None)
    if template is None:
        # A plain str, autoescaped where a template shows it (a template's _() would trust it as
        # markup); never gettext(""), which is the catalogue's header.
        return gettext(str(error)) if str(error) else ""
    return gettext(template, **{name: _value(value) for name, value in error.params.items()})


def _value(value: Any) -> str:
    """A sentence's value as the page shows it: numbers grouped, names of things (a queue's role, an
    operation) translated when the catalogue has them, anything else (what a person typed) as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number(value)
    # Never gettext(""): that is the catalogue's header.
    return gettext(value) if isinstance(value, str) and value else str(value)


# A result's errors, as the worker recorded them (in English, in the log for good), by their code.
RECORDED_ERRORS = {
    "cancelled": N_("cancelled before it was computed"),
    "result_too_large": N_("this result could have up to %(digits)s digits; at most %(limit)s are computed"),
}
# The words of a request's status in the history.
STATUS_WORDS = (N_("done"), N_("error"), N_("cancelled"))


def recorded_error(error: dict[str, Any]) -> str:
    """A recorded error in the page's language when its code is known, else as the worker wrote it."""
    template = RECORDED_ERRORS.get(error.get("code", ""))
    values = {name: error.get(name) for name in PLACEHOLDERS.findall(template or "")}
    if template is None or None in values.values():
        return error.get("message", "")
    return gettext(template, **{name: _value(value) for name, value in values.items()})


def number(value: Any) -> str:
    """A count or limit with the language's digit grouping (exact results are never grouped)."""
    return format_decimal(value) if isinstance(value, int | float) else str(value)


def chart_number(value: Any, step: Any = None) -> str:
    """A chart's number (charts.format_number: in full when short, else scientific) with the
    language's decimal sign."""
    return charts.format_number(value, step).replace(".", get_decimal_symbol(get_locale()))


def milliseconds(value: float) -> str:
    return gettext("%(ms)s ms", ms=format_decimal(value, format="#,##0.##"))


def when(timestamp: str, now: datetime | None = None) -> Markup:
    """A moment as people say it ("2 minutes ago"), the full time on hover; app.js rewrites both in
    the viewer's own time zone and keeps "ago" current."""
    moment = contract.parse_time(timestamp)
    ago = moment - (now or datetime.now(UTC))
    full = format_datetime(moment, "medium", rebase=False) + " UTC"
    text = format_timedelta(ago, add_direction=True, threshold=0.9)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(escape(timestamp), full, text)
