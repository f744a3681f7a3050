"""The group-commit coalescer: what goes alone, what shares a batch, who hears of failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from entroq_core.coalescing import Coalescer, NotSent


class Recorder:
    """A send_one/send_many pair that holds every send until released."""

    def __init__(self) -> None:
        self.sends: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_batches_with: Exception | None = None

    async def one(self, item: int) -> str:
        self.sends.append([item])
        await self.release.wait()
        return f"r{item}"

    async def many(self, items: list[int]) -> list[str]:
        self.sends.append(list(items))
        await self.release.wait()
        if self.fail_batches_with is not None:
            raise self.fail_batches_with
        return [f"r{i}" for i in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_calls_in_flight_go_alone_and_the_ones_that_queue_go_together() -> None:
    async def run() -> None:
        rec = Recorder()
        co: Coalescer[int, str] = Coalescer(rec.one, rec.many, max_in_flight=2)
        calls = [asyncio.create_task(co.call(i)) for i in range(7)]
        await _settle()
        # Two go at once, alone; the other five wait for a free slot.
        assert rec.sends == [[0], [1]]
        assert not co.idle
        rec.release.set()
        assert await asyncio.gather(*calls) == [f"r{i}" for i in range(7)]
        assert sorted(x for send in rec.sends for x in send) == list(range(7))
        assert len(rec.sends) <= 4  # the five queued ones shared at most two sends
        assert co.batches_sent >= 1
        assert co.items_batched == sum(len(s) for s in rec.sends if len(s) > 1)
        assert co.idle

    asyncio.run(run())


def test_joins_and_max_batch_keep_items_apart() -> None:
    async def run() -> None:
        rec = Recorder()

        def same_parity(batch: Sequence[int], item: int) -> bool:
            return batch[0] % 2 == item % 2

        co: Coalescer[int, str] = Coalescer(
            rec.one, rec.many, max_in_flight=1, max_batch=3, joins=same_parity
        )
        first = asyncio.create_task(co.call(100))
        await _settle()
        queued = [asyncio.create_task(co.call(i)) for i in range(8)]
        await _settle()
        rec.release.set()
        await asyncio.gather(first, *queued)
        # One slot: after the first, batches of one parity, at most three, in order.
        assert rec.sends == [[100], [0, 2, 4], [1, 3, 5], [6], [7]]

    asyncio.run(run())


def test_a_failed_batch_fails_its_own_callers_only() -> None:
    async def run() -> None:
        rec = Recorder()
        rec.fail_batches_with = RuntimeError("batch refused")
        co: Coalescer[int, str] = Coalescer(rec.one, rec.many, max_in_flight=1)
        alone = asyncio.create_task(co.call(0))
        await _settle()
        queued = [asyncio.create_task(co.call(i)) for i in (1, 2, 3)]
        await _settle()
        rec.release.set()
        assert await alone == "r0"
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        assert all(isinstance(o, RuntimeError) and str(o) == "batch refused" for o in outcomes)
        # The coalescer is usable afterwards.
        rec.fail_batches_with = None
        assert await co.call(9) == "r9"
        assert co.idle

    asyncio.run(run())


def test_a_caller_cancelled_while_queued_is_never_sent() -> None:
    async def run() -> None:
        rec = Recorder()
        co: Coalescer[int, str] = Coalescer(rec.one, rec.many, max_in_flight=1)
        first = asyncio.create_task(co.call(0))
        await _settle()
        kept = asyncio.create_task(co.call(1))
        dropped = asyncio.create_task(co.call(2))
        also_kept = asyncio.create_task(co.call(3))
        await _settle()
        dropped.cancel()
        await _settle()
        rec.release.set()
        assert await asyncio.gather(first, kept, also_kept) == ["r0", "r1", "r3"]
        with pytest.raises(asyncio.CancelledError):
            await dropped
        assert rec.sends == [[0], [1, 3]]

    asyncio.run(run())


def test_a_call_still_queued_at_its_deadline_is_never_sent_and_one_sent_is_awaited() -> None:
    async def run() -> None:
        rec = Recorder()
        co: Coalescer[int, str] = Coalescer(rec.one, rec.many, max_in_flight=1)
        loop = asyncio.get_running_loop()
        first = asyncio.create_task(co.call(0, loop.time() + 0.05))  # sent at once
        await _settle()
        queued = asyncio.create_task(co.call(1, loop.time() + 0.05))
        patient = asyncio.create_task(co.call(2, loop.time() + 60))
        with pytest.raises(NotSent):
            await queued
        assert not first.done()  # sent: its own send decides, not the queue deadline
        rec.release.set()
        assert await first == "r0" and await patient == "r2"
        assert rec.sends == [[0], [2]]  # 1 was dropped from the queue unsent
        assert co.idle

    asyncio.run(run())
