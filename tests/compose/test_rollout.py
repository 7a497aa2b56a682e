"""Updates without downtime, the way the instance makes them (its release script runs scripts/rollout):
release A serves; a rollout to B with a client probing at 20 requests/s sees only 2xx/3xx and every
accepted request answered; a broken C is refused and B keeps serving; going back to A without a build
(what `deploy rollback` does) takes under 60 s, with the probe still running."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from harness import client
from harness.probe import PROBE_RATE, Probe, probing
from harness.services import ROOT

pytestmark = pytest.mark.compose

ROLLED = ("frontend", "worker", "logger")


@pytest.fixture(scope="module")
def rolling(start_stack):
    """Release A: the images the tests built, tagged "a"."""
    for service in ROLLED:
        subprocess.run(["docker", "tag", f"qcompute-{service}:latest", f"qcompute-{service}:a"], check=True)
    with start_stack("qcompute-rollout-test", "compose-rollout.log", IMAGE_TAG="a") as stack:
        yield stack


def _rollout(stack, tag: str, *options: str, **settings: str) -> tuple[subprocess.CompletedProcess, float]:
    """scripts/rollout on the running stack, with IMAGE_TAG=tag (and more settings); its time."""
    env = {**stack.env, "IMAGE_TAG": tag, **settings}
    command = ["scripts/rollout", *options, "--", "-p", stack.project, *stack.files]
    began = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return done, time.monotonic() - began


def _version(stack) -> str:
    return requests.get(f"{stack.url}/healthz", timeout=30).json()["version"]


def _serving(stack) -> dict[str, list[str]]:
    """The image each running container of the rolled services was made from, by service."""
    found: dict[str, list[str]] = {}
    for container in stack.containers():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        if service in ROLLED and container["State"]["Running"]:
            found.setdefault(service, []).append(container["Config"]["Image"])
    return found


def _settle(probe: Probe) -> None:
    """Every accepted submission is answered, by whichever frontend serves now."""
    for request_id, total in list(probe.accepted):
        assert client.until_done(probe.url, request_id, timeout=120)["results"] == {"sum": total}


def test_rollouts_under_load_fail_no_request_and_a_broken_release_is_refused(rolling) -> None:
    """One stack through three rollouts, in order (each starts where the one before left it)."""
    # A to B, with a build (cached layers but the sources'), as `deploy up` after a code change.
    assert _version(rolling) == "a"
    with probing(rolling.url) as probe:
        time.sleep(3)  # the probe runs against A first
        done, took = _rollout(rolling, "b")
        time.sleep(3)  # and against B after
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"rollout to B (build included): {took:.1f} s; {len(probe.answers)} probe requests")
    assert len(probe.answers) >= 0.8 * PROBE_RATE * (took + 6), "the probe kept its rate"
    assert probe.failures() == [], done.stdout
    assert len(probe.accepted) > 50
    _settle(probe)
    assert _version(rolling) == "b"
    assert 'Version <span id="app-version">b</span>' in requests.get(f"{rolling.url}/", timeout=30).text
    assert _serving(rolling) == {service: [f"qcompute-{service}:b"] for service in ROLLED}
    assert client.compute(rolling.url, [40, 2], ["sum"])["results"] == {"sum": 42}

    # B to a broken C: B's images with a setting C's frontend refuses, so it never becomes healthy.
    for service in ROLLED:
        subprocess.run(["docker", "tag", f"qcompute-{service}:b", f"qcompute-{service}:c"], check=True)
    with probing(rolling.url) as probe:
        done, took = _rollout(rolling, "c", "--no-build", "--timeout", "120", MAX_BACKLOG="0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rollout: refused: the new release is not healthy" in done.stdout
    assert "MAX_BACKLOG" in done.stdout, "the refused container's own words are shown"
    assert took < 120, "a crash is seen at once, not after the timeout"
    assert probe.failures() == []
    _settle(probe)
    assert _serving(rolling) == {service: [f"qcompute-{service}:b"] for service in ROLLED}, (
        "B's containers serve on, and no container of C is left"
    )
    assert _version(rolling) == "b"

    # Back to A without a build, as `deploy rollback` does with the images it kept.
    with probing(rolling.url) as probe:
        done, took = _rollout(rolling, "a", "--no-build")
        time.sleep(2)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"back to A (no build): {took:.1f} s")
    assert took < 60
    assert probe.failures() == []
    _settle(probe)
    assert _version(rolling) == "a"
    assert _serving(rolling) == {service: [f"qcompute-{service}:a"] for service in ROLLED}
