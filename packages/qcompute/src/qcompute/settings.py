"""Read settings from the environment once, at start-up, failing fast with the variable's name.

Each service builds its own frozen settings object from these pieces (see `services/*/settings.py`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from qcompute.names import InvalidStackName, check_stack_name


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Typed access to an environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ

    def text(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{name} must be {bounds}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not value >= minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {raw}")
        return value


@dataclass(frozen=True)
class StackSettings:
    """Where the stack lives: shared by every service, script and test."""

    stack: str
    region: str

    @classmethod
    def from_env(cls, env: Env) -> StackSettings:
        stack = env.text("STACK_NAME")
        try:
            check_stack_name(stack)
        except InvalidStackName as error:
            raise ConfigError(f"STACK_NAME: {error}") from None
        region = env.text("AWS_REGION", "") or env.text("AWS_DEFAULT_REGION", "")
        if not region:
            raise ConfigError("AWS_REGION is required but not set")
        return cls(stack=stack, region=region)

    @classmethod
    def from_options(cls, stack: str | None, region: str | None) -> StackSettings:
        """For the command-line tools: --stack and --region, where given, win over the environment."""
        environ = dict(os.environ)
        environ.update({k: v for k, v in (("STACK_NAME", stack), ("AWS_REGION", region)) if v})
        try:
            return cls.from_env(Env(environ))
        except ConfigError as error:
            raise ConfigError(f"{error} (or pass --stack / --region)") from None


@dataclass(frozen=True)
class Limits:
    """What a request may hold; the frontend checks them and the worker checks them again."""

    max_numbers: int = 1_000_000
    max_abs_number: int = 10**18
    # An integer result longer than this is refused (product and lcm can grow without bound).
    max_result_digits: int = 200_000
    # SQS and SNS refuse bodies above 256 KiB: larger numbers or results travel through S3.
    max_message_bytes: int = 262_144

    @classmethod
    def from_env(cls, env: Env) -> Limits:
        return cls(
            max_numbers=env.integer("MAX_NUMBERS", cls.max_numbers, minimum=1),
            max_abs_number=env.integer("MAX_ABS_NUMBER", cls.max_abs_number, minimum=1),
            max_result_digits=env.integer("MAX_RESULT_DIGITS", cls.max_result_digits, minimum=1),
            max_message_bytes=env.integer(
                "MAX_MESSAGE_BYTES", cls.max_message_bytes, minimum=1024, maximum=262_144
            ),
        )
