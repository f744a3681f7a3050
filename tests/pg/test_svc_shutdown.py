"""entroq-svc over pg, stopped with a Modify still running: what the client is told holds."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest

from entroq_core import AsyncEntroQ, TaskData
from entroq_core.errors import BackendUnavailable
from scripts.servers.entroq_svc import start_svc

HANG_GUARD = 60


def test_a_modify_cut_off_by_the_grace_is_not_applied(fresh_db: str) -> None:
    """A Modify waits on a lock when SIGTERM comes; the grace (1 s) runs out and
    the client is told the call failed. Once the lock is gone, the insert must
    not have happened: the client may retry it, and then it would be there twice."""
    svc = start_svc(fresh_db, ["--grace", "1"])
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(fresh_db) as conn:
            conn.execute("LOCK TABLE entroq.tasks IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(HANG_GUARD)

    async def run() -> None:
        async with await AsyncEntroQ.open(svc.url) as eq:
            await eq.modify(inserts=[TaskData(queue="before", value=b"x")])
            locker = threading.Thread(target=hold_lock, daemon=True)
            locker.start()
            assert await asyncio.to_thread(locked.wait, HANG_GUARD)
            blocked = asyncio.create_task(eq.modify(inserts=[TaskData(queue="cut", value=b"y")]))
            await asyncio.sleep(0.5)
            assert not blocked.done()
            stopping = asyncio.create_task(asyncio.to_thread(svc.terminate))
            with pytest.raises(BackendUnavailable):
                async with asyncio.timeout(HANG_GUARD):
                    await blocked
            assert await stopping == 0
            release.set()
            await asyncio.to_thread(locker.join, HANG_GUARD)

    try:
        asyncio.run(run())
    finally:
        release.set()
        svc.close()
    # Give a statement that outlived its client every chance to commit.
    time.sleep(1.0)
    with psycopg.connect(fresh_db) as conn:
        queues = conn.execute("SELECT queue FROM entroq.tasks ORDER BY queue").fetchall()
    assert queues == [("before",)]
