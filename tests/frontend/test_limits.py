"""The shared limits (frontend/limits.py), with a clock the test moves: a pure unit test."""

from __future__ import annotations

import pytest

from frontend.limits import SIGNIN_WINDOW_SECONDS, Limited, Limits, Quota


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_submissions_and_integers_per_minute_each_refuse_with_the_wait(tmp_path) -> None:
    clock = Clock()
    limits = Limits(tmp_path, clock)
    quota = Quota(submissions_per_minute=3, integers_per_minute=100)
    for _ in range(3):
        limits.take("user:alice", 10, quota)
        clock.now += 10
    with pytest.raises(Limited, match="at most 3 requests a minute") as refused:
        limits.take("user:alice", 10, quota)
    assert refused.value.retry_after == 30  # the first of the three leaves the window in 30 s
    limits.take("user:bob", 100, quota)  # another account: its own quota
    with pytest.raises(Limited, match="at most 100 integers a minute"):
        limits.take("user:bob", 1, quota)
    with pytest.raises(Limited) as never:
        limits.take("user:carol", 101, quota)  # more than a whole minute's worth: wait the minute
    assert never.value.retry_after == 60
    clock.now += 31
    limits.take("user:alice", 10, quota)  # a refusal counted nothing


def test_limits_are_shared_by_the_processes_of_a_container(tmp_path) -> None:
    clock = Clock()
    quota = Quota(submissions_per_minute=2, integers_per_minute=100)
    Limits(tmp_path, clock).take("address:10.0.0.1", 1, quota)
    Limits(tmp_path, clock).take("address:10.0.0.1", 1, quota)
    with pytest.raises(Limited):
        Limits(tmp_path, clock).take("address:10.0.0.1", 1, quota)


def test_failed_signins_and_signed_out_sessions_are_remembered_for_their_window(tmp_path) -> None:
    clock = Clock()
    limits = Limits(tmp_path, clock)
    limits.signin_failed("address:10.0.0.1", "name:alice")
    clock.now += 100
    limits.signin_failed("address:10.0.0.1", "name:bob")
    assert limits.signin_failures("address:10.0.0.1") == (2, SIGNIN_WINDOW_SECONDS - 100)
    assert limits.signin_failures("name:alice")[0] == 1
    clock.now += SIGNIN_WINDOW_SECONDS - 99
    assert limits.signin_failures("address:10.0.0.1")[0] == 1
    limits.sign_out("session-1", until=clock.now + 60)
    assert limits.is_signed_out("session-1")
    assert not limits.is_signed_out("session-2")
