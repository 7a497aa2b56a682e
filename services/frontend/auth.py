"""Who is asking: the access mode, sign-in and sign-out, sessions, API tokens and the trusted proxy.

- `open`: anyone who reaches the page may use all of it, as one shared "everyone" with admin rights.
- `accounts`: people sign in (a signed session cookie, Flask's own); programs send
  `Authorization: Bearer qc_...`. The API takes tokens only, never the cookie, so a cross-site page
  cannot use someone's session there (see api.py). Accounts live in SSM (qcompute.accounts).
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext
from werkzeug.middleware.proxy_fix import ProxyFix

from frontend.limits import Limited, Quota
from frontend.replies import Waiter
from frontend.submissions import EVERYONE, Unavailable, Viewer
from qcompute import accounts, logs
from qcompute.messages import N_

log = logs.get_logger("frontend")
blueprint = Blueprint("auth", __name__)

# Reachable without signing in: the sign-in page itself, health checks, and the page's files.
# The API's description is public: it holds nothing but what the README says.
PUBLIC_ENDPOINTS = {
    "auth.signin",
    "auth.signin_form",
    "health.healthz",
    "health.readyz",
    "static",
    "openapi.document",
}
ADMIN_ENDPOINTS = {"web.status", "api.status"}
WRONG = N_("wrong name or password")  # the same words whether or not the name exists


@dataclass(frozen=True)
class User:
    name: str  # "" for everyone in open mode
    admin: bool

    @property
    def limit_key(self) -> str:
        """Whose quota a submission counts against: the account, or the client address if open."""
        return f"user:{self.name}" if self.name else f"address:{request.remote_addr}"


ANYONE = User("", admin=True)


class AccountsCache:
    """All accounts, read from SSM at most every `refresh_seconds`; the last good copy is kept while
    SSM cannot be reached (a revocation then waits for SSM, a sign-in does not)."""

    def __init__(self, store: accounts.AccountStore, refresh_seconds: float) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.lock = threading.Lock()
        self.accounts: dict[str, accounts.Account] | None = None
        self.read_at = 0.0

    def get(self) -> dict[str, accounts.Account]:
        with self.lock:
            if self.accounts is None or time.monotonic() - self.read_at >= self.refresh_seconds:
                try:
                    self.accounts = self.store.load()
                    self.read_at = time.monotonic()
                except (BotoCoreError, ClientError) as error:
                    log.error("accounts_unreadable", error=str(error))
                    if self.accounts is None:
                        raise Unavailable(
                            N_("the accounts cannot be read; please try again shortly")
                        ) from error
            return self.accounts


def _cache() -> AccountsCache:
    return current_app.extensions["accounts"]


def current_user() -> User | None:
    """The user of this request, found once; None if nobody is signed in (accounts mode)."""
    if "user" not in g:
        g.user = _find_user()
    return g.user


def _find_user() -> User | None:
    settings = current_app.config["SETTINGS"]
    if settings.access_mode == "open":
        return ANYONE
    if request.blueprint == "api":
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        owner = accounts.token_owner(_cache().get(), token.strip()) if scheme.lower() == "bearer" else None
        return User(owner.name, owner.admin) if owner else None
    name = session.get("user")
    if not name or limits().is_signed_out(session.get("sid", "")):
        return None
    account = _cache().get().get(name)
    started = session.get("since", 0)
    if (
        account is None
        or session.get("stamp") != account.session_stamp
        or time.time() - started > settings.session_hours * 3600
    ):
        return None
    return User(account.name, account.admin)


def limits() -> Any:
    return current_app.extensions["limits"]


def viewer() -> Viewer:
    """Whose requests the current user may see (require_user has made sure there is one)."""
    user = current_user()
    assert user is not None
    if not user.admin:
        return Viewer(frozenset({user.name}))
    if current_app.config["SETTINGS"].access_mode == "open":
        return EVERYONE
    # "" too: requests made while the stack was open.
    return Viewer(frozenset({"", *_cache().get()}), everyone=True)


def submit(numbers: list[int], operations: list[str]) -> Waiter:
    """Submit for the current user, within the queue's backlog bound and the user's quota."""
    settings = current_app.config["SETTINGS"]
    user = current_user()
    assert user is not None
    submissions = current_app.extensions["submissions"]
    submissions.admit()
    limits().take(
        user.limit_key, len(numbers), Quota(settings.submissions_per_minute, settings.integers_per_minute)
    )
    return submissions.submit(numbers, operations, user.name)


def require_user() -> Any:
    """Before each request: sign-in first, admin pages for admins only."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    user = current_user()
    if user is None:
        if request.blueprint == "api":
            body = {"error": {"code": "unauthorized", "message": "send Authorization: Bearer <token>"}}
            return body, 401, {"WWW-Authenticate": 'Bearer realm="qcompute"'}
        return redirect(url_for("auth.signin_form", next=request.full_path.rstrip("?")), 303)
    if user.name:
        structlog.contextvars.bind_contextvars(user=user.name)
    if request.endpoint in ADMIN_ENDPOINTS and not user.admin:
        if request.blueprint == "api":
            return {"error": {"code": "forbidden", "message": "for admins only"}}, 403
        return render_template(
            "error.html", status=403, message=gettext("This page is for admins only.")
        ), 403
    return None


@blueprint.app_context_processor
def signed_in() -> dict[str, Any]:
    settings = current_app.config["SETTINGS"]
    user = g.get("user")
    return {"user": user, "accounts_mode": settings.access_mode == "accounts"}


# --- sign-in and sign-out ---------------------------------------------------------------------------


def signin_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    return render_template(
        "signin.html", error=error, name=request.form.get("name", ""), next=_next_path()
    ), status


def _next_path() -> str:
    """Where to go after signing in: a path of this site only, never another site."""
    return local_path(request.values.get("next", "")) or url_for("web.index")


def local_path(target: str) -> str | None:
    """`target` if it is a path of this site, else None: never another site, however written.
    Browsers drop tabs and new lines from URLs ("/\t/evil" is "//evil"), so no control character
    or space passes."""
    parts = urlsplit(target)
    if (
        not target.startswith("/")
        or target.startswith("//")
        or parts.scheme
        or parts.netloc
        or "\\" in target
        or any(ord(character) < 0x21 or ord(character) == 0x7F for character in target)
    ):
        return None
    return target


@blueprint.get("/signin")
def signin_form() -> Any:
    if current_app.config["SETTINGS"].access_mode == "open":
        return redirect(url_for("web.index"), 303)
    return signin_page()


@blueprint.post("/signin")
def signin() -> Any:
    settings = current_app.config["SETTINGS"]
    if settings.access_mode == "open":
        return redirect(url_for("web.index"), 303)
    name = request.form.get("name", "").strip().lower()
    password = request.form.get("password", "")
    address = f"address:{request.remote_addr}"
    tried = f"name:{name}"
    failures, wait = limits().signin_failures(address)
    if failures >= settings.signin_failures_allowed:
        raise Limited(N_("too many failed sign-ins from this address; try again later"), wait)
    # Guessing gets slower with each failure, from this address or at this name.
    slow = max(failures, limits().signin_failures(tried)[0]) - settings.signin_failures_before_delay + 1
    if slow > 0:
        time.sleep(min(slow, 5))
    account = _cache().get().get(name) if accounts.USER_NAME.fullmatch(name) else None
    if not accounts.password_matches(account, password):
        limits().signin_failed(address, tried)
        log.info("signin_failed", address=request.remote_addr)  # never the name or the password tried
        return signin_page(gettext(WRONG), 401)
    session.clear()
    session.permanent = True
    session.update(
        user=account.name, stamp=account.session_stamp, since=time.time(), sid=secrets.token_hex(16)
    )
    log.info("signed_in", user=account.name)
    return redirect(_next_path(), 303)


@blueprint.post("/signout")
def signout() -> Any:
    settings = current_app.config["SETTINGS"]
    if session.get("sid"):
        # The cookie is gone from this browser; a copy of it is refused too, until it would expire.
        limits().sign_out(session["sid"], session.get("since", 0) + settings.session_hours * 3600)
    session.clear()
    return redirect(url_for("auth.signin_form"), 303)


# --- the proxy in front ---------------------------------------------------------------------------


class TrustedProxies:
    """WSGI middleware: X-Forwarded-For and -Proto count only when the connection comes from one of
    the trusted proxies (host names, resolved now and then, or addresses); otherwise they are dropped."""

    # Names are looked up again this often, and at most once a second when an unknown address
    # connects: the proxy may start (or restart with a new address) after the frontend.
    RESOLVE_EVERY_SECONDS = 30.0
    RESOLVE_UNKNOWN_EVERY_SECONDS = 1.0

    def __init__(self, app: Any, proxies: tuple[str, ...]) -> None:
        self.app = app
        self.forwarded = ProxyFix(app, x_for=1, x_proto=1)
        self.proxies = proxies
        self.addresses: set[str] = set()
        self.resolved_at = -self.RESOLVE_EVERY_SECONDS

    def _is_trusted(self, address: str) -> bool:
        age = time.monotonic() - self.resolved_at
        if age >= self.RESOLVE_EVERY_SECONDS or (
            address not in self.addresses and age >= self.RESOLVE_UNKNOWN_EVERY_SECONDS
        ):
            found = set()
            for name in self.proxies:
                try:
                    found.add(str(ipaddress.ip_address(name)))
                except ValueError:
                    # No proxy of that name running (yet): nobody is trusted for it.
                    with contextlib.suppress(OSError):
                        found |= {info[4][0] for info in socket.getaddrinfo(name, None)}
            self.addresses, self.resolved_at = found, time.monotonic()
        return address in self.addresses

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.proxies and self._is_trusted(environ.get("REMOTE_ADDR", "")):
            return self.forwarded(environ, start_response)
        for header in (
            "HTTP_X_FORWARDED_FOR",
            "HTTP_X_FORWARDED_PROTO",
            "HTTP_X_FORWARDED_HOST",
            "HTTP_FORWARDED",
        ):
            environ.pop(header, None)
        return self.app(environ, start_response)
