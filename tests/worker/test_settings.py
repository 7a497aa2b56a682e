"""How many compute processes the worker starts by default: one per core, as far as memory allows."""

from __future__ import annotations

import pytest

from worker import settings


@pytest.mark.parametrize(
    ("content", "expected"),
    [("536870912\n", 512), ("max\n", None), ("9223372036854771712\n", None), ("2147483648", 2048)],
)
def test_the_memory_limit_is_read_from_the_cgroup(tmp_path, content: str, expected: int | None) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(content)
    assert settings.memory_limit_mib((tmp_path / "absent", limit)) == expected


@pytest.mark.parametrize(
    ("limit_mib", "cores", "expected"),
    [(None, 4, 4), (4096, 2, 2), (512, 2, 2), (448, 2, 1), (256, 8, 1), (1024, 8, 5)],
)
def test_compute_processes_follow_the_cores_and_the_memory(
    monkeypatch, limit_mib: int | None, cores: int, expected: int
) -> None:
    monkeypatch.setattr(settings, "memory_limit_mib", lambda: limit_mib)
    monkeypatch.setattr(settings.os, "cpu_count", lambda: cores)
    assert settings.default_processes() == expected
