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

from harness.backend import REGION, Backend
from harness.services import ROOT
from qcompute.deploy import bundle


def _clone(destination: Path) -> Path:
    """The repository's files as a clone would have them (committed or not yet), without .cache."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


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


def test_deploy_plan_runs_from_a_fresh_clone_with_nothing_installed(
    deploy_backend: Backend, tmp_path: Path
) -> None:
    clone = _clone(tmp_path / "clone")
    assert not (clone / ".cache").exists()
    home = tmp_path / "home"
    home.mkdir()
    # No interpreter or package of the tests' own: not their venv on PATH, not PYTHON, not PYTHONPATH.
    path = [entry for entry in os.environ["PATH"].split(os.pathsep) if not entry.startswith(str(ROOT))]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key not in {"PYTHON", "PYTHONPATH", "VIRTUAL_ENV", "STACK_NAME"}
    }
    env |= {
        **deploy_backend.env,
        **_fresh_home(home),
        "PATH": os.pathsep.join(path),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
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
