"""Retry delays: exponential with full jitter, capped."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import InvalidArgument


@dataclass(frozen=True)
class Backoff:
    """Retry delays: d = min(cap, base * factor**(attempt-1)), jittered within [d/2, d].

    Jitter spreads retries of tasks that failed together (a dependency went down)
    instead of bringing them back in one wave; keeping half of d makes the delay
    still grow with every attempt.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise InvalidArgument("backoff.base", self.base, "must be positive")
        if self.factor < 1:
            raise InvalidArgument("backoff.factor", self.factor, "must be at least 1")
        if self.cap < self.base:
            raise InvalidArgument("backoff.cap", self.cap, "must be at least base")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the given (1-based) retry attempt."""
        exponent = max(0, attempt - 1)
        # Avoid float overflow for absurd attempt counts: the cap wins long before.
        ceiling = self.cap if exponent > 64 else min(self.cap, self.base * self.factor**exponent)
        if not self.jitter:
            return ceiling
        return (rng or random).uniform(ceiling / 2, ceiling)
