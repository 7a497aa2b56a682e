"""The Celery worker's app (`celery -A bench.celery_worker worker`), configured by the environment."""

from __future__ import annotations

import os

from bench import calls
from bench.celery_app import make_app

if os.environ.get("RECORD_AWS_CALLS"):
    # The start-up hook records botocore's calls; the worker receives through kombu's own HTTP client.
    calls.recorder().record_kombu()

app = make_app(
    os.environ["BENCH_CELERY_ENDPOINT"], os.environ["BENCH_CELERY_PREFIX"], os.environ["BENCH_CELERY_BUCKET"]
)
