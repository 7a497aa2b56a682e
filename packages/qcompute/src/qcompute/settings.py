"""Read settings from the environment once, at start-up, failing fast with the variable's name.

Each service builds its own frozen settings object from these pieces (see `services/*/settings.py`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from qcompute.names import InvalidStackName, check_stack_name


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Typed access to an environment mapping; every error names the variable and the value refused.

    An empty variable counts as unset (compose passes `${VAR:-}` through as empty).
    """

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ

    def text(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
        value = self.text(name, default)
        if upper:
            value = value.upper()
        if value not in choices:
            raise ConfigError(f"{name} must be {_one_of(choices)}, not {value!r}")
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
        _check_bounds(name, value, minimum, maximum)
        return value

    def number(
        self, name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, not {raw!r}")
        _check_bounds(name, value, minimum, maximum)
        return value

    def directory(self, name: str, default: str) -> Path:
        """A directory this process can create files in."""
        path = Path(self.text(name, default))
        if not _writable_directory(path):
            raise ConfigError(f"{name} must be a directory this process can write in, not {str(path)!r}")
        return path

    def file(self, name: str, default: str) -> Path:
        """A file this process can create and replace: its directory must let it."""
        path = Path(self.text(name, default))
        if path.is_dir() or not _writable_directory(path.parent):
            raise ConfigError(
                f"{name} must be a file in a directory this process can write in, not {str(path)!r}"
            )
        return path

    def address(self, name: str, default: str) -> str:
        """Where a server listens: HOST:PORT (a port from 1 to 65535) or unix:PATH."""
        value = self.text(name, default)
        host, _, port = value.rpartition(":")
        if value.startswith("unix:") and len(value) > len("unix:"):
            return value
        if host and port.isdigit() and 1 <= int(port) <= 65535:
            return value
        raise ConfigError(f"{name} must be HOST:PORT (e.g. 0.0.0.0:8080) or unix:PATH, not {value!r}")

    def url(self, name: str, default: str) -> str:
        """An http(s) address, or the default (empty: none)."""
        value = self.text(name, default)
        if value == default:
            return value
        try:
            parts = urlsplit(value)
            # .port raises ValueError for a port that is not a number.
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:
            valid = False
        if not valid:
            raise ConfigError(f"{name} must be an http:// or https:// address, not {value!r}")
        return value

    def logging(self) -> tuple[str, str]:
        """LOG_LEVEL and LOG_FORMAT, which every service reads."""
        return (
            self.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
            self.choice("LOG_FORMAT", "auto", LOG_FORMATS),
        )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# auto: JSON lines unless on a terminal (qcompute.logs).
LOG_FORMATS = ("auto", "json", "console")
# The shape of an AWS region name ("eu-west-1"): catches a typo or a stray space before any call.
REGION_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+-[0-9]+$")


def _one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}"


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _check_bounds(name: str, value: float, minimum: float, maximum: float | None) -> None:
    if maximum is not None and not minimum <= value <= maximum:
        raise ConfigError(
            f"{name} must be between {_number_text(minimum)} and {_number_text(maximum)}, "
            f"not {_number_text(value)}"
        )
    if value < minimum:
        raise ConfigError(f"{name} must be at least {_number_text(minimum)}, not {_number_text(value)}")


def _writable_directory(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


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
        # AWS_DEFAULT_REGION is the SDK's older name for it.
        name = "AWS_REGION" if env.text("AWS_REGION", "") else "AWS_DEFAULT_REGION"
        region = env.text(name, "")
        if not region:
            raise ConfigError("AWS_REGION is required but not set")
        if not REGION_PATTERN.match(region):
            raise ConfigError(f"{name} must be a region name like eu-west-1, not {region!r}")
        # Read by the SDK itself (qcompute.aws); checked here, where a typo still gets one clear line.
        env.url("AWS_ENDPOINT_URL", "")
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
