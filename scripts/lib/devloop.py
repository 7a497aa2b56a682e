"""Run the three services as processes and restart each one when a file it runs from changes.

    python scripts/lib/devloop.py LOG_DIR

Started by scripts/dev, which sets the environment (the emulator, the stack's names, PYTHONPATH). The
frontend is gunicorn on BIND; the worker and the logger run as their images run them. Each service's
output goes to LOG_DIR/<service>.log and, prefixed with its name, to this terminal. Changes are found by
polling (standard library only, any platform): a service restarts when a file under services/<service>/
or packages/qcompute/src/qcompute/ changes, appears or goes. A restart is a warm stop (SIGTERM), as a
container's. Ctrl-C or SIGTERM stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "packages/qcompute/src/qcompute"
POLL_SECONDS = 0.25
# Longer than a warm stop of any of them with the short long poll scripts/dev sets.
STOP_SECONDS = 20
_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(f"devloop   | {text}", flush=True)


def snapshot(folders: list[Path]) -> dict[str, tuple[int, int]]:
    """(modification time, size) of every file under the folders, bytecode caches and editors' swap
    and backup files left out."""
    files = {}
    for folder in folders:
        for directory, subdirectories, names in os.walk(folder):
            subdirectories[:] = [
                name for name in subdirectories if name != "__pycache__" and not name.startswith(".")
            ]
            for name in names:
                if name.startswith((".", "#")) or name.endswith(("~", ".swp", ".swx", ".pyc")):
                    continue
                path = os.path.join(directory, name)
                try:
                    status = os.stat(path)
                except OSError:
                    continue  # gone between the listing and the look
                files[path] = (status.st_mtime_ns, status.st_size)
    return files


def changed(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    folders: list[Path]
    process: subprocess.Popen | None = field(default=None, init=False)
    files: dict[str, tuple[int, int]] = field(default_factory=dict, init=False)

    def start(self) -> None:
        self.files = snapshot(self.folders)
        # Its own session: Ctrl-C reaches only this loop, which stops the services warmly (gunicorn must
        # get SIGTERM, not SIGINT).
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._copy_output, args=(self.process,), daemon=True).start()

    def _copy_output(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        with self.log_path.open("ab") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                with _print_lock:
                    sys.stdout.write(f"{self.name:<9} | {line.decode(errors='replace')}")
                    sys.stdout.flush()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {STOP_SECONDS} s of SIGTERM: killing it")
            self.process.kill()
            self.process.wait()

    def edits(self) -> list[str]:
        now = snapshot(self.folders)
        found = changed(self.files, now)
        self.files = now
        return found


def services(log_dir: Path) -> list[Service]:
    python = sys.executable
    gunicorn = str(Path(python).with_name("gunicorn"))
    env = dict(os.environ)

    def service(name: str, argv: list[str], **settings: str) -> Service:
        return Service(
            name, argv, {**env, **settings}, log_dir / f"{name}.log", [ROOT / "services" / name, SHARED]
        )

    return [
        service(
            "frontend",
            [gunicorn, "-c", str(ROOT / "services/frontend/gunicorn.conf.py")],
            WORKER_TMP_DIR=str(log_dir),
        ),
        service("worker", [python, "-m", "worker"], HEALTH_FILE=str(log_dir / "worker.alive")),
        # One name across restarts: each restart continues the same last-hour object instead of
        # leaving one more behind (the status page merges a bounded number of them).
        service(
            "logger", [python, "-m", "logger"], HEALTH_FILE=str(log_dir / "logger.alive"), LOGGER_NAME="dev"
        ),
    ]


def main(argv: list[str]) -> int:
    log_dir = Path(argv[0]) if argv else ROOT / ".cache/dev"
    log_dir.mkdir(parents=True, exist_ok=True)
    running = services(log_dir)
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for service in running:
        service.start()
    say(
        f"logs in {log_dir}/<service>.log; an edit under services/<service>/ "
        f"or {SHARED.relative_to(ROOT)}/ restarts it"
    )
    try:
        while not stopping.wait(POLL_SECONDS):
            edited = []
            for service in running:
                edits = service.edits()
                if edits:
                    shown = ", ".join(str(Path(path).relative_to(ROOT)) for path in edits[:3])
                    say(f"restarting {service.name}: {shown}{' ...' if len(edits) > 3 else ''} changed")
                    edited.append(service)
                elif service.process is not None and service.process.poll() is not None:
                    # Exited by itself (a syntax error, a bad setting): restarted by the next edit.
                    say(
                        f"{service.name} exited with {service.process.returncode}; "
                        "it restarts at the next edit"
                    )
                    service.process = None
            # An edit of the shared package restarts all three: at once, not one after the other.
            stop_all(edited)
            for service in edited:
                service.start()
    finally:
        say("stopping")
        stop_all(running)
    return 0


def stop_all(services: list[Service]) -> None:
    threads = [threading.Thread(target=service.stop) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
