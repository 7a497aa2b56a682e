"""Peak memory of a service: its process and every descendant, read from /proc."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.memory import children_by_parent, family, peak_mib


def fake_process(proc: Path, pid: int, parent: int, name: str, hwm_kib: int) -> None:
    folder = proc / str(pid)
    folder.mkdir()
    (folder / "stat").write_text(f"{pid} ({name}) S {parent} {pid} {pid} 0 -1\n")
    (folder / "status").write_text(f"Name:\t{name}\nVmHWM:\t  {hwm_kib} kB\nVmRSS:\t  1 kB\n")


def test_a_service_is_its_process_and_all_its_descendants(tmp_path: Path):
    fake_process(tmp_path, 10, 1, "gunicorn: master", 2048)
    fake_process(tmp_path, 11, 10, "gunicorn: worker [a) b]", 3072)  # a name with ") " in it
    fake_process(tmp_path, 12, 11, "forkserver", 1024)
    fake_process(tmp_path, 20, 1, "someone else", 999_999)
    tree = children_by_parent(tmp_path)
    assert sorted(family(10, tree)) == [10, 11, 12]
    assert peak_mib(10, tmp_path) == pytest.approx(6.0)
    assert peak_mib(12, tmp_path) == pytest.approx(1.0)


def test_this_process_has_a_peak():
    import os

    assert peak_mib(os.getpid()) > 1
