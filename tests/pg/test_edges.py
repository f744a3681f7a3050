"""Races, deadlocks and input PostgreSQL would choke on: always EntroQ errors, never psycopg's."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import entroq_pg
from entroq_core import AsyncEntroQ, EntroQ, Modification, TaskData, TaskID
from entroq_core.errors import (
    BackendUnavailable,
    DependencyError,
    InvalidArgument,
    RetryableConflict,
)


def _q(tag: str) -> str:
    return f"edge/{tag}/{uuid.uuid4().hex[:8]}"


async def _clients(url: str, n: int) -> list[AsyncEntroQ]:
    return [AsyncEntroQ(await entroq_pg.open_backend(url)) for _ in range(n)]


def test_racing_inserts_of_one_id_give_one_winner_and_dependency_errors(pg_url: str) -> None:
    queue = _q("race")

    async def run() -> None:
        clients = await _clients(pg_url, 6)
        try:
            for round_ in range(15):
                task_id = f"{queue}-{round_}"
                mod = Modification(inserts=[TaskData(queue=queue, id=task_id, value=b"v")])
                outcomes = await asyncio.gather(
                    *(c.modify(mod) for c in clients), return_exceptions=True
                )
                winners = [o for o in outcomes if not isinstance(o, BaseException)]
                losers = [o for o in outcomes if isinstance(o, BaseException)]
                assert len(winners) == 1
                assert all(isinstance(e, DependencyError) for e in losers), losers
                for e in losers:
                    assert isinstance(e, DependencyError)
                    assert e.inserts == (TaskID(task_id, 0, queue),)
                    assert e.only_inserts()
        finally:
            for c in clients:
                await c.aclose()

    asyncio.run(run())


def test_racing_skippable_inserts_all_succeed_with_one_row(pg_url: str) -> None:
    queue = _q("skip")

    async def run() -> None:
        clients = await _clients(pg_url, 6)
        try:
            data = TaskData(queue=queue, id=f"{queue}-only", value=b"v", skip_colliding=True)
            other = [TaskData(queue=queue, value=str(i).encode()) for i in range(6)]
            results = await asyncio.gather(
                *(c.modify(Modification(inserts=[data, other[i]])) for i, c in enumerate(clients))
            )
            assert sum(len(r.inserted) for r in results) == 7  # one shared id + 6 others
            assert len(await clients[0].tasks(queue)) == 7
        finally:
            for c in clients:
                await c.aclose()

    asyncio.run(run())


def test_crossed_depends_never_leak_deadlocks(pg_url: str) -> None:
    """T1 changes A depending on B while T2 changes B depending on A."""
    queue = _q("deadlock")

    async def run() -> None:
        one, two = await _clients(pg_url, 2)
        try:
            for _ in range(4):
                made = await one.modify(Modification().insert(queue, b"a").insert(queue, b"b"))
                a, b = made.inserted
                outcomes = await asyncio.gather(
                    one.modify(Modification().change(a, value=b"a2").depend(b)),
                    two.modify(Modification().change(b, value=b"b2").depend(a)),
                    return_exceptions=True,
                )
                errors = [o for o in outcomes if isinstance(o, BaseException)]
                assert all(isinstance(e, DependencyError | RetryableConflict) for e in errors)
                assert len(errors) < 2 or any(isinstance(e, RetryableConflict) for e in errors)
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(run())


def test_text_postgres_cannot_encode_is_invalid_argument(pg_url: str) -> None:
    async def run() -> None:
        (eq,) = await _clients(pg_url, 1)
        try:
            with pytest.raises(InvalidArgument):
                await eq.modify(Modification().insert(_q("enc"), b"v", err="bad \udc80 text"))
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_lease_beyond_year_9999_is_invalid_and_claims_nothing(pg_url: str) -> None:
    queue = _q("far")

    async def run() -> None:
        (eq,) = await _clients(pg_url, 1)
        try:
            await eq.modify(Modification().insert(queue, b"v"))
            with pytest.raises(InvalidArgument) as info:
                await eq.try_claim(queue, timedelta(days=9000 * 365))
            assert info.value.field == "duration"
            (task,) = await eq.tasks(queue)
            assert task.claims == 0
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_awkward_values_and_names_round_trip(pg_url: str) -> None:
    queue = _q("awk") + "/ünï ☃ 'quote\" %_\\"
    value = bytes(range(256)) * 4  # NUL bytes and everything else
    far = datetime(9999, 1, 1, tzinfo=UTC)

    async def run() -> None:
        (eq,) = await _clients(pg_url, 1)
        try:
            made = await eq.modify(
                Modification()
                .insert(queue, value, err="e\u2603", attempt=2**31 - 1)
                .insert(queue, b"", at=far)
            )
            now_task, far_task = made.inserted
            assert far_task.at == far
            listed = {t.id: t for t in await eq.tasks(queue)}
            assert listed[now_task.id] == now_task
            assert listed[now_task.id].value == value
            stats = await eq.queue_stats(exact=[queue])
            assert stats[queue].num_available == 1 and stats[queue].num_future == 1
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_prefix_match_treats_like_wildcards_literally(pg_url: str) -> None:
    base = _q("like")

    async def run() -> None:
        (eq,) = await _clients(pg_url, 1)
        try:
            await eq.modify(
                Modification()
                .insert(base + "/a%b", b"")
                .insert(base + "/axb", b"")
                .insert(base + "/a_c", b"")
            )
            assert set(await eq.queues(prefixes=[base + "/a%"])) == {base + "/a%b"}
            assert set(await eq.queues(prefixes=[base + "/a_"])) == {base + "/a_c"}
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_big_listing_streams_every_task_once(pg_url: str) -> None:
    queue = _q("stream")

    async def run() -> None:
        (eq,) = await _clients(pg_url, 1)
        try:
            await eq.modify(Modification(inserts=[TaskData(queue, value=b"x")] * 2500))
            ids = [t.id async for t in eq.stream_tasks(queue, omit_values=True)]
            assert len(ids) == len(set(ids)) == 2500
            assert len(await eq.tasks(queue, limit=1200)) == 1200
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_sync_facade_runs_pg_on_its_own_loop_thread(pg_url: str) -> None:
    queue = _q("sync")
    with EntroQ(pg_url) as eq:
        eq.modify(Modification().insert(queue, b"sync"))
        task = eq.try_claim(queue, 30)
        assert task is not None and task.value == b"sync"
        eq.modify(Modification().delete(task))
        assert eq.tasks(queue) == []


def test_big_batch_with_one_colliding_id_inserts_nothing(pg_url: str) -> None:
    queue = _q("batch")

    async def run() -> None:
        (eq,) = await _clients(pg_url, 1)
        try:
            first = await eq.modify(Modification().insert(queue, b"old", id=f"{queue}-x"))
            old = first.inserted[0]
            batch = [TaskData(queue, value=str(i).encode()) for i in range(150)]
            batch.append(TaskData(queue, id=old.id, value=b"again"))
            with pytest.raises(DependencyError) as info:
                await eq.modify(Modification(inserts=batch))
            assert info.value.inserts == (old.as_id(),)
            assert await eq.tasks(queue) == [old]
            batch[-1] = TaskData(queue, id=old.id, value=b"again", skip_colliding=True)
            done = await eq.modify(Modification(inserts=batch))
            assert len(done.inserted) == 150
            assert len(await eq.tasks(queue)) == 151
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_big_batch_returns_what_was_stored_at_the_database_time(pg_url: str) -> None:
    # Batches of COPY_THRESHOLD tasks or more go through COPY in a transaction
    # the backend opens and ends itself: what it returns must be what is stored,
    # and the connection must go back to the pool with no transaction open.
    queue = _q("copy")

    async def run() -> None:
        backend = await entroq_pg.open_backend(pg_url + "?pool_max=1")
        eq = AsyncEntroQ(backend)
        try:
            later = datetime(2100, 1, 1, tzinfo=UTC)
            batch = [
                TaskData(queue, value=b"%d" % i)
                for i in range(entroq_pg.backend.COPY_THRESHOLD * 3)
            ]
            batch[0] = TaskData(queue, value=b"later", at=later)
            before = await eq.time()
            done = await eq.modify(Modification(inserts=batch))
            after = await eq.time()
            stored = {t.id: t for t in await eq.tasks(queue)}
            assert {t.id: t for t in done.inserted} == stored
            assert len(stored) == len(batch)
            first, *rest = done.inserted
            assert first.at == later and first.value == b"later"
            for t in rest:
                assert before <= t.created == t.modified == t.at <= after
            # One pooled connection: had the COPY left a transaction open, this
            # claim would run inside it and a second handle would not see the lease.
            task = await eq.try_claim(queue, 30)
            assert task is not None
            other = AsyncEntroQ(await entroq_pg.open_backend(pg_url))
            try:
                (seen,) = [t for t in await other.tasks(queue) if t.id == task.id]
                assert seen.version == task.version == 1
            finally:
                await other.aclose()
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_a_busy_pool_fails_calls_without_opening_more_connections(pg_url: str) -> None:
    """Every pooled connection waits on a row lock another session holds: calls
    that find none free fail as unavailable, the handle keeps its pool_max
    connections (it used to open a whole new pool each time), and it works on
    once the lock is gone."""
    app = f"entroq-busy-{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}?application_name={app}&pool_min=1&pool_max=3&pool_timeout=0.3"

    async def connections(conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def run() -> None:
        eq = await AsyncEntroQ.open(url, batch_writes=False)
        locker = await psycopg.AsyncConnection.connect(pg_url)
        watcher = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        try:
            [hot] = (await eq.modify(Modification().insert("busy/q", b"hot"))).inserted
            most = 3 + 2  # pool_max, and the LISTEN and NOTIFY connections kept beside it
            await locker.execute("SELECT 1 FROM entroq.tasks WHERE id = %s FOR UPDATE", (hot.id,))
            calls = [asyncio.create_task(eq.modify(Modification().change(hot))) for _ in range(30)]
            await asyncio.sleep(3.0)  # ten pool_timeouts
            assert await connections(watcher) <= most
            await locker.rollback()
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            unavailable = [o for o in outcomes if isinstance(o, BackendUnavailable)]
            assert unavailable, outcomes
            assert all("came free in time" in str(o) for o in unavailable), unavailable
            assert not any("closed" in str(o) for o in outcomes if isinstance(o, Exception))
            assert await connections(watcher) <= most
            assert (await eq.modify(Modification().insert("busy/q", b"after"))).inserted
        finally:
            await locker.close()
            await watcher.close()
            await eq.aclose()

    asyncio.run(run())
