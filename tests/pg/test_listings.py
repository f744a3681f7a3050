"""Listings of a queue longer than a page: complete, filtered, and holding no connection."""

from __future__ import annotations

import asyncio
import uuid

import entroq_pg
from entroq_core import AsyncEntroQ, Modification, TaskData
from entroq_pg.backend import PAGE_SIZE, _by_size

HANG_GUARD = 60


def _q(tag: str) -> str:
    return f"listing/{tag}/{uuid.uuid4().hex[:8]}"


def test_readers_that_stall_mid_listing_hold_no_connection(pg_url: str) -> None:
    # A pool of two and three listings whose readers take one task and stop
    # reading (a client that stopped reading its stream, a pager left open):
    # everyone else's calls must still get a connection.
    queue = _q("stalled")

    async def run() -> None:
        url = f"{pg_url}?pool_max=2&pool_timeout=2"
        eq = AsyncEntroQ(await entroq_pg.open_backend(url))
        try:
            inserts = [TaskData(queue, value=b"v" * 100) for _ in range(PAGE_SIZE + 500)]
            await eq.modify(Modification(inserts=inserts))
            stalled = [eq.stream_tasks(queue) for _ in range(3)]
            for listing in stalled:
                assert (await anext(listing)).queue == queue
            async with asyncio.timeout(HANG_GUARD):
                assert (await eq.queues(exact=[queue]))[queue] == PAGE_SIZE + 500
                await eq.modify(inserts=[TaskData(queue, value=b"more")])
                assert await eq.try_claim(queue, 30) is not None
            # And each stalled listing goes on where it stopped, to the end.
            for listing in stalled:
                rest = [t.id async for t in listing]
                assert len(rest) >= PAGE_SIZE + 499
            for listing in stalled:
                await listing.aclose()
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_a_long_listing_filters_by_claimant_and_limits_across_pages(pg_url: str) -> None:
    queue = _q("filtered")

    async def run() -> None:
        mine = AsyncEntroQ(await entroq_pg.open_backend(pg_url), claimant="mine")
        theirs = AsyncEntroQ(await entroq_pg.open_backend(pg_url), claimant="theirs")
        try:
            total = 2 * PAGE_SIZE + 300
            done = await mine.modify(
                Modification(inserts=[TaskData(queue, value=b"%d" % i) for i in range(total)])
            )
            values = {t.id: t.value for t in done.inserted}
            leased = set()
            for _ in range(700):  # leased by someone else: hidden from mine's filter
                task = await theirs.try_claim(queue, 600)
                assert task is not None
                leased.add(task.id)
            everything = [t async for t in mine.stream_tasks(queue)]
            assert sorted(t.id for t in everything) == sorted(values)
            assert all(t.value == values[t.id] for t in everything)
            visible = [t.id async for t in mine.stream_tasks(queue, claimant="mine")]
            assert len(visible) == len(set(visible)) == total - 700
            assert not set(visible) & leased
            limited = [t.id async for t in mine.stream_tasks(queue, claimant="mine", limit=1500)]
            assert len(set(limited)) == 1500 and not set(limited) & leased
            bare = [t async for t in mine.stream_tasks(queue, omit_values=True, limit=1200)]
            assert len({t.id for t in bare}) == 1200 and all(t.value == b"" for t in bare)
        finally:
            await mine.aclose()
            await theirs.aclose()

    asyncio.run(run())


def test_values_are_read_in_groups_of_bounded_size() -> None:
    # Column 13 of a listing row (_PAGE_VALUE_SIZE) is the value's size.
    rows = [tuple([None] * 13 + [size]) for size in (3, 3, 3, 10, 1, 1)]
    groups = [[row[13] for row in group] for group in _by_size(rows, 6)]  # type: ignore[arg-type]
    assert groups == [[3, 3], [3], [10], [1, 1]]  # one oversized value goes alone
