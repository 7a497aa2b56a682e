"""The API's OpenAPI document, served as it is written; exact integers as strings for any client."""

from __future__ import annotations

import json

import pytest
import requests
from openapi_spec_validator import validate

from frontend.openapi import DOCUMENT
from harness import openapi

pytestmark = pytest.mark.integration


def test_the_openapi_document_is_served_and_valid_openapi_3_1(pipeline) -> None:
    response = requests.get(f"{pipeline.url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    served = response.json()
    assert served == json.loads(json.dumps(DOCUMENT))
    assert served["openapi"].startswith("3.1")
    validate(served)  # raises on anything OpenAPI 3.1 does not allow


def test_the_checker_refuses_answers_the_document_does_not_describe() -> None:
    url = "http://frontend/api/requests/0190c9c2-0000-7000-8000-000000000000"
    good = b'{"id": "x", "status": "pending"}'
    openapi.check("GET", url, 202, "application/json", good)
    with pytest.raises(openapi.Mismatch, match="does not declare"):
        openapi.check("GET", url, 418, "application/json", good)
    with pytest.raises(openapi.Mismatch, match="status"):
        openapi.check("GET", url, 202, "application/json", b'{"id": "x", "status": "later"}')
    result = {
        "id": "x",
        "status": "done",
        "results": {"sum": {"not": "a number"}},
        "errors": {},
        "operations": ["sum"],
        "count": 1,
        "timings": {"submitted_at": "t", "total_ms": 1},
        "worker": "w",
    }
    with pytest.raises(openapi.Mismatch, match="results"):
        openapi.check("GET", url, 200, "application/json", json.dumps(result).encode())
    with pytest.raises(openapi.Mismatch, match="no PATCH"):
        openapi.check("PATCH", url, 200, "application/json", good)
    with pytest.raises(openapi.Mismatch, match="not application/json"):
        openapi.check("GET", url, 202, "text/html", good)
