"""mem-specific behaviour: stale heap entries, named stores."""

from __future__ import annotations

import asyncio

from entroq_core import AsyncEntroQ, Modification
from entroq_core.mem import MemBackend, open_backend


def test_heap_compaction_keeps_every_waiting_task() -> None:
    async def main() -> None:
        async with await AsyncEntroQ.open("mem://") as eq:
            backend = eq.backend
            assert isinstance(backend, MemBackend)
            # 3,000 claim+delete cycles leave 3,000 stale heap entries behind,
            # forcing several compactions while 3 leased tasks must survive them.
            await eq.modify(Modification().insert("q").insert("q").insert("q"))
            leased = {t.id for t in [await eq.try_claim("q", 0.5) for _ in range(3)] if t}
            assert len(leased) == 3
            mod = Modification()
            for _ in range(3000):
                mod.insert("q")
            await eq.modify(mod)
            returned: set[str] = set()
            filler_left = 3000
            while filler_left:
                task = await eq.try_claim("q", 60)
                if task is None:  # only the leased ones are left
                    await asyncio.sleep(0.01)
                elif task.id in leased:  # its lease expired mid-loop: it came back
                    returned.add(task.id)
                else:
                    await eq.modify(Modification().delete(task))
                    filler_left -= 1
            heap = backend._store.queues["q"].future
            assert len(heap) <= 2 * 3 + 1024
            assert (await eq.queue_stats())["q"].num_tasks == 3
            # Every leased task comes back once its lease expires.
            for _ in range(len(leased - returned)):
                returned.add((await eq.claim("q", 10, poll=5, timeout=5)).id)
            assert returned == leased

    asyncio.run(main())


def test_named_stores_are_shared_and_plain_mem_is_private() -> None:
    async def main() -> None:
        a, b = await open_backend("mem://named"), await open_backend("mem://named")
        c = await open_backend("mem://")
        ea, eb, ec = AsyncEntroQ(a), AsyncEntroQ(b), AsyncEntroQ(c)
        await ea.modify(Modification().insert("q"))
        assert await eb.queues() == {"q": 1}
        assert await ec.queues() == {}
        for e in (ea, eb, ec):
            await e.aclose()

    asyncio.run(main())
