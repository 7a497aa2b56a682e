"""The local stack as the operator tools reach it with `--local`, whoever's AWS settings are in the shell.

The local stack is compose.local.yaml's LocalStack (`scripts/local up` or `watch`) or the stack
`scripts/dev` runs without Docker: either way its emulator answers on this machine, at
LOCALSTACK_HOST (default 127.0.0.1:LOCALSTACK_PORT, port 4566), and its names are compose.local.env's.
The clients come from localstack-client's session, which sets the endpoint and LocalStack's test
credentials itself: no AWS_* variable (profile, keys, endpoint) is read or needed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qcompute.settings import ConfigError, Env, StackSettings


def endpoint_host() -> str:
    """HOST:PORT of the local emulator, as localstack-client takes it."""
    return (
        os.environ.get("LOCALSTACK_HOST", "").strip()
        or f"127.0.0.1:{os.environ.get('LOCALSTACK_PORT') or 4566}"
    )


def env_file() -> Path:
    """compose.local.env of the checkout this module runs from (scripts put packages/qcompute/src on the
    path): the operator tools run from a checkout. (This module is also imported, unused, where no
    checkout is: LocalStack's init hook, the images.)"""
    return Path(__file__).resolve().parent.parent.parent.parent.parent / "compose.local.env"


def env_file_values(path: Path | None = None) -> dict[str, str]:
    """NAME=value lines of compose.local.env."""
    path = path or env_file()
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ConfigError(f"--local reads the local stack's names from {path}: {error.strerror}") from None
    values = {}
    for line in lines:
        name, equals, value = line.partition("=")
        if equals and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def stack_settings(stack: str | None = None, region: str | None = None) -> StackSettings:
    """The local stack's name and region (compose.local.env's), or those given with --stack/--region."""
    values = env_file_values()
    values.update({k: v for k, v in (("STACK_NAME", stack), ("AWS_REGION", region)) if v})
    values.pop("AWS_ENDPOINT_URL", None)
    return StackSettings.from_env(Env(values))


def session(region: str) -> Any:
    """A boto3-like session whose clients reach the local emulator with LocalStack's test credentials."""
    # Imported here: only the operator tools' --local needs the package (qcompute[local]), never a service.
    from localstack_client.session import Session

    # localstack-client prefers AWS_ENDPOINT_URL over its own host when the variable is set: a shell
    # pointed at another emulator or endpoint must not redirect --local.
    saved = os.environ.pop("AWS_ENDPOINT_URL", None)
    # Its clients come from boto3's default session, which reads AWS_PROFILE: a profile of the shell
    # (even one that does not exist here) must not matter to the local stack. An operator tool's
    # process with --local talks to nothing else, so the profile is dropped for good.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    try:
        return Session(
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - LocalStack's documented test credentials
            aws_session_token=None,
            region_name=region,
            localstack_host=endpoint_host(),
        )
    finally:
        if saved is not None:
            os.environ["AWS_ENDPOINT_URL"] = saved


def describe() -> str:
    return f"the local stack at http://{endpoint_host()}"
