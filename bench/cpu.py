"""CPU time of a service over a window: user + system time of its process and every process under it.

Read from /proc/<pid>/stat as memory.py reads peaks: gunicorn's master and workers, or Celery's worker
and its pool, are one service. Children already waited for count through their parent's cutime and
cstime, so a pool process that exits meanwhile is not lost.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.calls import role
from bench.memory import PROC, children_by_parent, family

TICKS = os.sysconf("SC_CLK_TCK")

# The emulator the run is talking to (its pid, set by bench.emulators while it runs). Every window
# measures it too, as "emulator": the machine's CPU that a system's AWS calls cost, beside its own.
EMULATOR: dict[str, int] = {}


def own_seconds(pid: int, proc: Path = PROC) -> float:
    """utime + stime + cutime + cstime of one process; 0 when it is gone."""
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command name: state is field 3 of proc(5), utime 14, stime 15, cutime 16, cstime 17.
    return sum(int(value) for value in fields[11:15]) / TICKS


def seconds(pid: int, proc: Path = PROC, *, descendants: bool = True) -> float:
    """CPU seconds so far of `pid` and (unless told not to) its descendants."""
    members = family(pid, children_by_parent(proc)) if descendants else [pid]
    return sum(own_seconds(member, proc) for member in members)


@dataclass
class Meter:
    """A measured window: its wall-clock bounds and the CPU each service used within it.

    `processes` maps a process name (worker-0, logger...) to its pid; services of one role are summed.
    This process (the load generator) is measured alone, not with the services it started.
    """

    processes: dict[str, int] = field(default_factory=dict)
    include_self: bool = True
    window: tuple[float, float] | None = None
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    _before: dict[str, float] = field(default_factory=dict)
    _started: float = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {name: seconds(pid) for name, pid in self.processes.items()}
        if "pid" in EMULATOR:
            sample["emulator"] = seconds(EMULATOR["pid"])
        if self.include_self:
            sample["client"] = seconds(os.getpid(), descendants=False)
        return sample

    def begin(self) -> None:
        self._before = self._sample()
        self._started = time.time()

    def end(self) -> None:
        ended = time.time()
        after = self._sample()
        self.window = (self._started, ended)
        totals: dict[str, float] = {}
        for name, value in after.items():
            used = max(0.0, value - self._before.get(name, 0.0))
            totals[role(name)] = totals.get(role(name), 0.0) + used
        self.cpu_seconds = {name: round(value, 3) for name, value in totals.items()}

    def idle(self, seconds_: float) -> None:
        """A window of `seconds_` with no load at all."""
        self.begin()
        time.sleep(seconds_)
        self.end()
