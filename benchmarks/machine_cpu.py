"""CPU this machine spent, all processes together, read from /proc/stat, and
optionally that of named processes, from /proc/<pid>/stat.

On a shared, noisy host a rate swings with what the neighbours do, but the CPU
a piece of work costs barely moves: CPU per cycle compares designs where rates
cannot. Time the host took away (steal) and idle time are not counted.
"""

from __future__ import annotations

import os

_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user, nice, system, irq, softirq
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_seconds() -> float | None:
    """CPU seconds the machine has been busy since boot, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    return sum(int(fields[i]) for i in _BUSY_FIELDS) / _TICKS


def process_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) process ``pid`` has used, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name (field 2) may hold spaces: count from its closing ")".
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


class Meter:
    """The machine's busy CPU between start() and stop(), and the work done meanwhile.

    ``processes`` (name -> pid) are also measured one by one, so a run can say
    which process the machine's CPU went to.
    """

    def __init__(self, processes: dict[str, int] | None = None) -> None:
        self._processes = dict(processes or {})
        self._started: float | None = None
        self._started_by: dict[str, float | None] = {}
        self.busy: float | None = None
        self.busy_by: dict[str, float | None] = {}
        self.count = 0  # units of work done while measured

    def start(self) -> None:
        self._started_by = {name: process_seconds(pid) for name, pid in self._processes.items()}
        self._started = busy_seconds()

    def stop(self, count: int) -> None:
        """End the measurement; ``count`` units of work were done meanwhile."""
        self.count = count
        now = busy_seconds()
        self.busy = _spent(self._started, now)
        self.busy_by = {
            name: _spent(self._started_by.get(name), process_seconds(pid))
            for name, pid in self._processes.items()
        }

    def us_per_unit(self, process: str | None = None) -> float | None:
        """Busy CPU microseconds per unit of work (of the machine, or of one of the
        named processes), or None if unknown."""
        busy = self.busy if process is None else self.busy_by.get(process)
        return None if busy is None or self.count == 0 else busy * 1e6 / self.count


def _spent(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start
