"""A small soak run in every CI stage: the full one is `scripts/soak` (10,000 requests)."""

from __future__ import annotations

import pytest

from harness.soak import soak

pytestmark = pytest.mark.integration


def test_a_small_soak_accounts_for_every_request(backend, tmp_path) -> None:
    summary = soak(400, concurrency=16, workers=2, log_dir=tmp_path, max_seconds=900)
    print(summary.table())
    assert summary.accepted == summary.replied == summary.logged == 400
    assert summary.wrong == summary.dead_letters == 0
    # SQS delivers at least once (moto's receive even races between concurrent receivers): a
    # redelivery may be computed again, but never shown or stored twice.
    assert summary.computed >= 400
