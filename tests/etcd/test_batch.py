"""Group commit: concurrent writes of one handle share etcd Txns, each still on its own."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from entroq_core.errors import DependencyError, InvalidArgument
from entroq_core.requests import ClaimRequest, ModifyRequest, TasksRequest
from entroq_core.types import TaskData, TaskID
from entroq_etcd import ops
from entroq_etcd.backend import EtcdBackend, open_backend
from entroq_etcd.batch import MAX_BYTES_TO_BATCH, PendingTxn, TxnBatcher
from entroq_etcd.client import EtcdClient
from entroq_etcd.config import parse

HANG_GUARD = 60


async def _etcd(url: str) -> EtcdBackend:
    backend = await open_backend(url)
    assert isinstance(backend, EtcdBackend)
    return backend


def test_concurrent_claims_and_deletes_on_one_handle_batch_and_commit_each_once(
    etcd_url: str,
) -> None:
    async def run() -> None:
        backend = await _etcd(etcd_url)
        try:
            inserts = tuple(TaskData("jobs", value=b"%d" % i) for i in range(300))
            await backend.modify(ModifyRequest("filler", inserts=inserts))
            done: list[bytes] = []

            async def worker(n: int) -> None:
                while True:
                    task = await backend.try_claim(ClaimRequest(f"w{n}", ("jobs",), 30_000))
                    if task is None:
                        return
                    await backend.modify(ModifyRequest(f"w{n}", deletes=(task.as_id(),)))
                    done.append(task.value)

            async with asyncio.timeout(HANG_GUARD):
                await asyncio.gather(*(worker(n) for n in range(16)))
            assert sorted(done) == sorted(d.value for d in inserts)
            assert await backend.try_claim(ClaimRequest("late", ("jobs",), 30_000)) is None
            # 16 callers on one handle with two Txns in flight: most writes queued.
            assert backend.batcher.batches_sent > 0
            assert backend.batcher.requests_batched >= 2 * backend.batcher.batches_sent
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_batched_modifications_fail_and_succeed_independently(etcd_url: str) -> None:
    async def run() -> None:
        backend = await _etcd(etcd_url)
        try:
            made = await backend.modify(
                ModifyRequest("me", inserts=tuple(TaskData("q", value=b"x") for _ in range(40)))
            )
            tasks = made.inserted
            # Every other delete names a stale version: those alone must fail.
            requests = [
                ModifyRequest("me", deletes=(TaskID(t.id, t.version + (i % 2), t.queue),))
                for i, t in enumerate(tasks)
            ]
            async with asyncio.timeout(HANG_GUARD):
                outcomes = await asyncio.gather(
                    *(backend.modify(r) for r in requests), return_exceptions=True
                )
            for i, outcome in enumerate(outcomes):
                if i % 2:
                    assert isinstance(outcome, DependencyError), outcome
                    assert [d.id for d in outcome.deletes] == [tasks[i].id]
                else:
                    assert not isinstance(outcome, BaseException), outcome
            left = {t.id for t in await _all(backend, "q")}
            assert left == {t.id for i, t in enumerate(tasks) if i % 2}
            assert backend.batcher.batches_sent > 0
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_modifications_depending_on_what_the_other_deletes_never_both_commit(
    etcd_url: str,
) -> None:
    # etcd judges every nested Txn's compares on the state before the batch: if
    # these two shared a Txn, each depend would still hold and both would commit.
    # Sent one after the other, the second's depend names a deleted task.
    async def run() -> None:
        backend = await _etcd(etcd_url)
        try:
            for _ in range(5):
                made = await backend.modify(
                    ModifyRequest("me", inserts=(TaskData("skew"), TaskData("skew")))
                )
                x, y = (t.as_id() for t in made.inserted)
                # Two writes take both in-flight slots, so the next two queue together.
                fillers = [
                    backend.modify(ModifyRequest("f", inserts=(TaskData(f"fill{i}"),)))
                    for i in range(2)
                ]
                async with asyncio.timeout(HANG_GUARD):
                    outcomes = await asyncio.gather(
                        *fillers,
                        backend.modify(ModifyRequest("a", deletes=(x,), depends=(y,))),
                        backend.modify(ModifyRequest("b", deletes=(y,), depends=(x,))),
                        return_exceptions=True,
                    )
                first, second = outcomes[2:]
                failed = [o for o in (first, second) if isinstance(o, BaseException)]
                assert len(failed) == 1, outcomes
                assert isinstance(failed[0], DependencyError), failed
                assert len(await _all(backend, "skew")) == 1
                for task in await _all(backend, "skew"):
                    await backend.modify(ModifyRequest("me", deletes=(task.as_id(),)))
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_inserts_into_one_queue_never_share_a_txn_but_all_land(etcd_url: str) -> None:
    # Each insert writes the queue's registry key: two in one Txn would make
    # etcd refuse the whole Txn, so the batcher keeps them apart.
    async def run() -> None:
        backend = await _etcd(etcd_url)
        try:
            async with asyncio.timeout(HANG_GUARD):
                await asyncio.gather(
                    *(
                        backend.modify(ModifyRequest("me", inserts=(TaskData("same"),)))
                        for _ in range(30)
                    )
                )
            assert len(await _all(backend, "same")) == 30
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_a_batch_etcd_refuses_is_sent_again_request_by_request(etcd_url: str) -> None:
    # Two requests that put the same key, declared (wrongly) as disjoint: etcd
    # refuses their batch as a whole, and each must then succeed alone.
    async def run() -> None:
        config = parse(etcd_url, {})
        client = EtcdClient(config)
        batcher = TxnBatcher(client, config.max_request_bytes)
        key = urlsplit(etcd_url).path.encode() + b"batch-refused"
        try:
            pending = [
                PendingTxn(
                    ops.txn(success=[ops.put(key, b"v%d" % i)]), frozenset([b"declared-%d" % i])
                )
                for i in range(2)
            ]
            assert batcher.may_share(pending[:1], pending[1])  # declared keys do not overlap
            async with asyncio.timeout(HANG_GUARD):
                responses = await batcher._send_many(pending)
            assert all(isinstance(r, ops.TxnResponse) and r.succeeded for r in responses)
            assert batcher.batches_sent == 0
            stored = await client.range(ops.scan(key, b""))
            assert stored.kvs[0].version == 2  # both puts applied, one after the other
        finally:
            await client.aclose()

    asyncio.run(run())


def test_requests_with_overlapping_writes_or_too_big_never_share_a_txn() -> None:
    batcher = TxnBatcher(EtcdClient(parse("etcd://127.0.0.1:1", {})), 1 << 20)

    def pending(*keys: bytes) -> PendingTxn:
        return PendingTxn(ops.txn(success=[ops.put(k, b"v") for k in keys]))

    a, b, c = pending(b"t/1", b"q/x"), pending(b"t/2", b"q/x"), pending(b"t/3")
    assert a.writes == frozenset([b"t/1", b"q/x"])  # worked out from the puts
    assert not batcher.may_share([a], b)  # both write q/x
    assert batcher.may_share([a], c)
    assert not batcher.may_share([a, c], pending(b"t/3"))
    huge = PendingTxn(ops.txn(success=[ops.put(b"t/big", b"x" * (MAX_BYTES_TO_BATCH + 1))]))
    assert huge.alone
    assert not batcher.may_share([a], huge)
    assert not batcher.may_share([huge], c)
    blind = PendingTxn(ops.txn())  # writes nothing we can name: no overlap check possible
    assert blind.alone and not batcher.may_share([blind], c)


def test_requests_that_compare_or_read_what_another_writes_never_share_a_txn() -> None:
    batcher = TxnBatcher(EtcdClient(parse("etcd://127.0.0.1:1", {})), 1 << 20)
    writes_t1 = PendingTxn(ops.txn(success=[ops.delete(b"t/1")]))
    depends_on_t1 = PendingTxn(ops.txn([ops.mod_is(b"t/1", 1)], [ops.delete(b"t/2")]))
    reads_t1 = PendingTxn(ops.txn(success=[ops.put(b"t/3", b"v"), ops.get(b"t/1")]))
    unrelated = PendingTxn(ops.txn([ops.mod_is(b"t/4", 1)], [ops.delete(b"t/5")]))
    assert depends_on_t1.reads == frozenset([b"t/1"])
    assert not batcher.may_share([writes_t1], depends_on_t1)
    assert not batcher.may_share([depends_on_t1], writes_t1)
    assert not batcher.may_share([writes_t1], reads_t1)
    assert not batcher.may_share([unrelated, writes_t1], reads_t1)
    assert batcher.may_share([writes_t1], unrelated)
    assert batcher.may_share([depends_on_t1], reads_t1)  # both only read t/1
    ranged = PendingTxn(ops.txn([ops.absent(b"t/", b"t0")], [ops.put(b"t/6", b"v")]))
    assert ranged.reads is None and ranged.alone  # a range compare: keys not known


def test_batching_can_be_turned_off(etcd_url: str) -> None:
    async def run() -> None:
        backend = await open_backend(etcd_url + "?batch_writes=false")
        assert isinstance(backend, EtcdBackend)
        try:
            await asyncio.gather(
                *(
                    backend.modify(ModifyRequest("me", inserts=(TaskData(f"q{i}"),)))
                    for i in range(20)
                )
            )
            assert backend.batcher.batches_sent == 0
            assert all([await _all(backend, f"q{i}") for i in range(20)])
        finally:
            await backend.aclose()

    asyncio.run(run())
    with pytest.raises(InvalidArgument, match=r"batch_writes.*maybe"):
        parse("etcd://127.0.0.1:2379?batch_writes=maybe", {})


async def _all(backend: EtcdBackend, queue: str) -> list[object]:
    return [t async for t in backend.tasks(TasksRequest(queue=queue))]
