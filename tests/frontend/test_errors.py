"""Errors never show a stack trace: the app answers in the client's language (HTML or JSON)."""

from __future__ import annotations

import pytest

from frontend.app import create_app
from harness.services import SECRET_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def app(stack):
    app = create_app({"STACK_NAME": stack.name, "AWS_REGION": "us-east-1", "SECRET_KEY": SECRET_KEY})

    @app.get("/boom")
    @app.get("/api/boom")
    def boom():  # a stand-in for any bug in a view
        raise RuntimeError("secret internals: /etc/passwd")

    yield app
    app.extensions["replies"].close()


@pytest.mark.parametrize(("path", "kind"), [("/boom", "text/html"), ("/api/boom", "application/json")])
def test_an_unexpected_error_is_a_plain_500(app, path: str, kind: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 500
    assert response.mimetype == kind
    body = response.get_data(as_text=True)
    assert "something went wrong on our side" in body
    assert "Traceback" not in body
    assert "secret internals" not in body
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_settings_errors_name_the_variable(stack) -> None:
    from qcompute.settings import ConfigError

    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 16 characters"):
        create_app({"STACK_NAME": stack.name, "AWS_REGION": "us-east-1", "SECRET_KEY": "short"})
