"""Core's worker over etcd: leases renewed across handlers, retries, every task done once."""

from __future__ import annotations

import asyncio
import collections

from entroq_core import AsyncEntroQ, Modification, Task
from entroq_core.backoff import Backoff
from entroq_core.worker import Worker
from entroq_etcd.backend import open_backend

from .workers import running


def test_workers_on_two_handles_process_each_task_once_with_renewals(etcd_url: str) -> None:
    seen: collections.Counter[str] = collections.Counter()
    attempts: collections.Counter[str] = collections.Counter()

    async def handle(task: Task) -> Modification | None:
        attempts[task.value.decode()] += 1
        if task.value.endswith(b"7") and task.attempt == 0:
            raise RuntimeError("flaky once")  # retried with attempt+1
        if task.value.endswith(b"3"):
            await asyncio.sleep(1.5)  # outlives the 1 s lease: renewals keep it ours
        seen[task.value.decode()] += 1
        return Modification().delete(task).insert("done", task.value)

    async def run() -> None:
        producer = AsyncEntroQ(await open_backend(etcd_url), claimant="producer")
        mod = Modification()
        for i in range(40):
            mod.insert("todo", b"%d" % i)
        await producer.modify(mod)
        clients = [AsyncEntroQ(await open_backend(etcd_url)) for _ in range(2)]
        fast = Backoff(base=0.05)
        workers = [
            Worker(c, "todo", handle, concurrency=3, lease=1.0, poll=1.0, backoff=fast)
            for c in clients
        ]
        async with running(workers, clients), asyncio.timeout(120):
            while len(await producer.tasks("done", omit_values=True)) < 40:
                await asyncio.sleep(0.1)
        assert sorted(seen) == sorted(str(i) for i in range(40))
        assert all(n == 1 for n in seen.values()), seen
        assert await producer.tasks("todo") == []
        done = await producer.tasks("done")
        assert sorted(t.value for t in done) == sorted(b"%d" % i for i in range(40))
        await producer.aclose()

    asyncio.run(run())
