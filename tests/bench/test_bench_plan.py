"""The plans: the full run of the issue, and a smoke test small enough for CI."""

from __future__ import annotations

from bench.plan import FULL, SMOKE, chosen


def test_the_full_run_measures_what_the_issue_asks():
    assert FULL.backends == ("localstack", "moto")
    assert FULL.clients == (1, 4, 16, 64)
    assert FULL.workers == (1, 2)
    assert FULL.sizes == (10, 1_000, 100_000, 1_000_000)
    assert set(FULL.systems) == {"raw", "project", "seed", "celery"}


def test_every_phase_is_bounded_and_gives_each_client_work():
    for plan in (FULL, SMOKE):
        for load in plan.loads():
            assert load.requests >= 4 * load.clients
            assert 0 < load.time_cap <= 120


def test_options_override_the_base_plan():
    plan = chosen(True, "moto", requests=50, clients=None)
    assert plan.backends == ("moto",)
    assert plan.requests == 50
    assert plan.clients == SMOKE.clients
    assert chosen(False, "both").backends == ("localstack", "moto")
    assert chosen(True, None).backends == ("localstack", "moto")
