"""Peak memory of a service: the VmHWM of its process and of every process under it, summed.

gunicorn's master and its workers, or the worker and its process pool, are one service. Children that
share pages with their parent count them again, so the sum is an upper bound.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

PROC = Path("/proc")


def children_by_parent(proc: Path = PROC) -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces and parentheses: the fields start after the last ")".
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree[parent].append(int(stat.parent.name))
    return tree


def family(pid: int, tree: dict[int, list[int]]) -> list[int]:
    """The process and all its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(tree.get(current, []))
    return found


def status_kib(status_text: str, field: str) -> int:
    for line in status_text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def peak_mib(pid: int, proc: Path = PROC) -> float:
    """The summed high-water mark of resident memory of `pid` and its descendants, in MiB."""
    total_kib = 0
    for member in family(pid, children_by_parent(proc)):
        try:
            total_kib += status_kib((proc / str(member) / "status").read_text(), "VmHWM")
        except OSError:
            continue  # it exited meanwhile
    return total_kib / 1024
