"""PostgreSQL stopped (fast shutdown) and started again under load."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator

import pytest

import entroq_pg
from entroq_core import AsyncEntroQ, Modification
from entroq_core.errors import BackendUnavailable, DependencyError
from scripts.servers import postgres
from tests.waiting import until, until_reachable

QUEUE = "restart/q"


@pytest.fixture
def own_server(pg_server: postgres.PostgresServer | None) -> Iterator[postgres.PostgresServer]:
    """A server of this test's own, since the test stops it."""
    if pg_server is None:
        pytest.skip("restarting needs a server the tests start (ENTROQ_TEST_PG_URL is set)")
    server = postgres.PostgresServer(settings={"fsync": "off"})
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def test_restart_under_load_loses_nothing_and_recovers(
    own_server: postgres.PostgresServer,
) -> None:
    url = own_server.url

    async def run() -> None:
        backends = [await entroq_pg.open_backend(url, pool_timeout=5) for _ in range(3)]
        eq, other, admin = (AsyncEntroQ(b) for b in backends)
        confirmed: set[str] = set()  # inserts whose commit we saw
        maybe: set[str] = set()  # inserts that failed: may or may not have committed
        committed: list[str] = []  # deletes whose commit we saw
        unsure: set[str] = set()  # deletes that failed: may or may not have committed
        errors: collections.Counter[str] = collections.Counter()
        stop_inserting = asyncio.Event()
        stop_working = asyncio.Event()

        first = await admin.modify(Modification(inserts=[_data(f"pre-{i}") for i in range(300)]))
        confirmed.update(t.id for t in first.inserted)

        async def inserter() -> None:
            k = 0
            while not stop_inserting.is_set():
                task_id = f"ins-{k}"
                k += 1
                try:
                    await admin.modify(Modification(inserts=[_data(task_id)]))
                except BackendUnavailable:
                    errors["insert"] += 1
                    maybe.add(task_id)
                    await asyncio.sleep(0.02)
                else:
                    confirmed.add(task_id)
                await asyncio.sleep(0.002)

        async def worker(client: AsyncEntroQ) -> None:
            while not stop_working.is_set():
                try:
                    task = await client.try_claim(QUEUE, 2)
                except BackendUnavailable:
                    errors["claim"] += 1
                    await asyncio.sleep(0.02)
                    continue
                if task is None:
                    await asyncio.sleep(0.01)
                    continue
                try:
                    await client.modify(Modification().delete(task))
                except BackendUnavailable:
                    errors["delete"] += 1
                    unsure.add(task.id)
                except DependencyError:
                    # Only possible if a lease ran out while the database was down.
                    errors["dependency"] += 1
                else:
                    committed.append(task.id)

        loads = [asyncio.create_task(inserter())] + [
            asyncio.create_task(worker(c)) for c in (eq, other)
        ]
        try:
            await until(lambda: len(committed) >= 100, "100 deletes", every=0.01)
            await asyncio.to_thread(own_server.stop, "fast")

            # While it is down every call fails with the unavailable error, promptly.
            async with asyncio.timeout(30):
                with pytest.raises(BackendUnavailable):
                    await eq.time()
                with pytest.raises(BackendUnavailable):
                    await eq.try_claim(QUEUE, 2)
            await until(
                lambda: errors["claim"] > 0 and errors["insert"] > 0, "failed calls", every=0.01
            )

            await asyncio.to_thread(own_server.start)
            # Each handle finds out on its own probe's schedule (backing off to
            # about a second between tries), so wait for all three.
            for client in (eq, other, admin):
                await until_reachable(client)
            before = len(committed)
            await until(lambda: len(committed) >= before + 100, "100 more deletes", every=0.01)

            # Notifications work again too: a waiter hears another handle's insert.
            waiting = asyncio.create_task(eq.claim("restart/wake", 30, poll=600))
            await until(
                lambda: backends[0].wakeups.has_waiters("restart/wake"), "a waiter", every=0.01
            )
            await until(lambda: all(b.listening for b in backends), "listeners", every=0.01)
            await other.modify(Modification().insert("restart/wake", b"awake"))
            async with asyncio.timeout(30):
                assert (await waiting).value == b"awake"

            stop_inserting.set()
            await until(lambda: loads[0].done(), "the load to end", every=0.01)
            await _until_empty(admin)
        finally:
            stop_inserting.set()
            stop_working.set()
            await asyncio.gather(*loads, return_exceptions=True)
            for client in (eq, other, admin):
                await client.aclose()

        assert len(committed) == len(set(committed)), "a task was committed twice"
        done = set(committed)
        assert confirmed <= done | unsure, "a confirmed insert vanished"
        assert done <= confirmed | maybe, "committed a task nobody inserted"
        assert errors["claim"] > 0 and errors["insert"] > 0

    asyncio.run(run())


def _data(task_id: str) -> entroq_pg.backend.TaskData:
    return entroq_pg.backend.TaskData(queue=QUEUE, id=task_id, value=task_id.encode())


async def _until_empty(eq: AsyncEntroQ, timeout: float = 120) -> None:
    async with asyncio.timeout(timeout):
        while await eq.queue_stats(exact=[QUEUE]):
            await asyncio.sleep(0.05)


def test_a_write_cut_off_by_a_crash_says_its_outcome_is_unknown(
    own_server: postgres.PostgresServer,
) -> None:
    """An immediate shutdown gives the handle's idle connection no goodbye: the
    next modify finds it dead only once sent, and cannot know whether it ran."""
    url = own_server.url

    async def run() -> None:
        eq = AsyncEntroQ(await entroq_pg.open_backend(url, pool_min=1, pool_max=1))
        try:
            await eq.modify(Modification().insert(QUEUE, b"before"))
            await asyncio.to_thread(own_server.restart, "immediate")
            with pytest.raises(BackendUnavailable) as info:
                await eq.modify(Modification().insert(QUEUE, b"after"))
            assert "whether it was applied is unknown" in str(info.value)
            # The handle recovers: the next calls work.
            await until_reachable(eq)
            assert (await eq.modify(Modification().insert(QUEUE, b"later"))).inserted
        finally:
            await eq.aclose()

    asyncio.run(run())
