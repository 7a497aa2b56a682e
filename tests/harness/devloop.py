"""The development loop as a developer meets it: edit a file of a checkout, wait until the running stack
serves the edit. The tests (tests/compose/test_devloop.py, tests/shared/test_devloop_without_docker.py)
prove it happens; scripts/bench-devloop (bench/devloop.py) prints how long it takes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

TEMPLATE = "services/frontend/templates/base.html"
OPERATIONS = "packages/qcompute/src/qcompute/operations.py"
NUMBERS = [1, 2, 3]


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path} no longer holds {old!r}: update tests/harness/devloop.py"
    path.write_text(text.replace(old, new))


def edit_template(root: Path) -> str:
    """Put a new word in every page's title; return it."""
    marker = f"edited-{uuid.uuid4().hex[:8]}"
    _replace(root / TEMPLATE, "</title>", f" {marker}</title>")
    return marker


def edit_operation(root: Path) -> int:
    """Change what the `sum` operation computes (the sum plus an offset); return the sum it now gives
    for NUMBERS."""
    offset = random.randrange(1000, 10_000)
    _replace(
        root / OPERATIONS,
        'Operation("sum", N_("Sum"), sum),',
        f'Operation("sum", N_("Sum"), lambda numbers: sum(numbers) + {offset}),',
    )
    return sum(NUMBERS) + offset


def page_title_has(url: str, marker: str) -> bool:
    try:
        return marker in requests.get(f"{url}/", timeout=5).text
    except requests.RequestException:
        return False


def computed_sum(url: str) -> int | None:
    """What the API answers for the sum of NUMBERS, or None while the stack does not answer."""
    try:
        response = requests.post(
            f"{url}/api/requests", json={"numbers": NUMBERS, "operations": ["sum"]}, timeout=15
        )
        document = response.json()
        deadline = time.monotonic() + 15
        while response.status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
            response = requests.get(f"{url}/api/requests/{document['id']}", timeout=15)
            document = response.json()
        if response.status_code == 200 and document.get("status") == "done":
            return document["results"]["sum"]
    except (requests.RequestException, ValueError):
        pass
    return None


def seconds_until(check: Callable[[], bool], timeout: float = 120, interval: float = 0.1) -> float:
    """Seconds from now until `check()` holds; TimeoutError after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not served after {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - started


def template_and_operation(root: Path, url: str, timeout: float = 120) -> dict[str, float]:
    """Edit the template, then the operation, of the checkout at `root` whose stack serves `url`;
    return the seconds each edit took to be served."""
    # Served once before: the templates are loaded and cached, as on a page a developer has open.
    seconds_until(lambda: page_title_has(url, "</title>"), timeout)
    seconds_until(lambda: computed_sum(url) == sum(NUMBERS), timeout)
    marker = edit_template(root)
    template = seconds_until(lambda: page_title_has(url, marker), timeout)
    expected = edit_operation(root)
    operation = seconds_until(lambda: computed_sum(url) == expected, timeout)
    return {"template": template, "operation": operation}


# How compose runs the development loop (scripts/local watch), less its project name.
DEVELOP_FILES = [
    "--env-file",
    "compose.local.env",
    "-f",
    "compose.yaml",
    "-f",
    "compose.local.yaml",
    "-f",
    "compose.develop.yaml",
]


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        seconds_until(check, timeout, interval=0.25)
    except TimeoutError:
        raise TimeoutError(f"{what}: not within {timeout:.0f} s") from None


def _start(argv: list[str], cwd: Path, env: dict[str, str], log: Any) -> subprocess.Popen:
    """A command in its own session (so _end stops it and its children), its output in `log`."""
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _end(process: subprocess.Popen, sig: int, timeout: float) -> None:
    """Stop a process started in its own session, as Ctrl-C would, and wait for it."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def compose_watch(copy: Path, project: str, env: dict[str, str], log_path: Path) -> Iterator[None]:
    """`docker compose ... watch --no-up` on the running stack `project` of the checkout `copy`."""
    with log_path.open("w") as log:
        process = _start(
            ["docker", "compose", "-p", project, *DEVELOP_FILES, "watch", "--no-up"], copy, env, log
        )
        try:

            def enabled() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"compose watch exited: {log_path.read_text()}")
                return "Watch enabled" in log_path.read_text()

            _wait_for(enabled, 60, "compose watch")
            yield
        finally:
            _end(process, signal.SIGINT, 30)


@contextmanager
def dev_processes(copy: Path, venv: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`scripts/dev --backend moto` in the checkout `copy`, with the virtualenv `venv` (linked, not
    made again); yields the frontend's URL once it is ready."""
    (copy / ".cache").mkdir(exist_ok=True)
    if not (copy / ".cache/venv").exists():
        (copy / ".cache/venv").symlink_to(venv)
    url = f"http://127.0.0.1:{env['HTTP_PORT']}"
    with log_path.open("w") as log:
        process = _start([str(copy / "scripts/dev"), "--backend", "moto"], copy, env, log)
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"scripts/dev exited with {process.returncode}: {log_path.read_text()}"
                    )
                try:
                    return requests.get(f"{url}/readyz", timeout=5).status_code == 200
                except requests.RequestException:
                    return False

            _wait_for(ready, 180, "scripts/dev")
            yield url
        finally:
            _end(process, signal.SIGINT, 60)
