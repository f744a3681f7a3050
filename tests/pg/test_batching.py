"""Group commit: concurrent claims and deletes of one handle share statements, each on its own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import entroq_pg
from entroq_core.errors import DependencyError
from entroq_core.requests import ClaimRequest, ModifyRequest, TasksRequest
from entroq_core.types import TaskData, TaskID
from entroq_pg.backend import PgBackend

HANG_GUARD = 60


def _queue(tag: str) -> str:
    return f"batching/{tag}/{uuid.uuid4().hex[:8]}"


async def _pg(url: str, **options: object) -> PgBackend:
    backend = await entroq_pg.open_backend(url, **options)
    assert isinstance(backend, PgBackend)
    return backend


async def _fill(backend: PgBackend, queue: str, count: int) -> list[bytes]:
    values = [b"%d" % i for i in range(count)]
    inserts = tuple(TaskData(queue, value=v) for v in values)
    await backend.modify(ModifyRequest("filler", inserts=inserts))
    return values


def test_concurrent_workers_on_one_handle_batch_and_commit_each_task_once(pg_url: str) -> None:
    queue = _queue("workers")

    async def run() -> None:
        backend = await _pg(pg_url)
        try:
            values = await _fill(backend, queue, 400)
            done: list[bytes] = []

            async def worker(n: int) -> None:
                while True:
                    task = await backend.try_claim(ClaimRequest(f"w{n}", (queue,), 30_000))
                    if task is None:
                        return
                    assert task.claimant == f"w{n}"
                    await backend.modify(ModifyRequest(f"w{n}", deletes=(task.as_id(),)))
                    done.append(task.value)

            async with asyncio.timeout(HANG_GUARD):
                await asyncio.gather(*(worker(n) for n in range(16)))
            assert sorted(done) == sorted(values)
            assert await backend.try_claim(ClaimRequest("late", (queue,), 30_000)) is None
            # 16 callers on one handle, one statement in flight per lane: most queued.
            lane = backend._claim_lanes.get(queue)
            claims_batched = lane.items_batched if lane is not None else 0
            assert claims_batched > 0
            assert backend._deletes.batches_sent > 0
            assert backend._deletes.items_batched >= 2 * backend._deletes.batches_sent
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_a_batch_of_claims_gives_each_claimant_its_own_lease(pg_url: str) -> None:
    queue = _queue("leases")

    async def run() -> None:
        backend = await _pg(pg_url)
        try:
            await _fill(backend, queue, 5)
            # Different lease lengths in one batch: each task's lease is its claimant's.
            requests = [ClaimRequest(f"c{i}", (queue,), 10_000 * (i + 1)) for i in range(12)]
            async with asyncio.timeout(HANG_GUARD):
                now = await backend.time()
                got = await asyncio.gather(*(backend.try_claim(r) for r in requests))
            claimed = [(r, t) for r, t in zip(requests, got, strict=True) if t is not None]
            # Five tasks, twelve claimants: exactly five win, each a different task.
            assert len(claimed) == 5
            assert len({t.id for _, t in claimed}) == 5
            for request, task in claimed:
                assert task.claimant == request.claimant
                assert task.version == 1 and task.claims == 1
                lease = task.at - now
                wanted = timedelta(milliseconds=request.duration_ms)
                assert wanted - timedelta(seconds=1) <= lease <= wanted + timedelta(seconds=5)
            assert backend._claim_lanes[queue].batches_sent > 0
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_batched_deletes_fail_and_succeed_independently(pg_url: str) -> None:
    queue = _queue("deletes")

    async def run() -> None:
        backend = await _pg(pg_url)
        try:
            made = await backend.modify(
                ModifyRequest("me", inserts=tuple(TaskData(queue, value=b"x") for _ in range(40)))
            )
            tasks = made.inserted
            # Every other delete names a stale version: those alone must fail.
            requests = [
                ModifyRequest("me", deletes=(TaskID(t.id, t.version + (i % 2), t.queue),))
                for i, t in enumerate(tasks)
            ]
            async with asyncio.timeout(HANG_GUARD):
                outcomes = await asyncio.gather(
                    *(backend.modify(r) for r in requests), return_exceptions=True
                )
            for i, outcome in enumerate(outcomes):
                if i % 2:
                    assert isinstance(outcome, DependencyError), outcome
                    assert [d.id for d in outcome.deletes] == [tasks[i].id]
                else:
                    assert not isinstance(outcome, BaseException), outcome
            left = {t.id async for t in backend.tasks(TasksRequest(queue))}
            assert left == {t.id for i, t in enumerate(tasks) if i % 2}
            assert backend._deletes.batches_sent > 0
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_two_deletes_of_one_task_never_both_succeed(pg_url: str) -> None:
    queue = _queue("twice")

    async def run() -> None:
        backend = await _pg(pg_url)
        try:
            made = await backend.modify(
                ModifyRequest("me", inserts=tuple(TaskData(queue, value=b"x") for _ in range(10)))
            )
            # Each task deleted by three concurrent callers: exactly one wins.
            requests = [ModifyRequest("me", deletes=(t.as_id(),)) for t in made.inserted] * 3
            async with asyncio.timeout(HANG_GUARD):
                outcomes = await asyncio.gather(
                    *(backend.modify(r) for r in requests), return_exceptions=True
                )
            for task in made.inserted:
                mine = [
                    o for r, o in zip(requests, outcomes, strict=True) if r.deletes[0].id == task.id
                ]
                assert sum(not isinstance(o, BaseException) for o in mine) == 1
                assert sum(isinstance(o, DependencyError) for o in mine) == 2
            assert [t async for t in backend.tasks(TasksRequest(queue))] == []
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_a_delete_of_a_task_another_claimant_holds_is_refused_in_a_batch(pg_url: str) -> None:
    queue = _queue("held")

    async def run() -> None:
        backend = await _pg(pg_url)
        try:
            await _fill(backend, queue, 20)
            held = []
            for _ in range(20):
                task = await backend.try_claim(ClaimRequest("owner", (queue,), 60_000))
                assert task is not None
                held.append(task)
            # Right versions, wrong claimant, leases running: every one refused.
            requests = [ModifyRequest("thief", deletes=(t.as_id(),)) for t in held]
            async with asyncio.timeout(HANG_GUARD):
                outcomes = await asyncio.gather(
                    *(backend.modify(r) for r in requests), return_exceptions=True
                )
            assert all(isinstance(o, DependencyError) for o in outcomes), outcomes
            assert len([t async for t in backend.tasks(TasksRequest(queue))]) == 20
            assert backend._deletes.batches_sent > 0
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_batch_writes_off_sends_every_call_alone(pg_url: str) -> None:
    queue = _queue("alone")

    async def run() -> None:
        backend = await _pg(pg_url, batch_writes=False)
        try:
            values = await _fill(backend, queue, 100)
            done: list[bytes] = []

            async def worker(n: int) -> None:
                while task := await backend.try_claim(ClaimRequest(f"w{n}", (queue,), 30_000)):
                    await backend.modify(ModifyRequest(f"w{n}", deletes=(task.as_id(),)))
                    done.append(task.value)

            async with asyncio.timeout(HANG_GUARD):
                await asyncio.gather(*(worker(n) for n in range(8)))
            assert sorted(done) == sorted(values)
            assert backend._claim_lanes == {}
            assert backend._deletes.batches_sent == 0
        finally:
            await backend.aclose()

    asyncio.run(run())
