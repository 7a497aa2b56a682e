"""A small HTTP client for the frontend's API and pages, as a user's program would use them.

Every answer of the JSON API that a test gets, through these helpers or through `requests` directly,
is checked against the API's OpenAPI document (see `check_every_api_answer`).
"""

from __future__ import annotations

import re
from typing import Any

import requests

from harness import openapi
from harness.waiting import eventually

TIMEOUT = 60


def check_every_api_answer() -> None:
    """Check each answer `requests` receives from a /api/ path against the OpenAPI document, so an
    API test fails on an answer the document does not describe (tests/conftest.py calls this once)."""
    send = requests.Session.send
    if getattr(send, "checks_api_answers", False):
        return

    def checked_send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        response = send(self, request, **kwargs)
        if not kwargs.get("stream"):
            openapi.check(
                request.method or "GET",
                request.url or "",
                response.status_code,
                response.headers.get("Content-Type", ""),
                response.content,
            )
        return response

    checked_send.checks_api_answers = True  # type: ignore[attr-defined]
    requests.Session.send = checked_send  # type: ignore[method-assign]


def submit(
    base_url: str, numbers: list[Any], operations: list[str] | None = None, **params: Any
) -> requests.Response:
    body: dict[str, Any] = {"numbers": numbers}
    if operations is not None:
        body["operations"] = operations
    return requests.post(f"{base_url}/api/requests", json=body, params=params, timeout=TIMEOUT)


def result(base_url: str, request_id: str, **params: Any) -> requests.Response:
    return requests.get(f"{base_url}/api/requests/{request_id}", params=params, timeout=TIMEOUT)


def cancel(base_url: str, request_id: str) -> requests.Response:
    return requests.delete(f"{base_url}/api/requests/{request_id}", timeout=TIMEOUT)


def until_done(base_url: str, request_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll GET /api/requests/<id> until it is no longer pending."""

    def done() -> dict[str, Any] | None:
        response = result(base_url, request_id)
        assert response.status_code in (200, 202), response.text
        return response.json() if response.status_code == 200 else None

    return eventually(done, timeout=timeout, interval=0.3, what=f"result of {request_id}")


def compute(base_url: str, numbers: list[Any], operations: list[str] | None = None) -> dict[str, Any]:
    """Submit and return the finished result, following a 202 if the reply was slow."""
    response = submit(base_url, numbers, operations)
    assert response.status_code in (200, 202), response.text
    document = response.json()
    return document if response.status_code == 200 else until_done(base_url, document["id"])


def csrf_token(session: requests.Session, base_url: str) -> str:
    page = session.get(f"{base_url}/", timeout=TIMEOUT)
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the form has no CSRF token"
    return match.group(1)


def submit_form(
    session: requests.Session,
    base_url: str,
    numbers: str,
    operations: list[str],
    *,
    token: str | None = None,
    upload: tuple[str, bytes, str] | None = None,
) -> requests.Response:
    """Post the form; `upload` is a file (name, content, type) for the numbers_file field."""
    data: list[tuple[str, str]] = [("numbers", numbers), *[("operations", op) for op in operations]]
    data.append(("csrf_token", token if token is not None else csrf_token(session, base_url)))
    files = {"numbers_file": upload} if upload else None
    return session.post(f"{base_url}/", data=data, files=files, timeout=TIMEOUT, allow_redirects=False)


def result_page(session: requests.Session, base_url: str, response: requests.Response) -> str:
    """The result page a form post led to: shown at once, or after its pending page refreshed."""
    if response.status_code == 200:
        return response.text
    assert response.status_code == 303, response.text

    def done() -> str | None:
        page = session.get(base_url + response.headers["Location"], timeout=TIMEOUT)
        return page.text if page.status_code == 200 else None

    return eventually(done, timeout=120, what="the result page")
