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
            # forcing several compactions while 5 leased tasks must survive them.
            await eq.modify(Modification().insert("q", at=None).insert("q").insert("q"))
            leased = [await eq.try_claim("q", 0.5) for _ in range(3)]
            mod = Modification()
            for _ in range(3000):
                mod.insert("q")
            await eq.modify(mod)
            for _ in range(3000):
                task = await eq.try_claim("q", 60)
                assert task is not None
                await eq.modify(Modification().delete(task))
            heap = backend._store.queues["q"].future
            assert len(heap) < 2 * 3 + 1024 + 1
            stats = (await eq.queue_stats())["q"]
            assert (stats.num_tasks, stats.num_claimed) == (3, 3)
            # The leased tasks come back when their leases expire.
            back = [await eq.claim("q", 10, poll=5, timeout=5) for _ in range(3)]
            assert {t.id for t in back} == {t.id for t in leased if t is not None}

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
