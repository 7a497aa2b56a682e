"""Every answer of the JSON API checked against its OpenAPI document (services/frontend/openapi.py):
its status code must be one the document declares for the path and method, its body must match
that answer's schema.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from frontend.openapi import DOCUMENT

# Bodies larger than this are checked with every list cut to its first items: a million results
# would take minutes to check one by one, and their first thousand show the shape as well.
FULL_CHECK_BYTES = 1_000_000
KEPT_ITEMS = 1_000


class Mismatch(AssertionError):
    """An API answer the OpenAPI document does not describe."""


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


_PATHS = [(template, _pattern(template)) for template in DOCUMENT["paths"]]


@cache
def _validator(template: str, method: str, status: str) -> Draft202012Validator:
    schema = DOCUMENT["paths"][template][method]["responses"][status]["content"]["application/json"]["schema"]
    # The components travel with the schema, so its "#/components/schemas/..." references resolve.
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def _cut(value: Any) -> Any:
    if isinstance(value, list):
        return [_cut(item) for item in value[:KEPT_ITEMS]]
    if isinstance(value, dict):
        return {key: _cut(item) for key, item in value.items()}
    return value


# The proxy's own answers when no frontend can take the request (one restarting, say): not the API's.
PROXY_STATUSES = (502, 504)


def check(method: str, url: str, status: int, content_type: str, body: bytes) -> None:
    """Raise Mismatch unless the document declares this answer and its body matches the schema."""
    path = urlsplit(url).path
    if not path.startswith("/api/") or status in PROXY_STATUSES:
        return
    where = f"{method} {path} answered {status}"
    try:
        document = json.loads(body)
    except ValueError:
        raise Mismatch(f"{where} with a body that is not JSON: {body[:200]!r}") from None
    if not content_type.startswith("application/json"):
        raise Mismatch(f"{where} as {content_type!r}, not application/json")
    template = next((template for template, pattern in _PATHS if pattern.match(path)), None)
    operation = DOCUMENT["paths"][template].get(method.lower()) if template else None
    if operation is None:
        # Outside the API (an unknown path, a method it has not): the generic error, 404 or 405.
        if status not in (404, 405):
            raise Mismatch(f"{where}, but the document has no {method} {path}")
        validator = Draft202012Validator(
            {"$ref": "#/components/schemas/Error", "components": DOCUMENT["components"]}
        )
    else:
        if str(status) not in operation["responses"]:
            raise Mismatch(f"{where}, a status the document does not declare for it")
        validator = _validator(template, method.lower(), str(status))
    if len(body) > FULL_CHECK_BYTES:
        document = _cut(document)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    if errors:
        details = "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}" for e in errors
        )
        raise Mismatch(f"{where} with a body the document does not describe: {details}")
