"""A missing or malformed setting stops a service with one line naming it and a non-zero exit status,
for every variable each service reads (README's configuration table), with the services started as
their containers start them. The frontend stops in gunicorn's master, before it binds its port: it
never accepts a connection it would then drop.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from frontend.settings import FrontendSettings, ServerSettings
from harness.backend import free_port
from harness.configuration import REQUIRED, configuration_table
from harness.services import ROOT, SECRET_KEY
from logger.settings import LoggerSettings
from worker.settings import WorkerSettings

TABLE = configuration_table()
GUNICORN_CONF = ROOT / "services/frontend/gunicorn.conf.py"
# Any text will do for these: there is nothing to refuse.
ANY_TEXT = {"DOMAIN", "TRUSTED_PROXIES", "APP_VERSION", "WORKER_NAME"}
# A value each variable refuses, and what the one line then says (after the variable's name).
MALFORMED = {
    "STACK_NAME": ("Demo_1", "invalid stack name 'Demo_1'"),
    "AWS_REGION": ("EU West", "must be a region name like eu-west-1, not 'EU West'"),
    "AWS_ENDPOINT_URL": ("localhost:4566", "must be an http:// or https:// address, not 'localhost:4566'"),
    "SECRET_KEY": ("too-short", "must be at least 16 characters, not 9"),
    "MAX_NUMBERS": ("0", "must be at least 1, not 0"),
    "MAX_ABS_NUMBER": ("1e18", "must be a whole number, not '1e18'"),
    "MAX_RESULT_DIGITS": ("-1", "must be at least 1, not -1"),
    "MAX_MESSAGE_BYTES": ("300000", "must be between 1024 and 262144, not 300000"),
    "MAX_BODY_BYTES": ("1000", "must be at least 1024, not 1000"),
    "REPLY_WAIT_SECONDS": ("ten", "must be a number, not 'ten'"),
    "PENDING_TIMEOUT_SECONDS": ("0", "must be at least 1, not 0"),
    "WEB_WORKERS": ("two", "must be a whole number, not 'two'"),
    "WEB_THREADS": ("0", "must be at least 1, not 0"),
    "GRACEFUL_TIMEOUT": ("15s", "must be a whole number, not '15s'"),
    "BIND": ("localhost", "must be HOST:PORT (e.g. 0.0.0.0:8080) or unix:PATH, not 'localhost'"),
    "REPLY_POLL_SECONDS": ("21", "must be between 1 and 20, not 21"),
    "REPLY_QUEUE_HEARTBEAT_SECONDS": ("0", "must be at least 1, not 0"),
    "REPLY_QUEUE_IDLE_SECONDS": ("100", "must be at least 3 x REPLY_QUEUE_HEARTBEAT_SECONDS (180), not 100"),
    "REPLY_STALL_SECONDS": ("4", "must be at least 5, not 4"),
    "LARGE_REQUESTS_AT_ONCE": ("0", "must be at least 1, not 0"),
    "LARGE_REQUEST_WAIT_SECONDS": ("-1", "must be at least 0, not -1"),
    "WORKER_TMP_DIR": ("/nonexistent", "must be a directory this process can write in, not '/nonexistent'"),
    "HISTORY_PAGE_SIZE": ("101", "must be between 1 and 100, not 101"),
    "ACCESS_MODE": ("everyone", "must be open or accounts, not 'everyone'"),
    "ACCOUNTS_REFRESH_SECONDS": ("nan", "must be a finite number, not 'nan'"),
    "SESSION_HOURS": ("-12", "must be at least 0, not -12"),
    "SUBMISSIONS_PER_MINUTE": ("0", "must be at least 1, not 0"),
    "INTEGERS_PER_MINUTE": ("many", "must be a whole number, not 'many'"),
    "SIGNIN_FAILURES_BEFORE_DELAY": ("0", "must be at least 1, not 0"),
    "SIGNIN_FAILURES_ALLOWED": ("1.5", "must be a whole number, not '1.5'"),
    "MAX_BACKLOG": ("0", "must be at least 1, not 0"),
    "LONG_POLL_SECONDS": ("21", "must be between 0 and 20, not 21"),
    "CONSUMER_LOOPS": ("33", "must be between 1 and 32, not 33"),
    "WORKER_PROCESSES": ("0", "must be at least 1, not 0"),
    "PARALLEL_FROM_NUMBERS": ("0", "must be at least 1, not 0"),
    "CANCEL_CHECK_SECONDS": ("61", "must be between 0 and 60, not 61"),
    "LOGGER_NAME": ("Logger 1", "must be lowercase letters, digits, '.' and '-', not 'Logger 1'"),
    "STATS_FLUSH_SECONDS": ("61", "must be between 1 and 60, not 61"),
    "HEALTH_FILE": ("/nonexistent/x.alive", "must be a file in a directory this process can write in"),
    "LOG_LEVEL": ("loud", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'LOUD'"),
    "LOG_FORMAT": ("xml", "must be auto, json or console, not 'xml'"),
}
# Read only when AWS_REGION is not set.
ALONE = {"AWS_DEFAULT_REGION": ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "EU West"}, "must be a region")}


def _cases() -> list[tuple[str, str, dict[str, str], str]]:
    cases = []
    for setting in TABLE:
        for service in setting.services:
            if setting.name in ANY_TEXT:
                continue
            if setting.name in ALONE:
                settings, says = ALONE[setting.name]
            else:
                value, says = MALFORMED[setting.name]
                settings = {setting.name: value}
            cases.append((service, setting.name, settings, says))
            if setting.default == REQUIRED:
                cases.append((service, setting.name, {setting.name: ""}, "is required but not set"))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A valid environment for every service, to spoil one variable at a time. Should a service not
    refuse a setting, it finds no AWS: its endpoint is a closed port on this machine."""
    folder = tmp_path_factory.mktemp("settings")
    return {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(folder),
        "PYTHONPATH": str(ROOT / "services"),
        "STACK_NAME": "demo",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "WORKER_TMP_DIR": str(folder),
        "HEALTH_FILE": str(folder / "service.alive"),
        "BIND": f"127.0.0.1:{free_port()}",
    }


def test_every_variable_a_service_reads_has_a_malformed_case() -> None:
    for setting in TABLE:
        if setting.services and setting.name not in ANY_TEXT:
            assert setting.name in MALFORMED or setting.name in ALONE, setting.name


def test_the_base_environment_is_valid_for_every_service(base_env: dict[str, str]) -> None:
    FrontendSettings.from_env(base_env)
    ServerSettings.from_env(base_env)
    WorkerSettings.from_env(base_env)
    LoggerSettings.from_env(base_env)


def _port_opened(port: int | None, done: threading.Event, seen: list[bool]) -> None:
    while port and not done.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                seen.append(True)
                return
        except OSError:
            time.sleep(0.01)


def _run(service: str, env: dict[str, str], port: int | None) -> tuple[int, list[str], bool]:
    """Start the service as its container does; its exit status, the lines it printed, and whether
    `port` accepted a connection meanwhile."""
    if service == "frontend":
        argv = [str(Path(sys.executable).with_name("gunicorn")), "-c", str(GUNICORN_CONF)]
    else:
        argv = [sys.executable, "-m", service]
    done, seen = threading.Event(), []
    probe = threading.Thread(target=_port_opened, args=(port, done, seen), daemon=True)
    probe.start()
    try:
        process = subprocess.run(
            argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60
        )
    finally:
        done.set()
        probe.join()
    return process.returncode, process.stdout.splitlines(), bool(seen)


@pytest.mark.parametrize(
    ("service", "variable", "settings", "says"),
    CASES,
    ids=[
        f"{service}-{variable}{'-missing' if settings.get(variable) == '' else ''}"
        for service, variable, settings, _ in CASES
    ],
)
def test_a_bad_setting_stops_the_service_with_one_line_naming_it(
    base_env: dict[str, str], service: str, variable: str, settings: dict[str, str], says: str
) -> None:
    env = {key: value for key, value in {**base_env, **settings}.items() if value}
    # Where the frontend would listen with the valid BIND (with a bad one, nowhere known).
    port = None if variable == "BIND" else int(base_env["BIND"].rpartition(":")[2])
    status, lines, port_opened = _run(service, env, port)
    assert status != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{service}: configuration error: {variable}"), lines[0]
    assert says in lines[0]
    assert not port_opened, "the frontend never accepts a connection"
