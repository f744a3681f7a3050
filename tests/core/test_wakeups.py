"""Wake-ups for waiting claims: who is woken by an arrival, and what counts as one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from entroq_core.timeutil import to_ms
from entroq_core.types import Task
from entroq_core.wakeups import QueueWakeups, future_arrivals

WRITTEN = datetime(2026, 1, 1, tzinfo=UTC)


def _task(queue: str, at: datetime) -> Task:
    return Task(queue, f"id-{queue}-{at.timestamp()}", 0, at, "me", b"", WRITTEN, WRITTEN)


def test_only_tasks_due_after_their_write_are_arrivals_and_the_earliest_counts() -> None:
    soon, later = WRITTEN + timedelta(seconds=1), WRITTEN + timedelta(seconds=9)
    tasks = [
        _task("a", later),
        _task("a", soon),
        _task("b", WRITTEN),  # due at its write: a ready task, never an arrival
        _task("c", WRITTEN - timedelta(days=1)),  # a past time given as-is
    ]
    assert future_arrivals(tasks) == {"a": to_ms(soon)}


def test_an_arrival_wakes_only_waiters_that_would_sleep_past_it() -> None:
    async def run() -> None:
        wakeups = QueueWakeups()
        with wakeups.watch(["q"]) as short, wakeups.watch(["q"]) as long:
            short_wait = asyncio.create_task(short.wait(0.5))
            long_wait = asyncio.create_task(long.wait(60))
            await asyncio.sleep(0.05)
            # Due in 5 s: the 60 s sleeper must look again; the 0.5 s one need not.
            wakeups.arrival("q", to_ms(datetime.now(UTC)) + 5_000)
            assert await asyncio.wait_for(long_wait, 5) is True
            await asyncio.sleep(0.05)
            assert not short_wait.done()
            assert await short_wait is False  # it ran to its own timeout

    asyncio.run(run())
