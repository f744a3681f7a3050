"""Conformance cases for Tasks, StreamTasks, Queues, QueueStats and Time."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from ..errors import InvalidArgument
from ..modification import Modification
from ..timeutil import utcnow
from .harness import Harness, conformance


class ReadCases:
    """Listings, stats and the clock."""

    @conformance
    async def test_tasks_by_queue_ids_and_both(self, h: Harness) -> None:
        a = (
            await h.eq.modify(Modification().insert(h.q("a"), b"1").insert(h.q("a"), b"2"))
        ).inserted
        [b] = (await h.eq.modify(Modification().insert(h.q("b"), b"3"))).inserted
        assert {t.id for t in await h.eq.tasks(h.q("a"))} == {t.id for t in a}
        # ids come back in the order asked, unknown ids skipped silently.
        wanted = [b.id, "unknown-" + h.prefix, a[1].id, a[0].id]
        assert [t.id for t in await h.eq.tasks(ids=wanted)] == [b.id, a[1].id, a[0].id]
        assert [t.id for t in await h.eq.tasks(h.q("a"), ids=wanted)] == [a[1].id, a[0].id]
        assert await h.eq.tasks(h.q("missing")) == []
        with pytest.raises(InvalidArgument) as info:
            await h.eq.tasks()
        assert info.value.field == "queue"

    @conformance
    async def test_tasks_limit_and_omit_values(self, h: Harness) -> None:
        mod = Modification()
        for i in range(10):
            mod.insert(h.q(), f"value-{i}", attempt=i)
        inserted = (await h.eq.modify(mod)).inserted
        assert len(await h.eq.tasks(h.q(), limit=3)) == 3
        bare = await h.eq.tasks(h.q(), omit_values=True)
        assert len(bare) == 10
        by_id = {t.id: t for t in inserted}
        for task in bare:
            assert task.value == b""
            full = by_id[task.id]
            assert (task.version, task.attempt, task.at, task.created) == (
                full.version,
                full.attempt,
                full.at,
                full.created,
            )
        with pytest.raises(InvalidArgument) as info:
            await h.eq.tasks(h.q(), limit=-1)
        assert info.value.field == "limit"

    @conformance
    async def test_tasks_claimant_filter_hides_others_leases(self, h: Harness) -> None:
        await h.eq.modify(Modification().insert(h.q()).insert(h.q()).insert(h.q()))
        holder = await h.client()
        mine = await h.eq.try_claim(h.q(), 60)
        theirs = await holder.try_claim(h.q(), 60)
        assert mine is not None and theirs is not None
        visible = {t.id for t in await h.eq.tasks(h.q(), claimant=h.eq.claimant)}
        assert mine.id in visible and theirs.id not in visible
        assert len(visible) == 2
        assert len(await h.eq.tasks(h.q())) == 3

    @conformance
    async def test_tasks_limit_counts_only_tasks_that_pass_the_filters(self, h: Harness) -> None:
        inserted = (
            await h.eq.modify(Modification().insert(h.q()).insert(h.q()).insert(h.q()))
        ).inserted
        holder = await h.client()
        taken = await holder.try_claim(h.q(), 60)
        assert taken is not None
        free = [t.id for t in inserted if t.id != taken.id]
        # An unknown id and another's lease come first: neither may use up the limit.
        ids = ["unknown-" + h.prefix, taken.id, *free]
        mine = h.eq.claimant
        assert [t.id for t in await h.eq.tasks(ids=ids, claimant=mine, limit=1)] == free[:1]
        assert [t.id for t in await h.eq.tasks(ids=ids, claimant=mine, limit=5)] == free
        by_queue = await h.eq.tasks(h.q(), claimant=mine, limit=2)
        assert {t.id for t in by_queue} == set(free)

    @conformance
    async def test_stream_tasks_matches_tasks(self, h: Harness) -> None:
        mod = Modification()
        for i in range(250):
            mod.insert(h.q(), str(i))
        await h.eq.modify(mod)
        streamed = [t async for t in h.eq.stream_tasks(h.q())]
        listed = await h.eq.tasks(h.q())
        assert len(streamed) == 250
        assert {t.id: t for t in streamed} == {t.id: t for t in listed}
        # By ids too: in the order asked, and omit_values empties values only.
        picked = [listed[7].id, listed[3].id, listed[200].id]
        by_id = {t.id: t for t in listed}
        bare = [t async for t in h.eq.stream_tasks(ids=picked, omit_values=True)]
        assert bare == [dataclasses.replace(by_id[i], value=b"") for i in picked]

    @conformance
    async def test_queue_selection(self, h: Harness) -> None:
        for name in ("alpha/1", "alpha/2", "beta", "gamma"):
            await h.eq.modify(Modification().insert(h.q(name)).insert(h.q(name)))
        got = await h.eq.queues(prefixes=[h.q("alpha/")])
        assert got == {h.q("alpha/1"): 2, h.q("alpha/2"): 2}
        got = await h.eq.queues(prefixes=[h.q("alpha/")], exact=[h.q("beta"), h.q("nope")])
        assert set(got) == {h.q("alpha/1"), h.q("alpha/2"), h.q("beta")}
        assert set(await h.eq.queues(prefixes=[h.prefix])) == {
            h.q(n) for n in ("alpha/1", "alpha/2", "beta", "gamma")
        }
        everything = await h.eq.queues()
        assert everything[h.q("gamma")] == 2
        for limit in (1, 3, 4, 10):
            limited = await h.eq.queue_stats(prefixes=[h.prefix], limit=limit)
            assert len(limited) == min(limit, 4)
        # The limit counts matching queues: absent exact names take no slot, and a
        # queue matched by both a prefix and an exact name is one match.
        got = await h.eq.queues(exact=[h.q("nope"), h.q("beta")], limit=1)
        assert got == {h.q("beta"): 2}
        got = await h.eq.queues(prefixes=[h.q("alpha/")], exact=[h.q("nope"), h.q("beta")], limit=3)
        assert set(got) == {h.q("alpha/1"), h.q("alpha/2"), h.q("beta")}
        got = await h.eq.queues(prefixes=[h.q("alpha/")], exact=[h.q("alpha/1")], limit=2)
        assert set(got) == {h.q("alpha/1"), h.q("alpha/2")}
        assert await h.eq.queues_empty(exact=[h.q("nope")])
        assert not await h.eq.queues_empty(prefixes=[h.q("alpha")])

    @conformance
    async def test_queue_selection_refuses_names_no_queue_can_have(self, h: Harness) -> None:
        await h.eq.modify(Modification().insert(h.q("x")))
        bad = [
            ({"prefixes": [h.prefix, "a\x00"]}, "match_prefix[1]"),
            ({"prefixes": ["\udc80"]}, "match_prefix[0]"),
            ({"exact": ["a\x00"]}, "match_exact[0]"),
            ({"exact": ["\udc80"]}, "match_exact[0]"),
        ]
        for selection, field in bad:
            with pytest.raises(InvalidArgument) as info:
                await h.eq.queue_stats(**selection)  # type: ignore[arg-type]
            assert info.value.field == field
            with pytest.raises(InvalidArgument):
                await h.eq.queues(**selection)  # type: ignore[arg-type]
        # An empty prefix matches every queue.
        assert h.q("x") in await h.eq.queues(prefixes=[""])

    @conformance
    async def test_empty_queues_vanish(self, h: Harness) -> None:
        [task] = (await h.eq.modify(Modification().insert(h.q()))).inserted
        assert await h.eq.queues(prefixes=[h.prefix]) == {h.q(): 1}
        [moved] = (await h.eq.modify(Modification().change(task, queue=h.q("other")))).changed
        assert await h.eq.queues(prefixes=[h.prefix]) == {h.q("other"): 1}
        await h.eq.modify(Modification().delete(moved))
        assert await h.eq.queues(prefixes=[h.prefix]) == {}
        await h.eq.wait_queues_empty(prefixes=[h.prefix], timeout=5)

    @conformance
    async def test_stats_partition_the_queue(self, h: Harness) -> None:
        future = await h.in_ms(3_600_000)
        mod = Modification()
        for _ in range(4):
            mod.insert(h.q())
        for _ in range(2):
            mod.insert(h.q(), at=future)
        await h.eq.modify(mod)
        for _ in range(3):
            assert await h.eq.try_claim(h.q(), 60) is not None
        # A claimed task whose lease expired counts as available again.
        expired = await h.eq.try_claim(h.q(), 0.2)
        assert expired is not None
        await h.wait_past(expired.at)
        again = await h.eq.try_claim(h.q(), 60)
        assert again is not None and again.id == expired.id
        stats = (await h.eq.queue_stats(exact=[h.q()]))[h.q()]
        assert stats.name == h.q()
        assert stats.num_tasks == 6
        assert stats.num_claimed == 4
        assert stats.num_future == 2
        assert stats.num_available == 0
        assert stats.max_claims == 2
        assert stats.num_available + stats.num_claimed + stats.num_future == stats.num_tasks

    @conformance
    async def test_stats_split_future_tasks_by_claims_not_by_history(self, h: Harness) -> None:
        # SPEC QueueStats: at > now is "claimed" if claims > 0 and "future" if
        # claims == 0, however at got there; at <= now is available.
        future = await h.in_ms(3_600_000)
        await h.eq.modify(Modification().insert(h.q()))
        claimed = await h.eq.try_claim(h.q(), 60)
        assert claimed is not None
        # Claimed once, then put off by a change: still counted as claimed.
        await h.eq.modify(Modification().change(claimed, at=future))
        # Claimed elsewhere, then moved here and released: available.
        await h.eq.modify(Modification().insert(h.q("x")))
        moved = await h.eq.try_claim(h.q("x"), 60)
        assert moved is not None
        await h.eq.modify(Modification().change(moved, queue=h.q()))
        # Never claimed, inserted for later: future.
        await h.eq.modify(Modification().insert(h.q(), at=future))
        stats = (await h.eq.queue_stats(exact=[h.q()]))[h.q()]
        assert (stats.num_available, stats.num_claimed, stats.num_future) == (1, 1, 1)
        assert (stats.num_tasks, stats.max_claims) == (3, 1)

    @conformance
    async def test_max_claims_follows_tasks_moved_and_deleted(self, h: Harness) -> None:
        [busy] = (await h.eq.modify(Modification().insert(h.q("a")))).inserted
        for _ in range(2):
            claimed = await h.eq.try_claim(h.q("a"), 60)
            assert claimed is not None
            [busy] = (await h.eq.modify(Modification().change(claimed))).changed
        assert busy.claims == 2  # a change keeps claims
        await h.eq.modify(Modification().insert(h.q("a")))
        assert (await h.eq.queue_stats(exact=[h.q("a")]))[h.q("a")].max_claims == 2
        [busy] = (await h.eq.modify(Modification().change(busy, queue=h.q("b")))).changed
        await h.eq.modify(Modification().insert(h.q("b")))
        stats = await h.eq.queue_stats(prefixes=[h.prefix])
        assert (stats[h.q("a")].max_claims, stats[h.q("b")].max_claims) == (0, 2)
        await h.eq.modify(Modification().delete(busy))
        stats = await h.eq.queue_stats(prefixes=[h.prefix])
        assert (stats[h.q("a")].max_claims, stats[h.q("b")].max_claims) == (0, 0)

    @conformance
    async def test_stats_count_available_and_expired(self, h: Harness) -> None:
        await h.eq.modify(Modification().insert(h.q()).insert(h.q()).insert(h.q()))
        lease = await h.eq.try_claim(h.q(), 0.2)
        assert lease is not None
        await h.wait_past(lease.at)
        stats = (await h.eq.queue_stats(exact=[h.q()]))[h.q()]
        assert (stats.num_available, stats.num_claimed, stats.num_future) == (3, 0, 0)
        assert stats.max_claims == 1

    @conformance
    async def test_time_is_utc_milliseconds_near_now(self, h: Harness) -> None:
        backend_now = await h.eq.time()
        assert backend_now.utcoffset() == timedelta(0)
        assert backend_now.microsecond % 1000 == 0
        # Same machine in tests: the clocks agree to well within a minute.
        assert abs(backend_now - utcnow()) < timedelta(minutes=1)
        later = await h.eq.time()
        assert later >= backend_now
