"""Resource names come from the stack name; settings fail fast and name the variable."""

from __future__ import annotations

import re

import pytest

from qcompute.names import InvalidStackName, StackNames
from qcompute.settings import ConfigError, Env, Limits, StackSettings


def test_every_name_derives_from_the_stack() -> None:
    names = StackNames("demo", "123456789012", "eu-west-1")
    assert names.requests_queue == "demo-requests"
    assert names.requests_dlq == "demo-requests-dlq"
    assert names.log_queue == "demo-logs"
    assert names.log_dlq == "demo-logs-dlq"
    assert names.results_topic_arn == "arn:aws:sns:eu-west-1:123456789012:demo-results"
    assert names.log_bucket == "demo-logs-123456789012-eu-west-1"


def test_the_longest_stack_name_still_makes_a_valid_bucket_name() -> None:
    bucket = StackNames("a" * 20, "123456789012", "ap-southeast-2").log_bucket
    assert len(bucket) <= 63
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", bucket)


@pytest.mark.parametrize("stack", ["", "Demo", "1demo", "demo_1", "demo-", "de--mo", "a" * 21, "dé"])
def test_invalid_stack_names_are_refused(stack: str) -> None:
    with pytest.raises(InvalidStackName, match="invalid stack name"):
        StackNames(stack, "123456789012", "us-east-1")


def test_missing_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="STACK_NAME is required"):
        StackSettings.from_env(Env({"AWS_REGION": "us-east-1"}))
    with pytest.raises(ConfigError, match="AWS_REGION is required"):
        StackSettings.from_env(Env({"STACK_NAME": "demo"}))
    with pytest.raises(ConfigError, match="STACK_NAME: invalid stack name"):
        StackSettings.from_env(Env({"STACK_NAME": "Demo", "AWS_REGION": "us-east-1"}))


def test_region_falls_back_to_the_sdk_default_variable() -> None:
    settings = StackSettings.from_env(Env({"STACK_NAME": "demo", "AWS_DEFAULT_REGION": "eu-north-1"}))
    assert settings.region == "eu-north-1"


def test_command_line_options_win_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("STACK_NAME", "fromenv")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert StackSettings.from_options(None, None) == StackSettings("fromenv", "us-east-1")
    assert StackSettings.from_options("demo", "eu-west-1") == StackSettings("demo", "eu-west-1")
    assert StackSettings.from_options("demo", None) == StackSettings("demo", "us-east-1")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match=r"AWS_REGION is required but not set \(or pass --stack / --region"):
        StackSettings.from_options("demo", None)


def test_malformed_numbers_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="MAX_NUMBERS must be a whole number, not 'many'"):
        Limits.from_env(Env({"MAX_NUMBERS": "many"}))
    with pytest.raises(ConfigError, match="MAX_MESSAGE_BYTES must be between 1024 and 262144"):
        Limits.from_env(Env({"MAX_MESSAGE_BYTES": "10"}))
    assert Limits.from_env(Env({})) == Limits(max_numbers=1_000_000, max_abs_number=10**18)
