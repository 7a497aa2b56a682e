"""The Celery worker's app (`celery -A bench.celery_worker worker`), configured by the environment."""

from __future__ import annotations

import os

from bench.celery_app import make_app

app = make_app(
    os.environ["BENCH_CELERY_ENDPOINT"], os.environ["BENCH_CELERY_PREFIX"], os.environ["BENCH_CELERY_BUCKET"]
)
