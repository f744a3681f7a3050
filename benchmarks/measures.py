"""Backend-independent measurements through the public AsyncEntroQ API."""

from __future__ import annotations

import asyncio
import time
import uuid

from entroq_core import AsyncEntroQ, Modification

from .machine_cpu import Meter
from .record import percentile


def fresh_queue(tag: str) -> str:
    """A queue name no other run uses."""
    return f"bench/{tag}/{uuid.uuid4().hex[:8]}"


async def fill(
    eq: AsyncEntroQ, queue: str, count: int, value: bytes = b"x" * 100, batch: int = 5000
) -> None:
    """Insert ``count`` available tasks in batches."""
    for start in range(0, count, batch):
        mod = Modification()
        for _ in range(min(batch, count - start)):
            mod.insert(queue, value)
        await eq.modify(mod)


async def cycles_per_second(
    url: str, workers: int, seconds: float = 3.0, preload: int = 20_000, max_batch: int = 5000
) -> float:
    """Claim+delete cycles per second with ``workers`` concurrent clients."""
    setup = await AsyncEntroQ.open(url)
    queue = fresh_queue("cycles")
    await fill(setup, queue, preload, batch=min(5000, max_batch))
    clients = [await AsyncEntroQ.open(url) for _ in range(workers)]
    rate = await drain_rate(clients, queue, seconds)
    await cleanup(setup, queue, clients, max_batch)
    return rate


async def drain_rate(
    clients: list[AsyncEntroQ], queue: str, seconds: float, meter: Meter | None = None
) -> float:
    """Claim+delete cycles per second of ``clients`` on ``queue`` until empty or ``seconds``.

    ``meter``, if given, counts the machine's CPU over the timed part only.
    """
    done = 0
    deadline = time.perf_counter() + seconds

    async def work(eq: AsyncEntroQ) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            task = await eq.try_claim(queue, 30)
            if task is None:
                return
            await eq.modify(Modification().delete(task))
            done += 1

    if meter is not None:
        meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(work(c) for c in clients))
    elapsed = time.perf_counter() - started
    if meter is not None:
        meter.stop(done)
    return done / elapsed


async def inserts_per_second(
    url: str, batch: int, seconds: float = 2.0, max_batch: int = 5000
) -> float:
    """Tasks inserted per second, ``batch`` tasks per modify, one client."""
    eq = await AsyncEntroQ.open(url)
    queue = fresh_queue("insert")
    value = b"x" * 100
    inserted = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        mod = Modification()
        for _ in range(batch):
            mod.insert(queue, value)
        await eq.modify(mod)
        inserted += batch
    elapsed = time.perf_counter() - started
    await cleanup(eq, queue, [], max_batch)
    return inserted / elapsed


SETTLE_SECONDS = 3.0  # after a fill, before claim latency is timed
WARM_UP_CLAIMS = 50  # untimed claims first: a handle learns a new queue's shape


async def claim_latency_ms(
    url: str, depth: int, samples: int = 1000, max_batch: int = 10_000
) -> tuple[float, float]:
    """p50 and p99 of one TryClaim at queue ``depth`` (the task is released untimed).

    Timing starts once the fill has settled: for a second or two after a large
    fill the server is still busy with it (on etcd that doubled the median
    claim latency), which is the fill's cost, not the depth's.
    """
    eq = await AsyncEntroQ.open(url)
    queue = fresh_queue(f"depth{depth}")
    await fill(eq, queue, depth, batch=min(10_000, max_batch))
    await asyncio.sleep(SETTLE_SECONDS)
    timings = []
    for _ in range(WARM_UP_CLAIMS + samples):
        started = time.perf_counter()
        task = await eq.try_claim(queue, 30)
        timings.append((time.perf_counter() - started) * 1000)
        assert task is not None
        await eq.modify(Modification().change(task))
    del timings[:WARM_UP_CLAIMS]
    await cleanup(eq, queue, [], max_batch)
    return percentile(timings, 50), percentile(timings, 99)


async def wake_latency_ms(url: str, samples: int = 50) -> tuple[float, float]:
    """p50 and p99 from an insert's commit to a waiting Claim's return (same process)."""
    waiter_eq = await AsyncEntroQ.open(url)
    producer = await AsyncEntroQ.open(url)
    queue = fresh_queue("wake")
    timings = []
    for _ in range(samples):
        waiter = asyncio.create_task(waiter_eq.claim(queue, 30, poll=60))
        await asyncio.sleep(0.02)  # let the claim start waiting
        started = time.perf_counter()
        await producer.modify(Modification().insert(queue))
        task = await waiter
        timings.append((time.perf_counter() - started) * 1000)
        await waiter_eq.modify(Modification().delete(task))
    await cleanup(producer, queue, [waiter_eq])
    return percentile(timings, 50), percentile(timings, 99)


async def cleanup(
    eq: AsyncEntroQ, queue: str, others: list[AsyncEntroQ], max_batch: int = 5000
) -> None:
    """Delete what a measurement left behind on a shared server, then close clients.

    Measurements release or delete every task they claim, so nothing left is leased.
    """
    while True:
        tasks = await eq.tasks(queue, limit=min(5000, max_batch), omit_values=True)
        if not tasks:
            break
        mod = Modification()
        for t in tasks:
            mod.delete(t)
        await eq.modify(mod)
    for c in others:
        await c.aclose()
    await eq.aclose()
