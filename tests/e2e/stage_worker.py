"""A worker process for the crash tests: moves tasks s1 -> s2 -> s3 -> done.

Each stage commit also inserts a ledger entry, in the same transaction, so a stage
committed twice for one task would show up as two ledger entries.

    python stage_worker.py URL PREFIX [--hang]
"""

from __future__ import annotations

import asyncio
import logging
import sys

from entroq_core import AsyncEntroQ, Modification, Task, Worker

NEXT = {"s1": "s2", "s2": "s3", "s3": "done"}


async def main(url: str, prefix: str, hang: bool) -> None:
    async with await AsyncEntroQ.open(url) as eq:

        async def handle(task: Task) -> Modification:
            stage = task.queue.removeprefix(prefix)
            print(f"started {task.id} {task.version}", flush=True)
            if hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(0.005)  # a little work, so kills land mid-task
            return (
                Modification()
                .change(task, queue=prefix + NEXT[stage], value=task.value + f"|{stage}".encode())
                .insert(prefix + "ledger", f"{task.id}|{stage}")
            )

        worker = Worker(eq, [prefix + s for s in NEXT], handle, concurrency=4, lease=1.0, poll=0.5)
        worker.install_signal_handlers()
        await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(sys.argv[1], sys.argv[2], "--hang" in sys.argv[3:]))
