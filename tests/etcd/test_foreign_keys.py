"""Keys under the prefix that EntroQ did not write are ignored and never deleted."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from entroq_core.errors import DependencyError, InvalidArgument
from entroq_core.requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from entroq_core.types import TaskData, TaskID
from entroq_etcd.backend import open_backend

from .rawetcd import RawEtcd


def test_foreign_keys_are_ignored_and_kept(etcd_url: str) -> None:
    parts = urlsplit(etcd_url)
    endpoint = parts.netloc.split(",")[0]
    prefix = parts.path.encode()
    foreign = {
        prefix + b"config": b"someone else's",
        prefix + b"t": b"bare t",
        prefix + b"tasks/1": b"looks close",
        prefix + b"t/alien": b"not a record",  # where a task named 'alien' would live
        prefix + b"q/ghost": b"not our registry mark",
        prefix + b"r/jobs": b"no separator",
        prefix + b"v/alien": b"a value without a task",
    }
    # Keys forged inside a queue's NUL-separated index ranges: claims and listings
    # skip them and nothing deletes them, but count-only stats cannot tell them
    # apart (documented in entroq_etcd.keys), so stats are checked before planting.
    forged = {
        prefix + b"r/jobs\x00zz\x00x": b"bad hash",
        prefix + b"f/jobs\x00000000000000001\x00old": b"due but not a record",
    }

    async def run() -> None:
        raw = RawEtcd(endpoint)
        backend = await open_backend(etcd_url)
        try:
            for key, value in foreign.items():
                await raw.put(key, value)
            done = await backend.modify(
                ModifyRequest(
                    "me", inserts=tuple(TaskData("jobs", value=b"%d" % i) for i in range(5))
                )
            )
            ours = {t.id for t in done.inserted}

            listed = {t.id async for t in backend.tasks(TasksRequest(queue="jobs"))}
            assert listed == ours
            by_id = [t async for t in backend.tasks(TasksRequest(ids=("alien", *ours)))]
            assert {t.id for t in by_id} == ours

            stats = await backend.queue_stats(QueuesRequest())
            assert set(stats) == {"jobs"}
            assert stats["jobs"].num_tasks == 5
            for key, value in forged.items():
                await raw.put(key, value)
            listed = {t.id async for t in backend.tasks(TasksRequest(queue="jobs"))}
            assert listed == ours

            with pytest.raises(InvalidArgument) as info:
                await backend.modify(ModifyRequest("me", inserts=(TaskData("jobs", id="alien"),)))
            assert info.value.field == "inserts[0].id"
            # No task is there to depend on, whatever version etcd counts for the key.
            for version in (0, 1):
                with pytest.raises(DependencyError) as depend_info:
                    await backend.modify(
                        ModifyRequest(
                            "me", inserts=(TaskData("jobs"),), depends=(TaskID("alien", version),)
                        )
                    )
                assert [d.id for d in depend_info.value.depends] == ["alien"]

            claimed = set()
            while (
                task := await backend.try_claim(ClaimRequest("w", ("jobs",), 60_000))
            ) is not None:
                claimed.add(task.id)
                await backend.modify(ModifyRequest("w", deletes=(task.as_id(),)))
            assert claimed == ours

            await backend.queue_stats(QueuesRequest())
            for key, value in {**foreign, **forged}.items():
                assert await raw.get(key) == value, key
            # All that is left: the foreign keys and at most our registry key for 'jobs'
            # (the forged index keys make the queue look non-empty to count-only stats).
            remaining = set(await raw.keys(prefix)) - set(foreign) - set(forged)
            assert remaining <= {prefix + b"q/jobs"}
        finally:
            await backend.aclose()
            await raw.close()

    asyncio.run(run())


def test_an_emptied_queue_leaves_the_registry(etcd_url: str) -> None:
    parts = urlsplit(etcd_url)
    endpoint = parts.netloc.split(",")[0]
    prefix = parts.path.encode()

    async def run() -> None:
        raw = RawEtcd(endpoint)
        backend = await open_backend(etcd_url)
        try:
            done = await backend.modify(ModifyRequest("me", inserts=(TaskData("brief"),)))
            assert await raw.get(prefix + b"q/brief") is not None
            await backend.modify(ModifyRequest("me", deletes=(done.inserted[0].as_id(),)))
            assert await backend.queue_stats(QueuesRequest()) == {}
            assert await raw.keys(prefix) == []
        finally:
            await backend.aclose()
            await raw.close()

    asyncio.run(run())
