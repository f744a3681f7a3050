"""A 3-member etcd cluster losing members under load, then getting them back."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from entroq_core.errors import BackendUnavailable, DependencyError, RetryableConflict
from entroq_core.requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from entroq_core.types import TaskData
from entroq_etcd.backend import EtcdBackend, open_backend
from scripts.servers.etcd import EtcdCluster
from tests.waiting import until

from .conftest import require_etcd

CALL_TIMEOUT = 2.0
HANG_GUARD = 30.0  # far above CALL_TIMEOUT: a call that takes this long is hanging
TASKS = 300
QUEUE = "work"

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    """A fresh 3-member cluster on loopback."""
    require_etcd()
    c = EtcdCluster(3).start()
    try:
        yield c
    finally:
        c.stop()


@dataclass
class Ledger:
    """What the workers were told: committed deletes, and deletes of unknown outcome."""

    done: list[str] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)
    unavailable: int = 0


async def _worker(backend: EtcdBackend, name: str, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            task = await backend.try_claim(ClaimRequest(name, (QUEUE,), 3_000))
        except (BackendUnavailable, RetryableConflict):
            ledger.unavailable += 1
            await asyncio.sleep(0.05)
            continue
        if task is None:
            await asyncio.sleep(0.05)
            continue
        try:
            await backend.modify(ModifyRequest(name, deletes=(task.as_id(),)))
        except DependencyError:
            continue  # the lease expired during an outage and someone else has it
        except (BackendUnavailable, RetryableConflict):
            ledger.unavailable += 1
            ledger.unknown.add(task.id)
            continue
        ledger.done.append(task.id)


async def _open_when_up(url: str, timeout: float = 120.0) -> EtcdBackend:
    """Open a handle, retrying while the cluster cannot answer yet."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await open_backend(url, call_timeout=CALL_TIMEOUT)
            except BackendUnavailable:
                await asyncio.sleep(0.2)


def test_work_survives_one_member_and_fails_cleanly_without_quorum(cluster: EtcdCluster) -> None:
    url = cluster.url + "/fault/"

    async def run() -> None:
        setup = await open_backend(url, call_timeout=CALL_TIMEOUT)
        done = await setup.modify(
            ModifyRequest(
                "setup", inserts=tuple(TaskData(QUEUE, value=b"%d" % i) for i in range(TASKS))
            )
        )
        before = {t.id for t in done.inserted}
        await setup.aclose()

        ledger = Ledger()
        stop = asyncio.Event()
        handles = [await open_backend(url, call_timeout=CALL_TIMEOUT) for _ in range(3)]
        workers = [
            asyncio.create_task(_worker(h, f"w{i}", ledger, stop)) for i, h in enumerate(handles)
        ]
        # A blocking claim whose Watch stream lives on the member about to die.
        waiting = await open_backend(url, call_timeout=CALL_TIMEOUT)
        waiter = asyncio.create_task(waiting.claim(ClaimRequest("waiter", ("wake",), 60_000), 3600))
        try:
            await until(lambda: len(ledger.done) >= 30, "first deletes")
            assert not waiter.done()

            # One member down (the one every handle talks to first): work carries on.
            cluster.members[0].kill(signal.SIGKILL)
            mark = len(ledger.done)
            await until(lambda: len(ledger.done) >= mark + 30, "deletes after losing one member")
            # The waiter's watch moved to a live member: an insert still wakes it.
            await handles[1].modify(ModifyRequest("x", inserts=(TaskData("wake", value=b"hi"),)))
            async with asyncio.timeout(HANG_GUARD):
                woken = await waiter
            assert woken.value == b"hi"

            # A second member down: no quorum. Calls fail as unavailable, promptly.
            cluster.members[1].kill(signal.SIGKILL)
            failures_before = ledger.unavailable
            await until(lambda: ledger.unavailable >= failures_before + 5, "unavailable errors")
            stop.set()
            await asyncio.gather(*workers)
            done_at_outage = len(ledger.done)

            probe = handles[0]
            async with asyncio.timeout(HANG_GUARD):
                with pytest.raises(BackendUnavailable):
                    await probe.try_claim(ClaimRequest("probe", (QUEUE,), 1000))
                with pytest.raises(BackendUnavailable):
                    await probe.modify(
                        ModifyRequest("probe", inserts=(TaskData("phantom", id="phantom"),))
                    )
                with pytest.raises(BackendUnavailable):
                    await probe.queue_stats(QueuesRequest())
                with pytest.raises(BackendUnavailable):
                    await open_backend(url, call_timeout=CALL_TIMEOUT)

            # Both back: work resumes and drains the queue.
            cluster.restart(cluster.members[0])
            cluster.restart(cluster.members[1])
            stop.clear()
            workers = [
                asyncio.create_task(_worker(h, f"w{i}", ledger, stop))
                for i, h in enumerate(handles)
            ]
            # Rejoining members may still be electing a leader: the check retries
            # until the cluster answers, as the workers do.
            check = await _open_when_up(url)

            async def remaining() -> set[str] | None:
                try:
                    return {
                        t.id async for t in check.tasks(TasksRequest(queue=QUEUE, omit_values=True))
                    }
                except BackendUnavailable:
                    return None

            async with asyncio.timeout(120):
                while (left := await remaining()) is None or left:
                    await asyncio.sleep(0.2)
            assert len(ledger.done) > done_at_outage
            stop.set()
            await asyncio.gather(*workers)
            await check.aclose()
        finally:
            stop.set()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            await waiting.aclose()
            for h in handles:
                await h.aclose()

        # Every task is gone; each was reported done at most once, and those not
        # reported done are exactly ones whose delete outcome the workers could not know.
        assert len(ledger.done) == len(set(ledger.done))
        assert set(ledger.done) <= before
        assert before - set(ledger.done) <= ledger.unknown

    asyncio.run(run())
