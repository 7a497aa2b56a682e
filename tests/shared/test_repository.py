"""The repository itself: no secrets committed, every dependency pinned, and pins actually used."""

from __future__ import annotations

import re
import subprocess

from harness.secrets import leaks
from harness.services import ROOT

PIN = re.compile(r"^([A-Za-z0-9._-]+)(\[[a-z0-9,_-]+\])?==[0-9][0-9A-Za-z.+!-]*$")


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def test_no_static_aws_key_or_private_key_is_in_the_repository() -> None:
    findings = {name: found for name in _tracked_files() if (found := leaks((ROOT / name).read_bytes()))}
    assert findings == {}


def test_no_pem_key_or_credentials_file_is_in_the_repository() -> None:
    suspicious = [
        name
        for name in _tracked_files()
        if name.endswith((".pem", ".key", ".p12", ".pfx")) or name.split("/")[-1] in {"credentials", ".env"}
    ]
    assert suspicious == []


def _requirement_lines(path: str) -> list[str]:
    lines = (ROOT / path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-"))]


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_is_pinned_in_the_lock_file() -> None:
    lock = _requirement_lines("requirements/lock.txt")
    assert lock, "requirements/lock.txt is empty"
    assert [line for line in lock if not PIN.match(line)] == []
    pinned = {_name(line) for line in lock}
    wanted = _requirement_lines("requirements/dev.txt") + _requirement_lines(
        "services/frontend/requirements.txt"
    )
    assert {_name(line) for line in wanted} - pinned == set()
    for dependency in ("boto3", "structlog"):  # the shared package's own
        assert dependency in pinned


def test_the_images_install_with_the_lock_file_as_constraints() -> None:
    for service in ("frontend", "worker", "logger"):
        dockerfile = (ROOT / f"services/{service}/Dockerfile").read_text()
        assert "-c /src/requirements/lock.txt" in dockerfile, service
    assert "localstack/localstack:4.14.0" in (ROOT / "compose.local.yaml").read_text()


def test_every_shell_script_is_shellcheck_clean() -> None:
    scripts = [
        name
        for name in _tracked_files()
        if name.endswith(".sh")
        or (ROOT / name).read_bytes().startswith(b"#!/usr/bin/env bash")
        or (ROOT / name).read_bytes().startswith(b"#!/bin/sh")
    ]
    assert "scripts/test" in scripts
    assert "localstack/ready.d/provision.sh" in scripts
    checked = subprocess.run(["shellcheck", "-x", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
