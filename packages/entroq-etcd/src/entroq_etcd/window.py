"""How wide a slice of a queue's ready index one claim reads.

etcd 3.4 visits every key of a range even when it returns only a few, so a claim
reads a random window of the hash-ordered ready index sized to hold about
``TARGET`` keys. Each read reports how many keys its window held, which updates
the estimate of the queue's size; the estimate is per backend handle and needs
no coordination (a wrong guess costs one more read, never a wrong answer).
"""

from __future__ import annotations

import random

from .keys import HASH_SPACE

TARGET = 24  # keys a window should hold: enough choice to avoid colliding claimers
_FIRST_GUESS = 4096.0  # queue size assumed before any read; 1/170 of the space
_MAX_TRACKED = 4096


class WindowSizer:
    """Per-queue estimates of the ready index size, turned into window widths."""

    def __init__(self, rand: random.Random | None = None) -> None:
        self._estimate: dict[str, float] = {}
        self._rand = rand or random.Random()

    def window(self, queue: str) -> tuple[int, int]:
        """Return (start, width) of the window to read next for ``queue``."""
        size = self._estimate.get(queue, _FIRST_GUESS)
        if size <= TARGET:
            return self._rand.randrange(HASH_SPACE), HASH_SPACE
        width = max(1, min(HASH_SPACE, int(HASH_SPACE * TARGET / size)))
        return self._rand.randrange(HASH_SPACE), width

    def observe(self, queue: str, width: int, count: int) -> None:
        """Learn from a read of ``width`` hash positions that held ``count`` keys."""
        seen = count * HASH_SPACE / max(width, 1)
        if width >= HASH_SPACE:
            size = seen  # a full read is exact
        else:
            # Smooth: windows are small samples. An empty one halves the guess at most.
            old = self._estimate.get(queue, _FIRST_GUESS)
            size = max(0.5 * old + 0.5 * seen, old / 2)
        if len(self._estimate) >= _MAX_TRACKED and queue not in self._estimate:
            self._estimate.pop(next(iter(self._estimate)))
        self._estimate[queue] = size

    def is_full(self, width: int) -> bool:
        """True if a window of ``width`` covers the whole queue."""
        return width >= HASH_SPACE
