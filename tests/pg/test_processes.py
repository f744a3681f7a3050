"""Several processes on one database: exactly-once draining and cross-process wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

import entroq_pg
from entroq_core import AsyncEntroQ, Modification

WORKER = str(Path(__file__).with_name("pg_worker.py"))


def _queue(tag: str) -> str:
    return f"proc/{tag}/{uuid.uuid4().hex[:8]}"


def test_two_processes_of_eight_workers_commit_each_task_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    queue = _queue("drain")
    total = 5000

    async def fill() -> set[str]:
        async with AsyncEntroQ(await entroq_pg.open_backend(pg_url)) as eq:
            ids: set[str] = set()
            for start in range(0, total, 1000):
                mod = Modification()
                for i in range(start, start + 1000):
                    mod.insert(queue, str(i).encode())
                ids.update(t.id for t in (await eq.modify(mod)).inserted)
            return ids

    inserted = asyncio.run(fill())
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, WORKER, "drain", pg_url, queue, "8", str(out)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            for out in outs
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.wait(timeout=600) == 0
    results = [json.loads(out.read_text()) for out in outs]
    committed = [i for r in results for i in r["committed"]]
    assert len(committed) == total
    assert set(committed) == inserted
    # A 60 s lease never expires here, so no claim may lose its task to another.
    assert all(not r["lost"] for r in results)


def test_waiter_in_this_process_is_woken_by_insert_in_another(pg_url: str) -> None:
    queue = _queue("wake")

    async def run() -> None:
        backend = await entroq_pg.open_backend(pg_url)
        eq = AsyncEntroQ(backend)
        try:
            # A 10-minute poll: only a NOTIFY from the other process can end this in time.
            waiting = asyncio.create_task(eq.claim(queue, 30, poll=600))
            async with asyncio.timeout(30):
                while not backend.wakeups.has_waiters(queue):
                    await asyncio.sleep(0.01)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, WORKER, "insert", pg_url, queue, "1"
            )
            assert await proc.wait() == 0
            async with asyncio.timeout(30):
                task = await waiting
            assert task.value == b"from-other-process-0"
            assert task.claims == 1
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_listener_reconnects_and_still_wakes_waiters(pg_url: str) -> None:
    queue = _queue("relisten")

    async def run() -> None:
        backend = await entroq_pg.open_backend(pg_url)
        other = await entroq_pg.open_backend(pg_url)
        eq, writer = AsyncEntroQ(backend), AsyncEntroQ(other)
        try:
            async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
                )
            async with asyncio.timeout(30):
                while backend._listener is None or backend._listener.reconnects == 0:
                    await asyncio.sleep(0.01)
                while not (backend.listening and other.listening):
                    await asyncio.sleep(0.01)
            waiting = asyncio.create_task(eq.claim(queue, 30, poll=600))
            async with asyncio.timeout(30):
                while not backend.wakeups.has_waiters(queue):
                    await asyncio.sleep(0.01)
            await writer.modify(Modification().insert(queue, b"after reconnect"))
            async with asyncio.timeout(30):
                task = await waiting
            assert task.value == b"after reconnect"
        finally:
            await eq.aclose()
            await writer.aclose()

    asyncio.run(run())


def test_notify_off_still_wakes_waiters_of_the_same_handle(pg_url: str) -> None:
    queue = _queue("quiet")

    async def run() -> None:
        backend = await entroq_pg.open_backend(pg_url, notify=False)
        eq = AsyncEntroQ(backend)
        try:
            assert not backend.listening
            waiting = asyncio.create_task(eq.claim(queue, 30, poll=600))
            async with asyncio.timeout(30):
                while not backend.wakeups.has_waiters(queue):
                    await asyncio.sleep(0.01)
            await eq.modify(Modification().insert(queue, b"local"))
            async with asyncio.timeout(30):
                assert (await waiting).value == b"local"
        finally:
            await eq.aclose()

    asyncio.run(run())
