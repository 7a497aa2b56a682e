"""Celery as most Python users would set it up here: kombu's SQS broker and an S3 result backend, both on
the emulator under test. Only the benchmark uses it; the services know nothing of Celery.

Imported lazily: the project's test environment has no Celery.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bench.workload import REGION, compute

TASK_NAME = "bench.compute"
# Longer than a phase's longest pause, shorter than the worker's stop timeout.
LONG_POLL_SECONDS = 5


def make_app(endpoint: str, prefix: str, bucket: str, pool_limit: int = 128) -> Any:
    """A Celery app whose queues start with `prefix` and whose results go to `bucket`."""
    from celery import Celery

    address = urlsplit(endpoint)
    app = Celery("bench", set_as_current=False)
    app.conf.update(
        # kombu builds its endpoint from the URL's host and port (http:// only when is_secure is
        # False); without credentials in the URL, boto3 reads the SDK's standard variables.
        broker_url=f"sqs://{address.hostname}:{address.port}",
        broker_transport_options={
            "region": REGION,
            "is_secure": False,
            "queue_name_prefix": f"{prefix}-",
            "wait_time_seconds": LONG_POLL_SECONDS,
            # Long polls return as soon as a message arrives; without this, kombu adds 1 s after
            # every empty poll (its documented tuning for latency).
            "polling_interval": 0,
            "visibility_timeout": 60,
            # The timeouts and retries the project's own clients use (qcompute.aws.client_config),
            # rather than botocore's 60 s reads retried in legacy mode.
            "client-config": {
                "connect_timeout": 5,
                "read_timeout": 30,
                "retries": {"mode": "standard", "max_attempts": 5},
            },
        },
        broker_connection_retry_on_startup=True,
        # One producer connection per client thread, as the HTTP clients have one session each.
        broker_pool_limit=pool_limit,
        # S3 is the result backend Celery supports on this emulator (no Redis, no database; the rpc
        # backend needs AMQP).
        result_backend="s3",
        s3_bucket=bucket,
        s3_base_path=f"{prefix}/",
        s3_endpoint_url=endpoint,
        s3_region=REGION,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # SQS has no broadcast: remote control and events would only add polling.
        worker_enable_remote_control=False,
        worker_send_task_events=False,
    )
    app.task(name=TASK_NAME)(compute)
    return app
