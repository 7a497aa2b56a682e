"""What an update costs, measured on the local compose stack (the mechanism the instance uses).

    scripts/bench-rollout            (prepares Docker and the images as `scripts/test --compose` does)

From a copy of the committed source: a cold build of the three images, a rebuild after a one-line
code change, the images' sizes, the stack's start to healthy, then a rollout with its build and a
return without a build (what `deploy rollback` does), each under a probe at 20 requests/s, and for
comparison a plain `docker compose up -d` over the running stack under the same probe. Prints a table.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.probe import Probe, probing

ROOT = Path(__file__).resolve().parents[1]
ROLLED = ("frontend", "worker", "logger")
PROJECT = "qcompute-bench-rollout"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _probed(took: float, probe: Probe) -> str:
    return f"{took:.0f} s, {len(probe.failures())} of {len(probe.answers)} probe requests failed"


def main() -> int:
    port = _free_port()
    env = {**os.environ, "HTTP_PORT": str(port), "LOCALSTACK_PORT": str(_free_port())}
    env.update(SUBMISSIONS_PER_MINUTE="1000000", INTEGERS_PER_MINUTE=str(10**12))
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="qcompute-bench-") as folder:
        source = Path(folder)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        files = [
            "-p",
            PROJECT,
            "--env-file",
            "compose.local.env",
            "-f",
            "compose.yaml",
            "-f",
            "compose.local.yaml",
        ]

        def run(*command: str, tag: str, **more: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                command, cwd=source, env={**env, "IMAGE_TAG": tag, **more}, capture_output=True, text=True
            )

        def timed(what: str, call: Callable[[], subprocess.CompletedProcess]) -> float:
            began = time.monotonic()
            done = call()
            took = time.monotonic() - began
            if done.returncode != 0:
                sys.exit(f"{what} failed:\n{done.stdout}\n{done.stderr}")
            print(f"{what}: {took:.1f} s", flush=True)
            return took

        compose = ("docker", "compose", *files)
        try:
            cold = timed(
                "cold build", lambda: run(*compose, "build", "--no-cache", "--quiet", *ROLLED, tag="a")
            )
            rows.append(
                ("cold build of the three images (no cache; packages from the wheelhouse)", f"{cold:.0f} s")
            )
            sizes = [
                int(subprocess.run(
                    ["docker", "image", "inspect", "--format", "{{.Size}}", f"qcompute-{service}:a"],
                    capture_output=True, text=True, check=True,
                ).stdout)
                for service in ROLLED
            ]  # fmt: skip
            rows.append(
                ("images (frontend, worker, logger)", ", ".join(f"{size / 2**20:.0f} MiB" for size in sizes))
            )
            start = timed(
                "start to healthy", lambda: run(*compose, "up", "--detach", "--wait", "--no-build", tag="a")
            )
            rows.append(("the stack from nothing to healthy (LocalStack included)", f"{start:.0f} s"))
            with (source / "services/worker/compute.py").open("a") as changed:
                changed.write("\n# a one-line change\n")
            rebuild = timed("rebuild", lambda: run(*compose, "build", "--quiet", *ROLLED, tag="b"))
            rows.append(("rebuild after a one-line code change", f"{rebuild:.0f} s"))
            url = f"http://127.0.0.1:{port}"
            rollout = [str(source / "scripts/rollout"), "--", *files]
            for label, tag, options in (
                ("rollout with its build (cached layers)", "c", ()),
                ("return to the previous images, no build (deploy rollback)", "a", ("--no-build",)),
            ):
                with probing(url) as probe:
                    took = timed(label, lambda t=tag, o=options: run(rollout[0], *o, *rollout[1:], tag=t))
                    time.sleep(2)
                rows.append((label, _probed(took, probe)))
            with probing(url) as probe:
                took = timed(
                    "plain up -d", lambda: run(*compose, "up", "--detach", "--wait", "--no-build", tag="b")
                )
                time.sleep(2)
            rows.append(("for comparison: `docker compose up -d` over it", _probed(took, probe)))
        finally:
            run(*compose, "down", "--volumes", "--remove-orphans", tag="a")
    width = max(len(label) for label, _ in rows)
    print(f"\n| {'what':<{width}} | measured |\n| {'-' * width} | --- |")
    for label, value in rows:
        print(f"| {label:<{width}} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
