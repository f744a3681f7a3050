"""Producers NOTIFY only queues that some handle waits on, and no waiter misses one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import psycopg

import entroq_pg
from entroq_core import AsyncEntroQ, Modification
from entroq_pg.listener import channel_name, parse_payload
from entroq_pg.waiters import REFRESH_SECONDS

QUIET = 0.5  # seconds a notification would surely take to arrive on loopback


def _queue(tag: str) -> str:
    return f"waiters/{tag}/{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def _heard(pg_url: str) -> AsyncIterator[list[str]]:
    """Queues named by every notification on the channel, as they arrive."""
    queues: list[str] = []
    conn = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    await conn.execute(f'LISTEN "{channel_name("entroq")}"')

    async def listen() -> None:
        async for note in conn.notifies():
            parsed = parse_payload(note.payload)
            if parsed is not None:
                queues.append(parsed[2])

    task = asyncio.create_task(listen())
    try:
        yield queues
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await conn.close()


async def _registered(pg_url: str, queue: str, within: float = 30) -> None:
    """Wait until some handle has a live waiter row for ``queue``."""
    async with asyncio.timeout(within):
        while await _rows(pg_url, queue) == 0:
            await asyncio.sleep(0.01)


async def _rows(pg_url: str, queue: str) -> int:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM entroq.waiters WHERE queue = %s AND until > now()", (queue,)
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


def test_inserts_notify_only_queues_somebody_waits_on(pg_url: str) -> None:
    idle, waited = _queue("idle"), _queue("waited")

    async def run() -> None:
        producer = AsyncEntroQ(await entroq_pg.open_backend(pg_url))
        waiter = AsyncEntroQ(await entroq_pg.open_backend(pg_url))
        try:
            async with _heard(pg_url) as heard:
                await producer.modify(Modification().insert(idle, b"nobody waits"))
                await asyncio.sleep(QUIET)
                assert idle not in heard

                # poll=600: only a notification can wake this claim in time.
                waiting = asyncio.create_task(waiter.claim(waited, 30, poll=600))
                await _registered(pg_url, waited)
                await producer.modify(
                    Modification().insert(idle, b"still nobody").insert(waited, b"for you")
                )
                async with asyncio.timeout(10):
                    task = await waiting
                assert task.value == b"for you"
                await asyncio.sleep(QUIET)
                # Other tests' queues may share the channel: look at ours only.
                assert [q for q in heard if q in (idle, waited)] == [waited]
        finally:
            await producer.aclose()
            await waiter.aclose()
        assert await _rows(pg_url, waited) == 0  # a closed handle takes its rows along

    asyncio.run(run())


def test_a_waiter_registers_again_after_its_rows_and_listener_are_lost(pg_url: str) -> None:
    # A crash empties the UNLOGGED waiters table and drops every LISTEN
    # connection: after the listener is back, waiters must register again.
    queue = _queue("lost")

    async def run() -> None:
        backend = await entroq_pg.open_backend(pg_url)
        eq = AsyncEntroQ(backend)
        producer = AsyncEntroQ(await entroq_pg.open_backend(pg_url))
        try:
            waiting = asyncio.create_task(eq.claim(queue, 30, poll=600))
            await _registered(pg_url, queue)
            async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
                await admin.execute("DELETE FROM entroq.waiters")
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
                )
            # Well before the waiter's own refresh (REFRESH_SECONDS) would do it.
            await _registered(pg_url, queue, within=REFRESH_SECONDS / 2)
            await producer.modify(Modification().insert(queue, b"after the loss"))
            async with asyncio.timeout(10):
                task = await waiting
            assert task.value == b"after the loss"
        finally:
            await eq.aclose()
            await producer.aclose()

    asyncio.run(run())


def test_a_busy_worker_registers_once_not_per_claim(pg_url: str) -> None:
    queue = _queue("busy")

    async def run() -> None:
        backend = await entroq_pg.open_backend(pg_url)
        eq = AsyncEntroQ(backend)
        try:
            mod = Modification()
            for i in range(50):
                mod.insert(queue, b"%d" % i)
            await eq.modify(mod)
            for _ in range(50):
                task = await eq.claim(queue, 30)
                await eq.modify(Modification().delete(task))
            assert backend._waiters is not None
            assert backend._waiters.writes == 1
        finally:
            await eq.aclose()

    asyncio.run(run())
