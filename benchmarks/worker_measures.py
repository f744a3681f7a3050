"""Worker overhead: a no-op handler's task rate against the raw claim+delete cycle rate.

The worker runs in its own process, as users run it:
``python -m benchmarks.worker_measures URL QUEUE CONCURRENCY COUNT`` prints the
tasks/s its Worker processed, timed from its first commit to its last.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from entroq_core import AsyncEntroQ, Task, Worker

from . import measures
from .record import Record, median_record


async def worker_per_second(url: str, concurrency: int, count: int = 3000) -> float:
    """Tasks/s of one worker process with a no-op handler."""
    queue = measures.fresh_queue("worker")
    async with await AsyncEntroQ.open(url) as eq:
        await measures.fill(eq, queue, count)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.worker_measures",
        url,
        queue,
        str(concurrency),
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError("the worker process failed")
    return float(out)


async def worker_records(label: str, url: str, runs: int) -> list[Record]:
    """worker_per_s, the raw cycle rate measured alongside, and their ratio."""
    out: list[Record] = []
    for concurrency in (1, 32):
        rates, raws, ratios = [], [], []
        for _ in range(runs):
            rate = await worker_per_second(url, concurrency)
            raw = await measures.cycles_per_second(url, concurrency, preload=5000)
            rates.append(rate)
            raws.append(raw)
            ratios.append(rate / raw)
        params = {"concurrency": concurrency, "handler": "no-op"}
        out.append(median_record(label, "worker_per_s", "tasks/s", rates, **params))
        out.append(median_record(label, "worker_raw_cycles_per_s", "cycles/s", raws, **params))
        out.append(median_record(label, "worker_ratio_to_raw", "x", ratios, **params))
    return out


async def _run_worker(url: str, queue: str, concurrency: int, count: int) -> None:
    async def noop(task: Task) -> None:
        return None

    async with await AsyncEntroQ.open(url) as eq:
        worker = Worker(eq, queue, noop, concurrency=concurrency, lease=30, poll=1)
        running = asyncio.create_task(worker.run())
        while worker.processed < 1:
            await asyncio.sleep(0.001)
        started, first = time.perf_counter(), worker.processed
        while worker.processed < count:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        worker.stop()
        await running
    print((count - first) / elapsed)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_run_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
