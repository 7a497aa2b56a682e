"""Liveness and readiness, for container healthchecks and load balancers."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from flask import Blueprint, current_app, jsonify

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Any:
    """The process answers HTTP; and which release it is."""
    return jsonify(status="ok", version=current_app.config["SETTINGS"].app_version)


@blueprint.get("/readyz")
def readyz() -> Any:
    """The process can serve: its request queue answers, its reply queue is being read, and replies
    arrive (not stalled with requests outstanding)."""
    submissions = current_app.extensions["submissions"]
    channel = current_app.extensions["replies"]
    replies = channel.health()
    checks = {"reply_queue": channel.is_ready(), "replies": replies["ok"]}
    try:
        submissions.clients.sqs.get_queue_attributes(
            QueueUrl=submissions.requests_url, AttributeNames=["QueueArn"]
        )
        checks["request_queue"] = True
    except (BotoCoreError, ClientError):
        checks["request_queue"] = False
    ready = all(checks.values())
    document = {
        "status": "ready" if ready else "not_ready",
        "checks": checks,
        "problems": replies["problems"],
    }
    return jsonify(document), 200 if ready else 503
