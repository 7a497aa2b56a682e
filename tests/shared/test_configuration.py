"""README's configuration table is the one truth about settings: the code reads exactly the variables it
lists, with its defaults and limits, and compose passes each one to the services that read it, with the
same default, so setting it always has an effect.

What the code reads is recorded from the settings classes themselves (every read goes through
qcompute.settings.Env); what compose passes is what the real Docker Compose binary makes of
compose.yaml (`docker compose config`).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from frontend.settings import FrontendSettings, ServerSettings
from harness.configuration import (
    COMPUTED,
    REQUIRED,
    SERVICES,
    Setting,
    configuration_table,
    same,
)
from harness.services import ROOT
from logger.settings import LoggerSettings
from qcompute.settings import ConfigError, Env
from worker.settings import WorkerSettings

TABLE = configuration_table()
# Everything that reads a service's settings at its start (gunicorn.conf.py reads the frontend's two).
READERS: dict[str, tuple[Callable[[dict[str, str]], Any], ...]] = {
    "frontend": (FrontendSettings.from_env, ServerSettings.from_env),
    "worker": (WorkerSettings.from_env,),
    "logger": (LoggerSettings.from_env,),
}
# A valid value for each required variable.
VALID = {"STACK_NAME": "demo", "AWS_REGION": "eu-west-1", "SECRET_KEY": "s" * 32}
COMPOSE_FILES = ("compose.yaml", "compose.local.yaml", "compose.aws.yaml")
# Interpolated in compose's files: ${VAR}, ${VAR:-default}, ${VAR:?error}, ${VAR:+value}.
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
COMMENT = re.compile(r"(^|\s)#.*$", re.M)


@dataclass(frozen=True)
class Read:
    kind: str
    default: Any
    minimum: Any
    maximum: Any


@pytest.fixture(scope="module")
def code_reads() -> dict[str, dict[str, Read]]:
    """Each service's variables as its code reads them: kind, default and limits, from every read
    made while building its settings from only the required variables, and from each of those
    missing (some variables are read only then: AWS_DEFAULT_REGION)."""
    recorded: dict[str, dict[str, Read]] = {}
    with pytest.MonkeyPatch.context() as patch:
        reads: dict[str, Read] = {}
        for kind in ("text", "choice", "integer", "number", "directory", "file", "address", "url"):
            original = getattr(Env, kind)

            def record(self, name, default=None, *args, _kind=kind, _original=original, **kwargs):
                # The first read of a name wins: choice() and the others read through text().
                limits = (kwargs.get("minimum", 0), kwargs.get("maximum"))
                reads.setdefault(
                    name, Read(_kind, default, *(limits if _kind in ("integer", "number") else (None, None)))
                )
                return _original(self, name, default, *args, **kwargs)

            patch.setattr(Env, kind, record)
        for service, readers in READERS.items():
            reads.clear()
            for environ in _environments(service):
                for reader in readers:
                    with contextlib.suppress(ConfigError):
                        reader(environ)
            recorded[service] = dict(reads)
    return recorded


def _required(service: str) -> list[str]:
    return [s.name for s in TABLE if service in s.services and s.default == REQUIRED]


def _environments(service: str) -> Iterator[dict[str, str]]:
    required = {name: VALID[name] for name in _required(service)}
    yield required
    for name in required:
        yield {key: value for key, value in required.items() if key != name}


def _rows(service: str) -> list[Setting]:
    return [s for s in TABLE if service in s.services]


def test_each_variable_has_one_row() -> None:
    names = [s.name for s in TABLE]
    assert names
    assert len(names) == len(set(names))


@pytest.mark.parametrize("service", SERVICES)
def test_the_table_lists_exactly_what_each_service_reads(service: str, code_reads) -> None:
    assert sorted(code_reads[service]) == sorted(s.name for s in _rows(service))


@pytest.mark.parametrize("service", SERVICES)
def test_the_code_defaults_are_the_tables(service: str, code_reads) -> None:
    differ = {}
    for setting in _rows(service):
        read = code_reads[service][setting.name]
        if setting.default in (REQUIRED, COMPUTED):
            continue
        if not same(read.default, setting.default_for(service)):
            differ[setting.name] = (read.default, setting.default_for(service))
    assert differ == {}, "the code's default, the table's"


@pytest.mark.parametrize("service", SERVICES)
def test_required_means_the_service_stops_without_it_and_nothing_else_is(service: str) -> None:
    required = {name: VALID[name] for name in _required(service)}
    for reader in READERS[service]:
        reader(required)
    for name in required:
        without = {key: value for key, value in required.items() if key != name}
        with pytest.raises(ConfigError, match=name):  # noqa: PT012 - any of the service's readers
            for reader in READERS[service]:
                reader(without)


@pytest.mark.parametrize("service", SERVICES)
def test_the_limits_are_the_tables(service: str, code_reads) -> None:
    differ = {}
    for setting in _rows(service):
        read = code_reads[service][setting.name]
        if read.kind not in ("integer", "number"):
            assert (setting.minimum, setting.maximum) == (None, None), f"{setting.name} is not a number"
            continue
        # Seconds and counts are never negative: a minimum of 0 goes without saying.
        code = (read.minimum if read.minimum else None, read.maximum)
        table = (setting.minimum if setting.minimum else None, setting.maximum)
        if code != table:
            differ[setting.name] = (code, table)
    assert differ == {}, "(minimum, maximum) in the code, in the table"


def _compose_config(tmp_path: Path, settings: dict[str, str]) -> dict[str, dict]:
    """The services as the real Compose binary makes them of compose.yaml with these variables set
    (in an env file) and no others."""
    env_file = tmp_path / "settings.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    shown = subprocess.run(
        [
            str(Path(sys.executable).parent / "docker-compose"),
            *("--env-file", str(env_file), "-f", str(ROOT / "compose.yaml")),
            *("config", "--format", "json"),
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["services"]


def _service_rows() -> Iterator[tuple[str, Setting]]:
    for setting in TABLE:
        for service in (*setting.services, *(["proxy"] if "proxy" in setting.used_by else [])):
            yield service, setting


def test_compose_passes_every_setting_with_the_tables_default(tmp_path: Path) -> None:
    services = _compose_config(tmp_path, VALID)
    differ = {}
    for service, setting in _service_rows():
        if not setting.under_compose:
            continue
        passed = services[service]["environment"].get(setting.name)
        expected = (
            VALID[setting.name] if setting.default == REQUIRED else setting.compose_default_for(service)
        )
        if passed is None or not same(passed, expected):
            differ[f"{service} {setting.name}"] = (passed, expected)
    assert differ == {}, "what compose passes when the variable is not set, the table's default"
    for service in (*SERVICES, "proxy"):
        documented = {s.name for s in TABLE if service in s.services or service in s.used_by}
        assert set(services[service]["environment"]) <= documented, f"{service}: only what the table lists"


def test_compose_passes_on_what_the_user_sets_and_only_where_the_table_says(tmp_path: Path) -> None:
    names = {setting.name for _, setting in _service_rows()}
    chosen = {name: f"set-{name.lower()}" for name in names}
    services = _compose_config(tmp_path, chosen)
    differ = {}
    for service, setting in _service_rows():
        passed = services[service]["environment"].get(setting.name)
        if (passed == chosen[setting.name]) != setting.under_compose:
            differ[f"{service} {setting.name}"] = passed
    assert differ == {}, "set, and what reached the service (marked 'not under compose' if it must not)"


def _without_comments(file: str) -> str:
    return COMMENT.sub("", (ROOT / file).read_text())


def test_compose_files_interpolate_only_documented_variables_with_their_defaults() -> None:
    by_name = {s.name: s for s in TABLE}
    differ = {}
    for file in COMPOSE_FILES:
        for name, operator, value in INTERPOLATION.findall(_without_comments(file)):
            assert name in by_name, f"{file} uses ${{{name}}}, which the table does not list"
            setting = by_name[name]
            assert setting.under_compose, f"{file} passes {name}, which the table says it does not"
            if operator == ":-":
                allowed = [setting.compose_default_for(s) for s in setting.services or ("",)]
                if not any(same(value, default) for default in allowed):
                    differ[f"{file} {name}"] = (value, allowed)
            elif operator == ":?":
                assert setting.default == REQUIRED, f"{file} requires {name}"
    assert differ == {}, "the default in the compose file, the table's"
    for setting in TABLE:
        files = {
            "compose": COMPOSE_FILES,
            "compose.yaml": ("compose.yaml",),
            "compose.local.yaml": ("compose.local.yaml",),
        }
        for used_by in setting.used_by:
            if used_by in files:
                assert any(f"${{{setting.name}" in (ROOT / f).read_text() for f in files[used_by]), (
                    setting.name
                )


def test_scripts_read_what_the_table_says() -> None:
    for setting in TABLE:
        for script in (used for used in setting.used_by if used.startswith("scripts/")):
            source = (ROOT / script).read_text()
            assert setting.name in source, f"{script} does not read {setting.name}"
            if setting.default:
                assert f'"{setting.name}", "{setting.default}"' in source, f"{script}: {setting.name}"
