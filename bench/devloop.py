"""How long an edit takes to be served by the development loop: Compose Watch on the local compose stack
(scripts/local watch) and the stack as processes (scripts/dev), each on a copy of the checkout.

    scripts/bench-devloop [--compose | --no-docker]      (both by default)

In each: the page's template is edited and the time until the page shows it is measured, then the
`sum` operation (the shared package, so every service restarts) until the API computes the new one.
Prints a table; the target is under 3 s. The tests (tests/compose/test_devloop.py and
tests/shared/test_devloop_without_docker.py) only check that it happens.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import devloop
from harness.backend import free_port
from harness.clone import fresh_clone

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "qcompute-bench-devloop"


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HTTP_PORT=str(free_port()), LOCALSTACK_PORT=str(free_port()))
    return env


def no_docker(folder: Path) -> dict[str, float]:
    copy = fresh_clone(folder / "no-docker")
    with devloop.dev_processes(copy, ROOT / ".cache/venv", _environment(), folder / "dev.log") as url:
        return devloop.template_and_operation(copy, url)


def compose(folder: Path) -> dict[str, float]:
    copy = fresh_clone(folder / "compose")
    env = _environment()

    def run(*args: str) -> None:
        subprocess.run(
            ["docker", "compose", "-p", PROJECT, *devloop.DEVELOP_FILES, *args], cwd=copy, env=env, check=True
        )

    run("up", "--build", "--detach", "--wait", "--wait-timeout", "300")
    try:
        with devloop.compose_watch(copy, PROJECT, env, folder / "watch.log"):
            return devloop.template_and_operation(copy, f"http://127.0.0.1:{env['HTTP_PORT']}")
    finally:
        run("down", "--volumes", "--remove-orphans")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench-devloop", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--compose", action="store_true", help="Compose Watch only")
    which.add_argument("--no-docker", action="store_true", help="scripts/dev only")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="qcompute-devloop-") as folder:
        if not args.no_docker:
            rows.append(("Compose Watch (scripts/local watch)", compose(Path(folder))))
        if not args.compose:
            rows.append(("processes (scripts/dev --backend moto)", no_docker(Path(folder))))
    width = max(len(name) for name, _ in rows)
    print(f"{'edit to served, seconds':<{width}}  template  operation (target: under 3 s)")
    for name, times in rows:
        print(f"{name:<{width}}  {times['template']:8.1f}  {times['operation']:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
