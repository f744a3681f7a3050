"""Claim+delete cycles driven from several client processes, as users run workers.

64 clients in one Python process saturate that process's core before the server's,
so this spreads the same clients over a few processes. A driver process runs as
``python -m benchmarks.process_measures URL QUEUE CLIENTS SECONDS``: it opens its
clients, prints ``ready``, waits for a line on stdin, cycles, and prints its count.
"""

from __future__ import annotations

import asyncio
import sys

from entroq_core import AsyncEntroQ

from . import measures
from .record import Record, median_record


async def cycles_per_second_processes(
    url: str, processes: int, clients: int, seconds: float = 3.0, preload: int = 40_000
) -> float:
    """Cycles/s with ``clients`` concurrent clients split evenly over ``processes``."""
    queue = measures.fresh_queue("procs")
    setup = await AsyncEntroQ.open(url)
    await measures.fill(setup, queue, preload)
    drivers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.process_measures",
            url,
            queue,
            str(clients // processes),
            str(seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    try:
        for d in drivers:
            assert d.stdout is not None
            line = await d.stdout.readline()
            assert line.strip() == b"ready", line
        for d in drivers:
            assert d.stdin is not None
            d.stdin.write(b"go\n")
            await d.stdin.drain()
        rates = []
        for d in drivers:
            assert d.stdout is not None
            rates.append(float(await d.stdout.readline()))
    finally:
        for d in drivers:
            if await d.wait() != 0:
                raise RuntimeError("a driver process failed")
    await measures.cleanup(setup, queue, [])
    return sum(rates)


async def process_records(label: str, url: str, runs: int) -> list[Record]:
    """Cycles/s with 64 clients in 4 processes of 16 (next to 64 in one process)."""
    samples = [await cycles_per_second_processes(url, 4, 64) for _ in range(runs)]
    return [median_record(label, "cycles_per_s", "cycles/s", samples, workers=64, processes=4)]


async def _drive(url: str, queue: str, count: int, seconds: float) -> None:
    clients = [await AsyncEntroQ.open(url) for _ in range(count)]
    for c in clients:
        await c.time()  # connect before the clock starts
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    rate = await measures.drain_rate(clients, queue, seconds)
    for c in clients:
        await c.aclose()
    print(rate, flush=True)


if __name__ == "__main__":
    asyncio.run(_drive(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
