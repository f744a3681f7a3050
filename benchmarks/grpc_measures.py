"""Measurements only the gRPC service needs: RPC latency, wake-up across processes, ratio to mem.

The cross-process wake-up waiter runs as ``python -m benchmarks.grpc_measures URL QUEUE N``:
it claims N times, printing ``waiting`` before each claim and the monotonic clock
(system-wide on Linux) when each claim returns.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from entroq_core import AsyncEntroQ, Modification

from . import measures
from .record import Record, median_record, percentile


async def rpc_latency_ms(url: str, samples: int = 2000) -> tuple[float, float]:
    """p50 and p99 of one unary round trip (the Time RPC), one client, sequential."""
    async with await AsyncEntroQ.open(url) as eq:
        for _ in range(50):  # connect and warm up
            await eq.time()
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            await eq.time()
            timings.append((time.perf_counter() - started) * 1000)
    return percentile(timings, 50), percentile(timings, 99)


async def rpc_per_second(url: str, concurrency: int, seconds: float = 3.0) -> float:
    """Time RPCs per second with ``concurrency`` clients: the service's ceiling for any RPC.

    A claim+delete cycle is two RPCs, so cycles/s can be at most half of this.
    """
    clients = [await AsyncEntroQ.open(url) for _ in range(concurrency)]
    for c in clients:
        await c.time()
    done = 0
    deadline = time.perf_counter() + seconds

    async def call(eq: AsyncEntroQ) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await eq.time()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(call(c) for c in clients))
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.aclose()
    return done / elapsed


async def cross_process_wake_ms(url: str, samples: int = 50) -> tuple[float, float]:
    """p50 and p99 from an insert's commit here to a Claim returning in another process."""
    queue = measures.fresh_queue("wake2")
    waiter = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.grpc_measures",
        url,
        queue,
        str(samples),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    assert waiter.stdout is not None
    timings = []
    async with await AsyncEntroQ.open(url) as producer:
        try:
            for _ in range(samples):
                line = await waiter.stdout.readline()
                assert line.strip() == b"waiting", line
                await asyncio.sleep(0.05)  # let the claim reach the server and park
                started = time.monotonic()
                await producer.modify(Modification().insert(queue))
                returned = float(await waiter.stdout.readline())
                timings.append((returned - started) * 1000)
        finally:
            if await waiter.wait() != 0:
                raise RuntimeError("the waiter process failed")
    return percentile(timings, 50), percentile(timings, 99)


async def ratio_records(label: str, url: str, runs: int, workers: tuple[int, ...]) -> list[Record]:
    """Cycles/s through ``url`` divided by cycles/s on direct mem, same client count."""
    out = []
    for w in workers:
        ratios = []
        for _ in range(runs):
            wire = await measures.cycles_per_second(url, w)
            direct = await measures.cycles_per_second(f"mem://ratio-{uuid.uuid4().hex}", w)
            ratios.append(wire / direct)
        out.append(median_record(label, "cycles_ratio_to_mem", "x", ratios, workers=w))
    return out


async def grpc_extras(label: str, url: str, runs: int) -> list[Record]:
    """The service's extra figures: RPC latency, cross-process wake-up, ratio to mem."""
    out: list[Record] = []
    p50s, p99s = [], []
    for _ in range(runs):
        p50, p99 = await rpc_latency_ms(url)
        p50s.append(p50)
        p99s.append(p99)
    out.append(median_record(label, "rpc_latency_ms_p50", "ms", p50s, rpc="Time"))
    out.append(median_record(label, "rpc_latency_ms_p99", "ms", p99s, rpc="Time"))
    for w in (1, 64):
        samples = [await rpc_per_second(url, w) for _ in range(runs)]
        out.append(median_record(label, "rpc_per_s", "calls/s", samples, rpc="Time", workers=w))
    p50s, p99s = [], []
    for _ in range(runs):
        p50, p99 = await cross_process_wake_ms(url)
        p50s.append(p50)
        p99s.append(p99)
    out.append(median_record(label, "wake_latency_ms_p50", "ms", p50s, processes=2))
    out.append(median_record(label, "wake_latency_ms_p99", "ms", p99s, processes=2))
    out.extend(await ratio_records(label, url, runs, (1, 8, 64)))
    return out


async def _waiter(url: str, queue: str, samples: int) -> None:
    async with await AsyncEntroQ.open(url) as eq:
        for _ in range(samples):
            print("waiting", flush=True)
            task = await eq.claim(queue, 30, poll=60)
            print(time.monotonic(), flush=True)
            await eq.modify(Modification().delete(task))


if __name__ == "__main__":
    asyncio.run(_waiter(sys.argv[1], sys.argv[2], int(sys.argv[3])))
