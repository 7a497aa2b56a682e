"""The fleet simulation (bench/fleet_sim.py): the policy fleet.py builds, replayed against a burst."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bench.fleet_sim import (
    ALWAYS_MAX,
    METRIC_DELAY_SECONDS,
    SCALE_OUT_DATAPOINTS,
    WEB_ONLY,
    Alarm,
    Burst,
    Setup,
    compare,
    simulate,
    summarize,
    table,
)
from qcompute.deploy.fleet import PERIOD_SECONDS, SECONDS_PER_REQUEST, WARMUP_SECONDS

BURST = Burst()
HOURS = 3 * 3600
POLICY = Setup()


@pytest.fixture(scope="module")
def runs():
    return {run.setup.scaling: run for run in compare(POLICY, BURST, HOURS)}


def first(run, why):
    return next(second for second, action, _ in run.actions if action == why)


def test_the_burst_arrives_whole_and_evenly():
    counts = [BURST.arriving(second) for second in range(-5, 70)]
    assert sum(counts) == BURST.requests
    assert {count for count in counts if count} <= {BURST.requests // 60, BURST.requests // 60 + 1}
    assert Burst(7, 3).arriving(0) + Burst(7, 3).arriving(1) + Burst(7, 3).arriving(2) == 7


def test_an_alarm_needs_its_datapoints_in_a_row_and_skips_missing_ones():
    alarm = Alarm(3)
    assert not alarm.alarmed([True, True])
    assert alarm.alarmed([True, True, True])
    assert not alarm.alarmed([True, True, False])
    assert not alarm.alarmed([True, False, True, True])
    assert alarm.alarmed([True, None, True, True])


def test_a_fixed_fleet_answers_at_workers_over_seconds_per_request(runs):
    """The throughput the model rests on: each worker answers 1 / SECONDS_PER_REQUEST a second."""
    run = runs[ALWAYS_MAX]
    rate = (POLICY.max_hosts * POLICY.workers_per_host + POLICY.web_workers) / SECONDS_PER_REQUEST
    assert summarize(run).drained_at == pytest.approx(BURST.requests / rate, abs=1)
    web = summarize(runs[WEB_ONLY])
    assert web.drained_at == pytest.approx(BURST.requests * SECONDS_PER_REQUEST / POLICY.web_workers, abs=1)
    assert web.instance_hours == 0


def test_every_request_is_answered_once_and_never_more_than_max_hosts(runs):
    for run in runs.values():
        assert sum(run.answered) == BURST.requests
        assert max(p + i for p, i in zip(run.pending, run.in_service, strict=True)) <= POLICY.max_hosts
        assert max(run.desired) <= POLICY.max_hosts
    assert summarize(runs["policy"]).peak_hosts == POLICY.max_hosts


def test_the_wake_alarm_starts_one_host_once_the_first_minute_is_readable(runs):
    run = runs["policy"]
    woke = PERIOD_SECONDS + METRIC_DELAY_SECONDS
    assert first(run, "wake") == woke
    assert run.desired[woke - 1] == 0
    assert run.desired[woke] == 1
    # Nothing works before the host's launch and warm-up are over.
    assert max(run.working[: woke + POLICY.launch_seconds + WARMUP_SECONDS]) == 0
    assert run.working[woke + POLICY.launch_seconds + WARMUP_SECONDS] == 1


def test_target_tracking_scales_out_only_after_three_datapoints_above_the_target(runs):
    run = runs["policy"]
    in_service = first(run, "wake") + POLICY.launch_seconds
    # m1 / m2 has a value from the minute a host is in service: three of them, each readable a delay
    # after its minute ends.
    third = in_service // PERIOD_SECONDS + SCALE_OUT_DATAPOINTS - 1
    expected = (third + 1) * PERIOD_SECONDS + METRIC_DELAY_SECONDS
    assert first(run, "scale-out") == expected
    assert max(run.desired[:expected]) == 1
    # The backlog over the target, far more than MAX: the group goes straight to MAX.
    assert run.desired[expected] == POLICY.max_hosts


def test_no_scale_out_when_the_backlog_per_host_stays_under_the_target():
    small = Burst(requests=int(POLICY.target // 2), seconds=1)
    run = simulate(replace(POLICY, web_workers=0), small, 30 * 60)
    assert max(run.desired) == 1
    assert [action for _, action, _ in run.actions if action == "scale-out"] == []


def test_a_lone_request_with_no_web_worker_wakes_exactly_one_host_and_is_answered():
    run = simulate(replace(POLICY, web_workers=0), Burst(requests=1, seconds=1), 40 * 60)
    summary = summarize(run)
    assert len(run.hosts) == 1
    assert sum(run.answered) == 1
    # Answered when that one host's workers start: the wake, the launch, the warm-up.
    woke = PERIOD_SECONDS + METRIC_DELAY_SECONDS
    assert summary.drained_at == woke + POLICY.launch_seconds + WARMUP_SECONDS
    assert summary.back_to_min_at is not None


def test_a_lone_request_the_web_host_takes_wakes_no_host():
    run = simulate(POLICY, Burst(requests=1, seconds=1), 20 * 60)
    assert run.hosts == []
    assert sum(run.answered) == 1
    assert summarize(run).drained_at == 1


def test_the_policy_costs_less_than_max_hosts_always_on_and_drains_within_its_ramp(runs):
    policy, always = summarize(runs["policy"]), summarize(runs[ALWAYS_MAX])
    assert policy.instance_hours < always.instance_hours / 4
    assert policy.cost < always.cost
    # A bound the policy cannot exceed: MAX hosts' drain time, plus the time until all of them work
    # (the burst's minute, the metric delay, the wake's minute, three datapoints, launch, warm-up),
    # during which the web host's workers answer at least as much as nothing.
    ramp = (
        BURST.seconds
        + METRIC_DELAY_SECONDS
        + (1 + SCALE_OUT_DATAPOINTS + 1) * PERIOD_SECONDS
        + POLICY.launch_seconds
        + WARMUP_SECONDS
    )
    assert always.drained_at is not None
    assert policy.drained_at is not None
    assert always.drained_at < policy.drained_at <= always.drained_at + ramp


@pytest.mark.parametrize("low", [0, 1])
def test_the_fleet_returns_to_min_after_the_idle_minutes(low):
    setup = replace(POLICY, min_hosts=low)
    run = simulate(setup, BURST, HOURS)
    summary = summarize(run)
    assert summary.drained_at is not None
    assert summary.back_to_min_at is not None
    idle = setup.idle_minutes * PERIOD_SECONDS
    # Not before the queue has been empty for the idle minutes (and they are readable), and soon after.
    assert summary.drained_at + idle < summary.back_to_min_at
    slack = 2 * PERIOD_SECONDS + METRIC_DELAY_SECONDS + setup.drain_seconds
    assert summary.back_to_min_at <= summary.drained_at + idle + slack
    assert run.desired[-1] == low
    assert run.in_service[-1] == low
    assert run.draining[-1] == 0


def test_hosts_are_billed_from_in_service_to_the_end_of_their_drain(runs):
    run = runs["policy"]
    billed = sum(host.gone - host.in_service for host in run.hosts)
    assert summarize(run).instance_hours == pytest.approx(billed / 3600)
    assert summarize(runs[ALWAYS_MAX]).instance_hours == POLICY.max_hosts * HOURS / 3600


def test_the_table_has_a_row_per_fleet(runs):
    text = table([summarize(run) for run in runs.values()], POLICY, BURST, HOURS)
    assert "| policy 0..4 |" in text
    assert f"| {POLICY.max_hosts} hosts always on |" in text
    assert "| web host only |" in text
    assert f"target {POLICY.target:g}" in text
    assert math.isclose(POLICY.target, POLICY.latency_seconds * POLICY.workers_per_host / SECONDS_PER_REQUEST)
