"""Waiting in tests for something to happen, with a limit that only guards against hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from entroq_core import AsyncEntroQ
from entroq_core.errors import BackendUnavailable

# Generous: a loaded CI machine must never hit it; it only turns a hang into a failure.
HANG_GUARD = 120.0


async def until(
    condition: Callable[[], bool], what: str, timeout: float = HANG_GUARD, every: float = 0.05
) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def until_reachable(eq: AsyncEntroQ, timeout: float = HANG_GUARD) -> None:
    """Return once ``eq`` answers a call (its backend unavailable until then)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await eq.time()
                    return
                except BackendUnavailable:
                    await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"the backend was still unavailable after {timeout:g}s") from None
