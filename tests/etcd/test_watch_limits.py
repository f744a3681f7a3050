"""A handle's watches when claims wait on more queues than it keeps watched.

The limit is lowered to 8 here (1,024 in use) so the tests stay quick; what
they check (waits beyond the limit, many watches created and dropped at once on
one stream) does not depend on its size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import entroq_etcd.watch
from entroq_core.requests import ClaimRequest, ModifyRequest
from entroq_core.types import Task, TaskData
from entroq_etcd.backend import EtcdBackend, open_backend

LIMIT = 8
HANG_GUARD = 60
NO_POLL = 3600.0  # only a watch event can wake these claims


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entroq_etcd.watch, "_MAX_QUEUES", LIMIT)


@asynccontextmanager
async def _two_handles(url: str) -> AsyncIterator[tuple[EtcdBackend, EtcdBackend]]:
    """A handle whose claims wait, and another that inserts: always both closed."""
    waiting, other = await open_backend(url), await open_backend(url)
    try:
        yield waiting, other
    finally:
        await waiting.aclose()
        await other.aclose()


def _claim(backend: EtcdBackend, *queues: str, poll: float = NO_POLL) -> asyncio.Task[Task]:
    return asyncio.create_task(backend.claim(ClaimRequest("me", queues, 10_000), poll=poll))


async def _insert(backend: EtcdBackend, *queues: str) -> None:
    inserts = tuple(TaskData(q, value=q.encode()) for q in queues)
    await backend.modify(ModifyRequest("producer", inserts=inserts))


async def _gave_up_waiting(backend: EtcdBackend, queue: str) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await backend.claim(ClaimRequest("me", (queue,), 10_000), poll=NO_POLL)


def test_waits_on_more_queues_than_are_kept_watched_still_wake(etcd_url: str) -> None:
    async def run() -> None:
        async with _two_handles(etcd_url) as (waiting, other):
            for i in range(3 * LIMIT):  # each stays watched until it is the least recent
                await _gave_up_waiting(waiting, f"one-by-one/{i}")
            dropped, kept = "one-by-one/0", f"one-by-one/{3 * LIMIT - 1}"
            for queue in (dropped, kept):
                waiter = _claim(waiting, queue)
                await asyncio.sleep(0.3)
                await _insert(other, queue)
                async with asyncio.timeout(HANG_GUARD):
                    assert (await waiter).queue == queue

    asyncio.run(run())


def test_one_claim_may_wait_on_more_queues_than_the_limit(etcd_url: str) -> None:
    queues = [f"many/{i}" for i in range(3 * LIMIT)]

    async def run() -> None:
        async with _two_handles(etcd_url) as (waiting, other):
            for last in (queues[0], queues[-1]):
                waiter = _claim(waiting, *queues)
                await asyncio.sleep(0.3)
                assert not waiter.done()
                await _insert(other, last)
                async with asyncio.timeout(HANG_GUARD):
                    assert (await waiter).queue == last

    asyncio.run(run())


def test_many_watches_created_and_dropped_at_once_share_the_stream(etcd_url: str) -> None:
    # Concurrent claims on new queues send their creates, and the watches they
    # push out their cancels, on the handle's one stream at the same time.
    async def run() -> None:
        async with _two_handles(etcd_url) as (waiting, other):
            for wave in range(3):
                queues = [f"wave{wave}/{i}" for i in range(4 * LIMIT)]
                waiters = [_claim(waiting, q) for q in queues]
                await asyncio.sleep(0.5)
                assert not any(w.done() for w in waiters), [w for w in waiters if w.done()]
                await _insert(other, *queues)
                async with asyncio.timeout(HANG_GUARD):
                    claimed = await asyncio.gather(*waiters)
                assert sorted(t.queue for t in claimed) == sorted(queues)
                # Waits cut short while their watches are being set up.
                for queue in queues[:LIMIT]:
                    await _gave_up_waiting(waiting, queue + "/short")

    asyncio.run(run())


def test_a_failed_write_on_the_watch_stream_reopens_it(etcd_url: str) -> None:
    """The one fault injected here: a write on the stream raises once, as grpc does
    when the stream broke under it. The watcher must reopen the stream and keep
    waking waiters, old queues and new."""

    async def run() -> None:
        async with _two_handles(etcd_url) as (waiting, other):
            await _gave_up_waiting(waiting, "before")  # the stream is up, "before" watched
            stream = waiting._watcher._call
            assert stream is not None
            real_write = stream.write

            async def write_once_broken(request: object) -> None:
                stream.write = real_write  # type: ignore[method-assign]
                raise asyncio.InvalidStateError("RPC already finished.")

            stream.write = write_once_broken  # type: ignore[method-assign]
            for queue in ("after", "before"):
                waiter = _claim(waiting, queue)
                await asyncio.sleep(0.5)
                await _insert(other, queue)
                async with asyncio.timeout(HANG_GUARD):
                    assert (await waiter).queue == queue
            assert waiting._watcher._call is not stream  # a new stream

    asyncio.run(run())
