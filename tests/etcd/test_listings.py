"""Listings longer than one read: pages of 1,000 index keys."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from entroq_core.requests import ModifyRequest, TasksRequest
from entroq_core.types import TaskData
from entroq_etcd.backend import open_backend

from .rawetcd import RawEtcd


def test_a_listing_goes_on_after_etcd_compacts_the_revision_it_started_at(etcd_url: str) -> None:
    # etcd compacts its history regularly (the test server every minute): a caller
    # reading a long listing slowly must still get all of it, not an error.
    async def run() -> None:
        raw = RawEtcd(urlsplit(etcd_url).netloc.split(",")[0])
        backend = await open_backend(etcd_url)
        try:
            inserted = set()
            for _ in range(3):
                done = await backend.modify(
                    ModifyRequest("me", inserts=tuple(TaskData("long") for _ in range(500)))
                )
                inserted.update(t.id for t in done.inserted)
            listed = []
            async for task in backend.tasks(TasksRequest(queue="long", omit_values=True)):
                listed.append(task.id)
                if len(listed) == 10:  # the listing's first page is read; its revision goes
                    await backend.modify(ModifyRequest("me", inserts=(TaskData("other"),)))
                    await raw.compact()
            assert len(listed) == len(inserted) and set(listed) == inserted
        finally:
            await backend.aclose()
            await raw.close()

    asyncio.run(run())
