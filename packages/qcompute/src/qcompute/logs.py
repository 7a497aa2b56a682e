"""structlog, configured once per entry point.

JSON lines on stdout when not on a terminal, a readable console on one; ISO UTC timestamps; context
(request_id, message_id, queue) bound through contextvars. Standard-library loggers (botocore,
gunicorn) go through the same formatter, so every line a service prints has one shape.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import structlog

# Logged by the frontend while its replies have stalled; the deployer's metric filter on the frontend's
# CloudWatch Logs group counts these lines for the stack's "replies stalled" alarm. One name, here, so
# the line and the filter cannot drift apart.
REPLIES_STALLED = "replies_stalled"

# gunicorn's access log atoms worth keeping, by the field name they get in our JSON lines.
_ACCESS_FIELDS = {
    "method": "m",
    "path": "U",
    "query": "q",
    "status": "s",
    "bytes": "B",
    "remote": "h",
    "user_agent": "a",
    "request_id": "{x-request-id}o",
}


def _gunicorn_access_fields(_logger: Any, _name: str, event_dict: dict) -> dict:
    """Turn gunicorn's access record (a format string plus a dict of atoms) into fields."""
    atoms = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if record is None or record.name != "gunicorn.access" or not isinstance(atoms, dict):
        return event_dict
    for field, atom in _ACCESS_FIELDS.items():
        value = atoms.get(atom)
        if value not in (None, "", "-"):
            event_dict[field] = int(value) if field in ("status", "bytes") else value
    event_dict["event"] = "http_request"
    event_dict["duration_ms"] = round(int(atoms.get("D", 0)) / 1000, 1)
    return event_dict


def _renderer(log_format: str) -> Any:
    if log_format == "console" or (log_format == "auto" and sys.stdout.isatty()):
        return structlog.dev.ConsoleRenderer()
    return structlog.processors.JSONRenderer()


def _pre_chain(service: str) -> list:
    def add_service(_logger: Any, _name: str, event_dict: dict) -> dict:
        event_dict.setdefault("service", service)
        return event_dict

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
    ]


def dict_config(service: str, level: str = "INFO", log_format: str = "auto") -> dict:
    """A `logging.config.dictConfig` mapping; gunicorn takes it as `logconfig_dict`."""
    renderer = _renderer(log_format)
    processors = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if isinstance(renderer, structlog.processors.JSONRenderer):
        # Tracebacks as structured data keep one JSON object per line; the console prints them.
        processors.append(structlog.processors.dict_tracebacks)
    formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": [*_pre_chain(service), _gunicorn_access_fields],
        # Keeps a record's arguments (gunicorn's access atoms) for _gunicorn_access_fields.
        "pass_foreign_args": True,
        "processors": [*processors, renderer],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "structlog",
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            # Route gunicorn's own loggers to the root handler instead of gunicorn's plain text ones.
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": level, "handlers": [], "propagate": True},
            # botocore logs every retry at DEBUG and credential lookups at INFO: too chatty.
            "botocore": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
        },
    }


def configure(service: str, level: str = "INFO", log_format: str = "auto") -> None:
    """Configure structlog and the standard library for one service process."""
    logging.config.dictConfig(dict_config(service, level, log_format))
    structlog.configure(
        processors=[
            *_pre_chain(service),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
