"""CPU this machine spent, all processes together, read from /proc/stat.

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


class Meter:
    """The machine's busy CPU between start() and stop(), and the work done meanwhile."""

    def __init__(self) -> None:
        self._started: float | None = None
        self.busy: float | None = None
        self.count = 0  # units of work done while measured

    def start(self) -> None:
        self._started = busy_seconds()

    def stop(self, count: int) -> None:
        """End the measurement; ``count`` units of work were done meanwhile."""
        self.count = count
        now = busy_seconds()
        self.busy = None if now is None or self._started is None else now - self._started

    def us_per_unit(self) -> float | None:
        """Busy CPU microseconds per unit of work, or None if unknown."""
        return None if self.busy is None or self.count == 0 else self.busy * 1e6 / self.count
