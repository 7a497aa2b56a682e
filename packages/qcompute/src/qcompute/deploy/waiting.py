"""Waiting that shows progress: every wait says what it waits for and how long it has waited, and
gives up after a deadline with a message that says what was last seen."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

from qcompute.deploy.session import DeployError

# One line per poll would flood a terminal during a ten-minute wait; one every few polls does not.
PROGRESS_EVERY_SECONDS = 15


def say(line: str) -> None:
    """Print at once: progress must show while the command runs, also when piped to a file."""
    print(line, flush=True)


def wait_for(
    what: str,
    poll: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    interval: float = 5.0,
    hint: str = "",
) -> None:
    """Call `poll` (which returns done and a short state) until done; fail after `timeout` seconds."""
    started = time.monotonic()
    shown = -PROGRESS_EVERY_SECONDS
    while True:
        done, state = poll()
        elapsed = time.monotonic() - started
        if done:
            say(f"  {what}: {state} after {elapsed:.0f} s")
            return
        if elapsed >= timeout:
            advice = f"; {hint}" if hint else ""
            raise DeployError(f"gave up waiting for {what} after {timeout:.0f} s (last: {state}){advice}")
        if elapsed - shown >= PROGRESS_EVERY_SECONDS:
            say(f"  waiting for {what}: {state} ({elapsed:.0f} s)")
            shown = elapsed
        time.sleep(interval)


def wait_for_http(url: str, *, timeout: float = 1200) -> None:
    """Poll a page of the deployed instance until it answers 200. Never called against an emulator."""

    def ready() -> tuple[bool, str]:
        try:
            # The URL is http://<the instance's public address>/readyz, built by `deploy up`.
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                return response.status == 200, f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return False, f"HTTP {error.code}"
        except (urllib.error.URLError, OSError):
            return False, "no answer yet"

    wait_for(
        f"{url} to answer",
        ready,
        timeout=timeout,
        interval=10,
        hint=(
            "the first boot installs Docker and builds three images; look at "
            "/var/log/cloud-init-output.log on the instance through Session Manager (see README)"
        ),
    )
