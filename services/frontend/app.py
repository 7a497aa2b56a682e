"""The frontend's application factory: settings, clients, reply channel, blueprints, error pages.

gunicorn calls `create_app()` once in each worker process (the app is not preloaded), so every
process owns its own AWS clients and its own reply queue.
"""

from __future__ import annotations

import atexit
import os
import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from frontend import api, auth, health, i18n, memory, openapi, web
from frontend.limits import Limited, Limits
from frontend.replies import ReplyChannel
from frontend.settings import FrontendSettings
from frontend.shared_replies import SharedReplies
from frontend.submissions import Overloaded, Submissions, Unavailable
from qcompute import aws, contract, logs
from qcompute.accounts import AccountStore
from qcompute.messages import N_

log = logs.get_logger("frontend")
csrf = CSRFProtect()

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides environment settings by name (tests pass one)."""
    config = dict(config or {})
    settings = FrontendSettings.from_env({**os.environ, **{k: str(v) for k, v in config.items()}})
    logs.configure("frontend", settings.log_level, settings.log_format)
    contract.allow_big_integers()

    clients = aws.connect(settings.stack, pool_size=50)
    channel = ReplyChannel(
        clients.sqs,
        clients.names,
        poll_seconds=settings.reply_poll_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        idle_seconds=settings.reply_queue_idle_seconds,
        stall_seconds=settings.reply_stall_seconds,
        pending_timeout_seconds=settings.pending_timeout_seconds,
        shared=SharedReplies(settings.lock_dir),
    )
    channel.start()
    atexit.register(channel.close)

    app = Flask(__name__)
    app.json.sort_keys = False  # results keep the order of the operations asked for
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        WTF_CSRF_TIME_LIMIT=None,  # a form left open overnight still submits
        SESSION_COOKIE_NAME="qcompute_session",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.domain),  # behind the TLS proxy: never sent over HTTP
        PERMANENT_SESSION_LIFETIME=int(settings.session_hours * 3600),
        SETTINGS=settings,
    )
    app.config.update({k: v for k, v in config.items() if k.isupper()})
    app.extensions["submissions"] = Submissions(clients, settings, channel, memory.reserve_large)
    app.extensions["replies"] = channel
    app.extensions["large_slots"] = memory.LargeRequestSlots(
        settings.lock_dir, settings.large_requests_at_once, settings.large_request_wait_seconds
    )
    app.extensions["limits"] = Limits(settings.lock_dir)
    app.extensions["accounts"] = auth.AccountsCache(
        AccountStore(clients.ssm, clients.names), settings.accounts_refresh_seconds
    )
    app.wsgi_app = auth.TrustedProxies(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]

    # Before CSRFProtect's own hook, which reads the form: a large body waits for its turn first.
    # Sign-in comes first of all: a stranger's large body is refused before it is read.
    app.before_request(_bind_request_id)
    app.before_request(auth.require_user)
    app.before_request(lambda: memory.reserve_if_large_body(request.content_length, request.method))
    app.teardown_request(memory.end_of_request)
    csrf.init_app(app)
    i18n.init_app(app)
    csrf.exempt(api.blueprint)  # JSON only, no cookies: see api.py
    app.register_blueprint(web.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(auth.blueprint)
    app.after_request(_add_headers)
    _register_error_handlers(app)
    log.info("frontend_started", stack=clients.names.stack, reply_queue=channel.queue_url)
    return app


def _bind_request_id() -> None:
    structlog.contextvars.clear_contextvars()
    g.request_id = uuid.uuid4().hex
    # The client as the trusted proxy saw it (auth.TrustedProxies), else the connection's own address.
    structlog.contextvars.bind_contextvars(request_id=g.request_id, client=request.remote_addr)


def _add_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    # A submission rebinds request_id to the compute request's id: one grep then follows it
    # from the access log through worker and logger.
    response.headers["X-Request-ID"] = structlog.contextvars.get_contextvars().get("request_id", "")
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


# What a page says for these statuses (werkzeug's own descriptions are English, and for programs).
PAGE_MESSAGES = {
    404: N_("There is no page at this address."),
    405: N_("This address does not take that kind of request."),
}


def _error(status: int, code: str, message: str | Exception, field: str | None = None) -> tuple[Any, int]:
    """The API's JSON error (English, for programs) or an error page in the visitor's language."""
    if _wants_json():
        return jsonify(error={"code": code, "message": str(message), "field": field}), status
    text = i18n.localized(message) if isinstance(message, Exception) else gettext(message)
    return render_template("error.html", status=status, message=text), status


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> Any:
        if request.endpoint == "auth.signin":
            return auth.signin_page(
                gettext("the form expired or did not come from this site; sign in again"), 400
            )
        return web.form_page(
            gettext("the form expired or did not come from this site; check your input and submit again"),
            field="form",
            status=400,
        )

    @app.errorhandler(413)
    def too_large(error: HTTPException) -> Any:
        limit = app.config["MAX_CONTENT_LENGTH"]
        message = N_("the request body is larger than %(limit)s bytes; send fewer numbers")
        if _wants_json():
            return _error(413, "body_too_large", message % {"limit": f"{limit:,}"}, "body")
        text = gettext(message, limit=i18n.number(limit))
        return web.form_page(text, field="numbers", status=413, keep_input=False)

    @app.errorhandler(Unavailable)
    def unavailable(error: Unavailable) -> Any:
        return _error(503, "unavailable", error)

    @app.errorhandler(Limited)
    def limited(error: Limited) -> Any:
        retry = {"Retry-After": str(error.retry_after)}
        if _wants_json():
            body, status = _error(429, "rate_limited", error)
            return body, status, retry
        if request.endpoint == "auth.signin":
            return (*auth.signin_page(i18n.localized(error), 429), retry)
        return (*web.form_page(i18n.localized(error), field="form", status=429), retry)

    @app.errorhandler(Overloaded)
    def overloaded(error: Overloaded) -> Any:
        retry = {"Retry-After": "30"}
        if _wants_json():
            body, status = _error(503, "overloaded", error)
            return body, status, retry
        return (*web.form_page(i18n.localized(error), field="form", status=503), retry)

    @app.errorhandler(memory.Busy)
    def busy(error: memory.Busy) -> Any:
        body, status = _error(503, "busy", error)
        return body, status, {"Retry-After": "5"}

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        code = error.code or 500
        name = (error.name or "error").lower().replace(" ", "_")
        if _wants_json() or code not in PAGE_MESSAGES:
            return _error(code, name, error.description or name)
        return _error(code, name, PAGE_MESSAGES[code])

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        if isinstance(error, BotoCoreError | ClientError):
            log.error("aws_error", error=str(error))
            return _error(503, "unavailable", N_("a backend service cannot be reached; please try again"))
        log.exception("unhandled_error")
        return _error(500, "internal", N_("something went wrong on our side; the error has been logged"))
