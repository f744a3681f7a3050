"""Helper process for the multi-process tests (run as a script, not collected).

python pg_worker.py drain URL QUEUE WORKERS OUTFILE   # claim+delete until empty
python pg_worker.py insert URL QUEUE COUNT            # insert COUNT tasks, one modify
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import entroq_pg
from entroq_core import AsyncEntroQ, Modification
from entroq_core.errors import DependencyError


async def drain(url: str, queue: str, workers: int) -> dict[str, list[str]]:
    clients = [AsyncEntroQ(await entroq_pg.open_backend(url)) for _ in range(workers)]
    committed: list[str] = []
    lost: list[str] = []
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says go once every process is ready

    async def work(eq: AsyncEntroQ) -> None:
        while True:
            task = await eq.try_claim(queue, 60)
            if task is None:
                if not await eq.queue_stats(exact=[queue]):
                    return
                await asyncio.sleep(0.01)
                continue
            try:
                await eq.modify(Modification().delete(task))
            except DependencyError:
                lost.append(task.id)
            else:
                committed.append(task.id)

    await asyncio.gather(*(work(c) for c in clients))
    for c in clients:
        await c.aclose()
    return {"committed": committed, "lost": lost}


async def insert(url: str, queue: str, count: int) -> None:
    async with AsyncEntroQ(await entroq_pg.open_backend(url)) as eq:
        mod = Modification()
        for i in range(count):
            mod.insert(queue, f"from-other-process-{i}".encode())
        await eq.modify(mod)


def main() -> None:
    command, url, queue, *rest = sys.argv[1:]
    if command == "drain":
        Path(rest[1]).write_text(json.dumps(asyncio.run(drain(url, queue, int(rest[0])))))
    elif command == "insert":
        asyncio.run(insert(url, queue, int(rest[0])))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
