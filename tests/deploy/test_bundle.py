"""The application bundle holds exactly what building and rolling out the stack needs on the instance."""

from __future__ import annotations

import gzip
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from harness.services import ROOT
from qcompute.deploy import bundle, instance


def _tracked(paths: tuple[str, ...]) -> set[str]:
    """What git would hand over under those paths (tracked or new, never ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {name for name in listed.stdout.splitlines() if (ROOT / name).is_file()}


def test_the_bundle_holds_exactly_the_build_inputs() -> None:
    files = bundle.build(ROOT).files
    assert set(files) == _tracked(bundle.CONTENTS)
    assert {
        "compose.yaml",
        "compose.aws.yaml",
        ".dockerignore",
        "requirements/lock.txt",
        "packages/qcompute/pyproject.toml",
        "scripts/rollout",
    } <= set(files)
    for unwanted in (r"^tests/", r"\.pyc$", r"__pycache__", r"^\.git/", r"\.egg-info/", r"/\."):
        assert [name for name in files if re.search(unwanted, name)] == [], unwanted
    assert [name for name in files if name.startswith("scripts/")] == ["scripts/rollout"], "no other tool"


def test_every_file_the_images_copy_is_in_the_bundle() -> None:
    files = bundle.build(ROOT).files
    compose = (ROOT / "compose.yaml").read_text()
    dockerfiles = re.findall(r"dockerfile: (\S+)", compose)
    assert dockerfiles
    assert set(dockerfiles) <= set(files)
    for dockerfile in dockerfiles:
        for line in (ROOT / dockerfile).read_text().splitlines():
            copied = re.match(r"COPY (?!--from)(\S+) ", line)
            if copied:
                source = copied.group(1).rstrip("/")
                assert any(name == source or name.startswith(f"{source}/") for name in files), (
                    dockerfile,
                    line,
                )


def test_the_archive_is_reproducible_and_plain(tmp_path: Path) -> None:
    first, second = bundle.build(ROOT), bundle.build(ROOT)
    assert first.data == second.data
    assert first.digest == second.digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first.data))) as archive:
        members = archive.getmembers()
    assert [member.name for member in members] == list(first.files)
    for member in members:
        assert member.isfile()
        assert member.uid == 0
        assert member.mtime == 0
        assert member.mode in {0o644, 0o755}
        assert not member.name.startswith("/")
        assert ".." not in member.name.split("/")


def test_caches_and_hidden_files_stay_out_and_a_change_changes_the_digest(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for name in bundle.bundle_files(ROOT):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    before = bundle.build(source)
    assert before.digest == bundle.build(ROOT).digest, "the same files give the same bundle anywhere"

    (source / "services/worker/__pycache__").mkdir()
    (source / "services/worker/__pycache__/main.cpython-311.pyc").write_bytes(b"\0")
    (source / "services/frontend/.env").write_text("SECRET_KEY=oops\n")
    (source / "packages/qcompute/src/qcompute.egg-info").mkdir()
    (source / "packages/qcompute/src/qcompute.egg-info/PKG-INFO").write_text("x")
    assert bundle.build(source).digest == before.digest

    with (source / "services/worker/compute.py").open("a") as changed:
        changed.write("\n# changed\n")
    assert bundle.build(source).digest != before.digest


def test_the_memory_an_instance_is_checked_for_is_compose_s() -> None:
    """`deploy up` refuses an instance too small for compose.yaml's memory limits: both must agree."""
    compose = (ROOT / "compose.yaml").read_text()
    for service, mib in instance.SERVICE_MEMORY_MIB.items():
        variable = f"{service.upper()}_MEMORY"
        assert f"mem_limit: ${{{variable}:-{mib}m}}" in compose, service
        assert f"memswap_limit: ${{{variable}:-{mib}m}}" in compose, service
    assert instance.memory_needed_mib(1) <= 2048, "the default t3.small holds one worker and the proxy"
    assert instance.memory_needed_mib(5) <= 4096 < instance.memory_needed_mib(6), "a t3.medium 5"
