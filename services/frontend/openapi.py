"""The JSON API described as an OpenAPI 3.1 document, served at GET /api/openapi.json.

Built from a dict rather than kept as a static file, so the wait cap and the operation names come
from the code that enforces them. The tests check every API answer they get against it
(tests/harness/openapi.py): a change of the API that is not described here fails them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, jsonify

from frontend.api import MAX_WAIT_SECONDS
from frontend.replies import QUEUE_LIST_MAX_AGE_SECONDS
from frontend.status import REPLY_QUEUES_SHOWN
from qcompute.contract import STATUSES
from qcompute.operations import OPERATIONS
from qcompute.stats import DEPTHS, PERCENTILES, QUEUES, RELATIVE_ERROR, WINDOW_MINUTES

blueprint = Blueprint("openapi", __name__, url_prefix="/api")

_INTEGER_TEXT = {"type": "string", "pattern": "^-?[0-9]+$"}
# An integer: a JSON number, or its decimal digits as a string (sent so, or asked for with ?integers=string).
_INTEGER = {"anyOf": [{"type": "integer"}, _INTEGER_TEXT]}
_VALUE = {"anyOf": [{"type": "integer"}, {"type": "number"}, _INTEGER_TEXT]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


_COUNTS = {"type": ["integer", "null"], "minimum": 0}


def _series_of(keys: Sequence[str], value: dict[str, Any], description: str = "") -> dict[str, Any]:
    """An object of series, one per key, each a value per minute of the last hour."""
    series = {"type": "array", "minItems": WINDOW_MINUTES, "maxItems": WINDOW_MINUTES, "items": value}
    return {
        "type": "object",
        **({"description": description} if description else {}),
        "required": list(keys),
        "additionalProperties": False,
        "properties": dict.fromkeys(keys, series),
    }


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("Error"))


_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before asking again", "schema": {"type": "string"}}
}

# Answers any endpoint may give: without a token (accounts mode), too many requests, AWS out of reach.
_COMMON = {
    "401": _error("no valid bearer token (a stack with accounts)"),
    "429": _error("too many requests or integers this minute; see Retry-After"),
    "503": _error("AWS out of reach, the queue too long or the process busy; see Retry-After"),
}

_WAIT = {
    "name": "wait",
    "in": "query",
    "description": f"seconds to wait for the result (0 to {MAX_WAIT_SECONDS:g})",
    "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
}
_INTEGERS = {
    "name": "integers",
    "in": "query",
    "description": "`string` writes every integer of `results` (and `numbers`) as a decimal string: "
    "exact in any client (JavaScript's numbers lose digits beyond 2^53)",
    "schema": {"type": "string", "enum": ["number", "string"], "default": "number"},
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}

SCHEMAS: dict[str, Any] = {
    "ErrorDetail": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "field": {"type": ["string", "null"]},
            "digits": {
                "type": "integer",
                "description": "result_too_large: the digits the result could have",
            },
            "limit": {
                "type": "integer",
                "description": "result_too_large: the digits a worker computes at most",
            },
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _ref("ErrorDetail")},
    },
    "Submission": {
        "type": "object",
        "required": ["numbers"],
        "additionalProperties": False,
        "properties": {
            "numbers": {"type": "array", "items": _INTEGER, "minItems": 1},
            "operations": {"type": "array", "items": {"type": "string", "enum": list(OPERATIONS)}},
        },
    },
    "Pending": {
        "type": "object",
        "required": ["id", "status"],
        "additionalProperties": False,
        "properties": {"id": {"type": "string"}, "status": {"const": "pending"}},
    },
    "Result": {
        "type": "object",
        "description": "A finished request: `results` and `errors` when done, `error` when it failed "
        "as a whole or was cancelled before it was computed.",
        "required": ["id", "status", "operations", "count", "timings", "worker"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": ["done", "error", "cancelled"]},
            "numbers": {"type": ["array", "null"], "items": _INTEGER, "description": "with ?numbers=1"},
            "results": {
                "type": "object",
                "properties": {"histogram": _ref("Histogram"), "box_plot": _ref("BoxPlot")},
                "additionalProperties": {"anyOf": [_VALUE, {"type": "array", "items": _VALUE}]},
            },
            "errors": {"type": "object", "additionalProperties": _ref("ErrorDetail")},
            "error": _ref("ErrorDetail"),
            "operations": {"type": "array", "items": {"type": "string"}},
            "count": {"type": ["integer", "null"]},
            "timings": {
                "type": "object",
                "required": ["submitted_at", "total_ms"],
                "properties": {
                    "submitted_at": {"type": "string"},
                    "received_at": {"type": "string"},
                    "computed_at": {"type": "string"},
                    "queued_ms": {"type": "number"},
                    "compute_ms": {"type": "number"},
                    "total_ms": {"type": "number"},
                },
            },
            "worker": {"type": "string"},
        },
    },
    "Expired": {
        "type": "object",
        "required": ["id", "status", "error"],
        "properties": {
            "id": {"type": "string"},
            "status": {"const": "expired"},
            "error": _ref("ErrorDetail"),
        },
    },
    "Cancelling": {
        "type": "object",
        "required": ["id", "status"],
        "additionalProperties": False,
        "properties": {"id": {"type": "string"}, "status": {"enum": ["cancelling", "cancelled"]}},
    },
    "Operations": {
        "type": "object",
        "required": ["operations"],
        "properties": {
            "operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "label"],
                    "properties": {"name": {"type": "string"}, "label": {"type": "string"}},
                },
            }
        },
    },
    "Histogram": {
        "type": "object",
        "description": "Bins of equal integer width over [min, max]: bin i counts the numbers x with "
        "edges[i] <= x < edges[i+1] (one bin per value when the range holds at most 40 values; at most "
        "40 bins). The counts add up to the count of numbers.",
        "required": ["edges", "counts"],
        "additionalProperties": False,
        "properties": {
            "edges": {"type": "array", "items": _INTEGER, "minItems": 2, "maxItems": 41},
            "counts": {"type": "array", "items": _INTEGER, "minItems": 1, "maxItems": 40},
        },
    },
    "BoxPlot": {
        "type": "object",
        "description": "Quartiles by linear interpolation (type 7: `median` equals the median "
        "operation), Tukey's whiskers (the most extreme numbers within 1.5 IQR of the quartiles), the "
        "count of outliers beyond each whisker and the most extreme of them (at most 10 a side, ascending).",
        "required": [
            "q1",
            "median",
            "q3",
            "whisker_low",
            "whisker_high",
            "outliers_low",
            "outliers_high",
            "extremes_low",
            "extremes_high",
        ],
        "additionalProperties": False,
        "properties": {
            **dict.fromkeys(("q1", "median", "q3"), _VALUE),
            **dict.fromkeys(("whisker_low", "whisker_high", "outliers_low", "outliers_high"), _INTEGER),
            **{
                name: {"type": "array", "items": _INTEGER, "maxItems": 10}
                for name in ("extremes_low", "extremes_high")
            },
        },
    },
    "History": {
        "type": "object",
        "required": ["entries", "next"],
        "properties": {
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "submitted_at", "status"],
                    "properties": {
                        "id": {"type": "string"},
                        "submitted_at": {"type": "string"},
                        "status": {"type": "string"},
                        "user": {"type": "string"},
                        "operations": {"type": "array", "items": {"type": "string"}},
                        "count": {"type": "integer"},
                        "total_ms": {"type": "number"},
                    },
                },
            },
            "next": {"type": ["string", "null"], "description": "the `before` cursor of the next page"},
        },
    },
    "Status": {
        "type": "object",
        "required": [
            "stack",
            "health",
            "queues",
            "reply_queues",
            "reply_queues_total",
            "reply_queues_read_seconds_ago",
            "recent",
            "trends",
        ],
        "properties": {
            "stack": {"type": "string"},
            "health": {"type": "object"},
            "queues": {"type": "array", "items": {"type": "object"}},
            "reply_queues": {
                "type": "array",
                "maxItems": REPLY_QUEUES_SHOWN,
                "description": f"at most {REPLY_QUEUES_SHOWN} of the stack's reply queues (one per frontend "
                "process): this process's first, then the stalest heartbeats",
                "items": {
                    "type": "object",
                    "required": [
                        "name",
                        "heartbeat_age_seconds",
                        "this_process",
                        "visible",
                        "in_flight",
                        "delayed",
                    ],
                    "properties": {
                        "name": {"type": "string"},
                        "heartbeat_age_seconds": {"type": "integer"},
                        "this_process": {"type": "boolean"},
                        "visible": {"type": "integer", "minimum": 0},
                        "in_flight": {"type": "integer", "minimum": 0},
                        "delayed": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "reply_queues_total": {
                "type": "integer",
                "minimum": 0,
                "description": "the stack's reply queues, those not in `reply_queues` included",
            },
            "reply_queues_read_seconds_ago": {
                "type": "integer",
                "minimum": 0,
                "description": "when the reply queues and their depths were read (at most every "
                f"{QUEUE_LIST_MAX_AGE_SECONDS} s)",
            },
            "recent": {"type": "array", "items": {"type": "object"}},
            "trends": {"anyOf": [_ref("Trends"), {"type": "null"}], "description": "null: unreadable now"},
        },
    },
    "Trends": {
        "type": "object",
        "description": "The last hour per UTC minute, as the loggers counted it: each series has one value "
        "per minute of `minutes`, null where there is none (no logger ran; no request finished; no depth "
        "sampled). The last minute is still counting.",
        "required": ["minutes", "loggers", "requests", "latency_ms", "depths"],
        "additionalProperties": False,
        "properties": {
            "minutes": {
                "type": "array",
                "minItems": WINDOW_MINUTES,
                "maxItems": WINDOW_MINUTES,
                "items": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}Z$"},
            },
            "loggers": {"type": "integer", "minimum": 0, "description": "the loggers' windows added up"},
            "requests": _series_of(STATUSES, _COUNTS, "requests finished (logged) per minute, by status"),
            "latency_ms": _series_of(
                [f"p{p}" for p in PERCENTILES],
                {"type": ["number", "null"], "minimum": 0},
                "percentiles of the requests' total time (submitted to computed) in ms, within "
                f"{RELATIVE_ERROR:.1%}",
            ),
            "depths": {
                "type": "object",
                "description": "the highest depth sampled in each minute",
                "required": list(QUEUES),
                "additionalProperties": False,
                "properties": {queue: _series_of(DEPTHS, _COUNTS) for queue in QUEUES},
            },
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "qcompute",
        "version": "1",
        "description": "Statistics over integers of any size, computed by a queue of workers. "
        "With accounts, every call but this document needs `Authorization: Bearer <token>`.",
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{}, {"bearer": []}],
    "paths": {
        "/api/requests": {
            "post": {
                "summary": "Submit integers; wait (up to ?wait seconds) for the result",
                "parameters": [_WAIT, _INTEGERS],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Submission")}},
                },
                "responses": {
                    "200": _json("the result, back within the wait", _ref("Result")),
                    "202": _json(
                        "not back within the wait: GET the Location",
                        _ref("Pending"),
                        {"Location": {"schema": {"type": "string"}}, **_RETRY_AFTER},
                    ),
                    "400": _error("invalid input: `error.field` names the part"),
                    "413": _error("the body is too large"),
                    "415": _error("not application/json"),
                    **_COMMON,
                },
            }
        },
        "/api/requests/{id}": {
            "parameters": [_ID],
            "get": {
                "summary": "A request's result; ?wait=S waits up to S seconds while it is pending",
                "parameters": [
                    _WAIT,
                    _INTEGERS,
                    {
                        "name": "numbers",
                        "in": "query",
                        "description": "1 adds the input numbers",
                        "schema": {"type": "string", "enum": ["0", "1"]},
                    },
                ],
                "responses": {
                    "200": _json("finished: done, error or cancelled", _ref("Result")),
                    "202": _json("still pending", _ref("Pending"), _RETRY_AFTER),
                    "400": _error("an invalid parameter"),
                    "404": _error("no such request (or another account's)"),
                    "410": _json("no result within the pending timeout", _ref("Expired")),
                    **_COMMON,
                },
            },
            "delete": {
                "summary": "Cancel a request that is still queued",
                "description": "202 `cancelling`: the worker skips the request if it has not started "
                "it yet; the result then reads `cancelled` (one already being computed finishes). "
                "200 `cancelled` if it already is.",
                "responses": {
                    "200": _json("already cancelled", _ref("Cancelling")),
                    "202": _json("the cancellation is on its way to the workers", _ref("Cancelling")),
                    "404": _error("no such request (or another account's)"),
                    "409": _error("already finished (`already_done`)"),
                    "410": _json("no result within the pending timeout", _ref("Expired")),
                    **_COMMON,
                },
            },
        },
        "/api/operations": {
            "get": {
                "summary": "The operations a request may ask for",
                "responses": {"200": _json("the operations", _ref("Operations")), **_COMMON},
            }
        },
        "/api/history": {
            "get": {
                "summary": "Past requests, newest first (one's own with accounts)",
                "parameters": [
                    {
                        "name": "before",
                        "in": "query",
                        "description": "the `next` of the previous page",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": _json("a page of requests", _ref("History")), **_COMMON},
            }
        },
        "/api/status": {
            "get": {
                "summary": "The stack's queues, health and last hour per minute (admins only, with accounts)",
                "responses": {
                    "200": _json("the stack's status", _ref("Status")),
                    "403": _error("not an admin"),
                    **_COMMON,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [{}],
                "responses": {"200": _json("the OpenAPI document", {"type": "object"})},
            }
        },
    },
}


@blueprint.get("/openapi.json")
def document() -> Any:
    return jsonify(DOCUMENT)
