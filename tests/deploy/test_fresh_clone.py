"""The deployer on a fresh clone: only Python 3.11+ and credentials, no package installed by hand; and
the deployer's code stays out of what the service images install."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.backend import REGION, Backend
from harness.clone import fresh_clone
from harness.services import ROOT
from qcompute.deploy import bundle


def _fresh_home(home: Path) -> dict[str, str]:
    """A HOME with nothing in it but how this machine's pip reaches the package index, and pip's wheel
    cache (downloads only, nothing of the project) so the test stays fast."""
    for config in (".config/pip/pip.conf", ".pip/pip.conf"):
        if (Path.home() / config).is_file():
            (home / config).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path.home() / config, home / config)
    env = {"HOME": str(home)}
    cache = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False
    )
    if cache.returncode == 0 and cache.stdout.strip():
        env["PIP_CACHE_DIR"] = cache.stdout.strip()
    return env


def _bare_env(tmp_path: Path, backend_env: dict[str, str]) -> dict[str, str]:
    """A user's shell: no interpreter or package of the tests' own (not their venv on PATH, not PYTHON,
    not PYTHONPATH), no AWS settings or credentials but the emulator's, an empty HOME."""
    home = tmp_path / "home"
    home.mkdir()
    path = [entry for entry in os.environ["PATH"].split(os.pathsep) if not entry.startswith(str(ROOT))]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key not in {"PYTHON", "PYTHONPATH", "VIRTUAL_ENV", "STACK_NAME"}
    }
    return env | {
        **backend_env,
        **_fresh_home(home),
        "PATH": os.pathsep.join(path),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_deploy_plan_runs_from_a_fresh_clone_with_nothing_installed(
    deploy_backend: Backend, tmp_path: Path
) -> None:
    clone = fresh_clone(tmp_path / "clone")
    assert not (clone / ".cache").exists()
    env = _bare_env(tmp_path, deploy_backend.env)
    stack_name = f"f{secrets.token_hex(4)}"

    def plan() -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(clone / "scripts/deploy"), "plan", "--stack", stack_name, "--region", REGION],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    first = plan()
    assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
    assert f"plan stack {stack_name!r} in {REGION}" in first.stdout
    assert "to create" in first.stdout
    assert "making the deployer's environment" in first.stderr
    # Its own small environment, not the tests' one.
    assert (clone / ".cache/deploy-venv/bin/python").exists()
    assert not (clone / ".cache/venv").exists()

    again = plan()
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert again.stderr == "", "the environment is made once and reused, quietly"

    # The other scripts of README's Deploy section use the same environment.
    provision_plan = subprocess.run(
        [str(clone / "scripts/provision"), "plan", "--stack", stack_name, "--region", REGION],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert provision_plan.returncode == 0, f"{provision_plan.stdout}\n{provision_plan.stderr}"
    assert f"plan stack {stack_name!r}" in provision_plan.stdout
    assert f"create queue        {stack_name}-requests" in provision_plan.stdout
    assert provision_plan.stderr == ""


@pytest.mark.parametrize("script", ["provision", "teardown", "dlq"])
def test_help_of_the_stack_scripts_needs_nothing_installed(script: str, tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    env = _bare_env(tmp_path, {})
    shown = subprocess.run(
        [str(clone / "scripts" / script), "--help"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Usage: scripts/{script} ")
    assert shown.stderr == ""
    assert not (clone / ".cache").exists(), "--help makes no environment"


def test_the_images_install_the_shared_package_without_the_deployer(tmp_path: Path) -> None:
    # The package as the instance's image builds see it: from the bundle, built as a wheel.
    source = tmp_path / "bundle"
    for name in bundle.bundle_files(ROOT):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    wheel_options = ["--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "wheels")]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *wheel_options, str(source / "packages/qcompute")],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheels").glob("qcompute-*.whl")
    modules = zipfile.ZipFile(wheel).namelist()
    assert "qcompute/provision.py" in modules
    assert "qcompute/iam.py" in modules
    assert [name for name in modules if name.startswith("qcompute/deploy")] == []
