"""Conformance cases for TryClaim and Claim (SPEC section 2)."""

from __future__ import annotations

import asyncio
import collections
import itertools
from datetime import timedelta

import pytest

from ..client import AsyncEntroQ
from ..errors import DeadlineExceeded, InvalidArgument
from ..modification import Modification
from ..requests import ClaimRequest
from ..types import Task
from .harness import Harness, conformance


async def insert_values(h: Harness, queue: str, count: int) -> list[Task]:
    """Insert ``count`` available tasks with values b"0", b"1", ..."""
    mod = Modification()
    for i in range(count):
        mod.insert(queue, str(i).encode())
    return list((await h.eq.modify(mod)).inserted)


class ClaimCases:
    """TryClaim and Claim."""

    # Tasks drained by the concurrent claimers; backends may lower it if slow.
    concurrent_claim_tasks = 1000

    @conformance
    async def test_try_claim_rejects_bad_arguments(self, h: Harness) -> None:
        with pytest.raises(InvalidArgument) as info:
            await h.eq.try_claim([], 10)
        assert info.value.field == "queues"
        for bad in (0, -1, timedelta(0), timedelta(days=365 * 101)):
            with pytest.raises(InvalidArgument) as info:
                await h.eq.try_claim(h.q(), bad)
            assert info.value.field == "duration"
        with pytest.raises(InvalidArgument) as info:
            ClaimRequest("", (h.q(),), 1000)
        assert info.value.field == "claimant"
        with pytest.raises(InvalidArgument) as info:
            await h.eq.try_claim([h.q(), ""], 10)
        assert info.value.field == "queues"
        with pytest.raises(InvalidArgument) as info:
            await h.eq.try_claim([h.q(), "q" * 1025], 10)  # names are 1..1024 bytes
        assert info.value.field == "queues"
        # Nothing was claimed or created by the rejected calls.
        assert await h.eq.queue_stats(prefixes=[h.prefix]) == {}

    @conformance
    async def test_try_claim_empty_queue_returns_none(self, h: Harness) -> None:
        assert await h.eq.try_claim(h.q(), 10) is None
        assert await h.eq.try_claim([h.q("a"), h.q("b")], 10) is None

    @conformance
    async def test_claim_sets_exactly_the_claim_fields(self, h: Harness) -> None:
        payload = bytes(range(256)) * 400  # large and binary: passed through untouched
        [inserted] = (
            await h.eq.modify(Modification().insert(h.q(), payload, attempt=2, err="boom"))
        ).inserted
        other = await h.client()
        before = await h.eq.time()
        claimed = await other.try_claim(h.q(), 10)
        after = await h.eq.time()
        assert claimed is not None
        assert claimed.id == inserted.id
        assert claimed.queue == inserted.queue
        assert claimed.version == inserted.version + 1
        assert claimed.claims == inserted.claims + 1
        assert claimed.claimant == other.claimant
        assert claimed.value == payload
        assert claimed.created == inserted.created
        assert (claimed.attempt, claimed.err) == (2, "boom")
        assert before <= claimed.modified <= after
        assert claimed.at == claimed.modified + timedelta(seconds=10)
        [stored] = await h.eq.tasks(ids=[inserted.id])
        assert stored == claimed

    @conformance
    async def test_claimed_task_is_not_available_until_lease_expires(self, h: Harness) -> None:
        await insert_values(h, h.q(), 1)
        # Opened first: opening a handle (connections, auth) must not eat the lease.
        other = await h.client()
        # Long enough that a loaded machine's next call still falls inside it.
        first = await h.eq.try_claim(h.q(), 1.5)
        assert first is not None
        assert await other.try_claim(h.q(), 10) is None
        await h.wait_past(first.at)
        second = await other.try_claim(h.q(), 10)
        assert second is not None
        assert second.id == first.id
        assert second.version == first.version + 1
        assert second.claims == 2
        assert second.claimant == other.claimant

    @conformance
    async def test_future_task_is_not_claimable_before_its_time(self, h: Harness) -> None:
        at = await h.in_ms(1500)  # the insert and first claim must come before it
        [task] = (await h.eq.modify(Modification().insert(h.q(), b"later", at=at))).inserted
        assert task.at == at
        assert await h.eq.try_claim(h.q(), 10) is None
        await h.wait_past(at)
        claimed = await h.eq.try_claim(h.q(), 10)
        assert claimed is not None and claimed.id == task.id

    @conformance
    async def test_claim_picks_randomly_within_a_queue(self, h: Harness) -> None:
        tasks = await insert_values(h, h.q(), 20)
        seen: collections.Counter[str] = collections.Counter()
        for _ in range(400):
            claimed = await h.eq.try_claim(h.q(), 30)
            assert claimed is not None
            seen[claimed.id] += 1
            # Release it again so every claim chooses among all 20.
            await h.eq.modify(Modification().change(claimed))
        # A claimer taking the oldest task would see one id; random choice sees all
        # 20 (missing one has probability about 20 * 0.95**400 < 1e-7).
        assert set(seen) == {t.id for t in tasks}

    @conformance
    async def test_claim_is_fair_across_queues(self, h: Harness) -> None:
        a, b = h.q("a"), h.q("b")
        await insert_values(h, a, 5)
        await insert_values(h, b, 5)
        picked: collections.Counter[str] = collections.Counter()
        for _ in range(200):
            claimed = await h.eq.try_claim([a, b], 30)
            assert claimed is not None
            picked[claimed.queue] += 1
            await h.eq.modify(Modification().change(claimed))
        # Binomial(200, 0.5) leaves [60, 140] with probability below 1e-8.
        assert 60 <= picked[a] <= 140, picked

    @conformance
    async def test_claims_from_several_queues_choose_afresh_each_time(self, h: Harness) -> None:
        # Fair on average is not enough: a claimer that kept returning to the
        # queue it last took from would make long runs of one queue. Each claim
        # chooses independently, so consecutive claims switch queue about half
        # the time: 199 pairs give 99.5 switches on average (sd 7); fewer than
        # 65 has probability below 1e-6, and runs of five would give about 40.
        a, b = h.q("a"), h.q("b")
        await insert_values(h, a, 20)
        await insert_values(h, b, 20)
        order: list[str] = []
        for _ in range(200):
            claimed = await h.eq.try_claim([a, b], 30)
            assert claimed is not None
            order.append(claimed.queue)
            await h.eq.modify(Modification().change(claimed))
        switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
        assert switches >= 65, (switches, collections.Counter(order))

    @conformance
    async def test_claim_never_returns_unlisted_queue(self, h: Harness) -> None:
        await insert_values(h, h.q("other"), 10)
        await insert_values(h, h.q("mine"), 3)
        got = []
        while (claimed := await h.eq.try_claim([h.q("mine"), h.q("empty")], 30)) is not None:
            got.append(claimed)
        assert len(got) == 3
        assert {t.queue for t in got} == {h.q("mine")}
        stats = await h.eq.queue_stats(exact=[h.q("other")])
        assert stats[h.q("other")].num_available == 10

    @conformance
    async def test_duplicate_queue_names_count_once(self, h: Harness) -> None:
        [task] = await insert_values(h, h.q(), 1)
        claimed = await h.eq.try_claim([h.q(), h.q(), h.q()], 10)
        assert claimed is not None and claimed.id == task.id
        assert await h.eq.try_claim([h.q(), h.q()], 10) is None

    @conformance
    async def test_concurrent_claimers_never_share_a_task(self, h: Harness) -> None:
        total = self.concurrent_claim_tasks
        queue = h.q()
        for start in range(0, total, 500):
            mod = Modification()
            for i in range(start, min(total, start + 500)):
                mod.insert(queue, str(i).encode())
            await h.eq.modify(mod)
        clients = [await h.client() for _ in range(8)]
        committed: list[bytes] = []

        async def drain(client: AsyncEntroQ) -> None:
            while (task := await client.try_claim(queue, 60)) is not None:
                # A second holder of the same version would fail here, or commit twice.
                await client.modify(Modification().delete(task))
                committed.append(task.value)

        await asyncio.gather(*(drain(c) for c in clients))
        assert len(committed) == total
        assert sorted(committed) == sorted(str(i).encode() for i in range(total))
        assert await h.eq.queues_empty(exact=[queue])

    @conformance
    async def test_claim_wakes_on_insert_from_another_client(self, h: Harness) -> None:
        waiter = asyncio.create_task(h.eq.claim(h.q(), 10, poll=60))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        producer = await h.client()
        [task] = (await producer.modify(Modification().insert(h.q(), b"wake"))).inserted
        # The 60 s poll cannot explain a return within 15 s: the insert woke it.
        async with asyncio.timeout(15):
            claimed = await waiter
        assert claimed.id == task.id
        assert claimed.claimant == h.eq.claimant

    @conformance
    async def test_claim_wakes_when_a_change_makes_a_task_available(self, h: Harness) -> None:
        future = await h.in_ms(3_600_000)
        [task] = (await h.eq.modify(Modification().insert(h.q("parked"), at=future))).inserted
        waiter = asyncio.create_task(h.eq.claim(h.q("ready"), 10, poll=60))
        await asyncio.sleep(0.2)
        other = await h.client()
        # A future task counts as leased by its inserter, so act for it.
        await other.modify(Modification().change(task, queue=h.q("ready")), claimant=h.eq.claimant)
        async with asyncio.timeout(15):  # far inside the 60 s poll: the change woke it
            claimed = await waiter
        assert claimed.id == task.id
        assert claimed.queue == h.q("ready")

    @conformance
    async def test_claim_wakes_when_a_future_task_arrives(self, h: Harness) -> None:
        at = await h.in_ms(500)
        [task] = (await h.eq.modify(Modification().insert(h.q(), at=at))).inserted
        claimed = await h.eq.claim(h.q(), 10, poll=1.0, timeout=20)
        assert claimed.id == task.id
        assert claimed.modified >= at

    @conformance
    async def test_claim_wakes_for_a_future_task_inserted_while_it_waits(self, h: Harness) -> None:
        # SPEC section 2: a backend that can, wakes at the earliest known future
        # arrival; one inserted by another client mid-wait is known too.
        waiter = asyncio.create_task(h.eq.claim(h.q(), 10, poll=60))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        producer = await h.client()
        at = await h.in_ms(500)
        [task] = (await producer.modify(Modification().insert(h.q(), b"later", at=at))).inserted
        async with asyncio.timeout(15):  # far inside the 60 s poll
            claimed = await waiter
        assert claimed.id == task.id
        assert claimed.modified >= at

    @conformance
    async def test_claim_deadline_raises_timeout(self, h: Harness) -> None:
        with pytest.raises(DeadlineExceeded):
            await h.eq.claim(h.q(), 10, poll=60, timeout=0.3)
        # DeadlineExceeded is a TimeoutError for code that only knows the builtin.
        with pytest.raises(TimeoutError):
            await h.eq.claim(h.q(), 10, poll=60, timeout=0.1)

    @conformance
    async def test_claim_cancellation_is_distinct_and_loses_nothing(self, h: Harness) -> None:
        waiter = asyncio.create_task(h.eq.claim(h.q(), 10, poll=60))
        await asyncio.sleep(0.2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await insert_values(h, h.q(), 1)
        claimed = await h.eq.try_claim(h.q(), 10)
        assert claimed is not None and claimed.version == 1

    @conformance
    async def test_claim_returns_available_task_immediately(self, h: Harness) -> None:
        [task] = await insert_values(h, h.q(), 1)
        claimed = await h.eq.claim(h.q(), 10, poll=60, timeout=5)
        assert claimed.id == task.id
