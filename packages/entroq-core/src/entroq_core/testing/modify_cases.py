"""Conformance cases for Modify (SPEC section 2) and its errors (section 3)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ..client import AsyncEntroQ
from ..errors import DependencyError, InvalidArgument
from ..modification import Modification
from ..requests import ModifyRequest
from ..types import TaskChange, TaskData, TaskID
from .harness import Harness, conformance


class ModifyCases:
    """Inserts, changes, deletes, depends, atomicity and the dependency error."""

    @conformance
    async def test_insert_sets_initial_fields(self, h: Harness) -> None:
        before = await h.eq.time()
        result = await h.eq.modify(
            Modification()
            .insert(h.q(), b"v1")
            .insert(h.q("b"), b"v2", attempt=3, err="earlier failure")
        )
        after = await h.eq.time()
        first, second = result.inserted
        assert result.changed == ()
        for task in (first, second):
            assert task.version == 0
            assert task.claims == 0
            assert task.claimant == h.eq.claimant
            assert before <= task.created <= after
            assert task.modified == task.created
            assert task.at == task.created
            uuid.UUID(task.id)  # generated ids are UUID text
        assert first.id != second.id
        assert (first.queue, first.value, first.attempt, first.err) == (h.q(), b"v1", 0, "")
        assert (second.attempt, second.err) == (3, "earlier failure")
        stored = {t.id: t for t in await h.eq.tasks(ids=[first.id, second.id])}
        assert stored == {first.id: first, second.id: second}

    @conformance
    async def test_insert_honours_explicit_id_and_arrival(self, h: Harness) -> None:
        at = await h.in_ms(60_000)
        [task] = (
            await h.eq.modify(Modification().insert(h.q(), b"x", id="job-1-" + h.prefix, at=at))
        ).inserted
        assert task.id == "job-1-" + h.prefix
        assert task.at == at
        # A past arrival is kept as given too (only unset means now), and is available.
        past = datetime(1999, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
        [early] = (await h.eq.modify(Modification().insert(h.q(), b"y", at=past))).inserted
        assert early.at == past
        [stored] = await h.eq.tasks(ids=[early.id])
        assert stored.at == past
        claimed = await h.eq.try_claim(h.q(), 10)
        assert claimed is not None and claimed.id == early.id

    @conformance
    async def test_insert_collision_in_any_queue_is_a_dependency_error(self, h: Harness) -> None:
        task_id = "dup-" + h.prefix
        [existing] = (await h.eq.modify(Modification().insert(h.q("a"), id=task_id))).inserted
        claimed = await h.eq.try_claim(h.q("a"), 30)
        assert claimed is not None
        [moved] = (await h.eq.modify(Modification().change(claimed, queue=h.q("c")))).changed
        with pytest.raises(DependencyError) as info:
            await h.eq.modify(Modification().insert(h.q("b"), b"new", id=task_id).insert(h.q("b")))
        err = info.value
        # Reported with the existing task's CURRENT version and queue (SPEC Modify table).
        assert [(i.id, i.version, i.queue) for i in err.inserts] == [(existing.id, 2, moved.queue)]
        assert err.only_inserts() and err.has_collisions() and not err.has_missing()
        # Atomic: the second, non-colliding insert was not applied either.
        assert await h.eq.queue_stats(exact=[h.q("b")]) == {}

    @conformance
    async def test_skip_colliding_inserts_apply_the_rest(self, h: Harness) -> None:
        task_id = "skip-" + h.prefix
        [existing] = (await h.eq.modify(Modification().insert(h.q(), b"old", id=task_id))).inserted
        [other] = (await h.eq.modify(Modification().insert(h.q("o")))).inserted
        result = await h.eq.modify(
            Modification()
            .insert(h.q(), b"new", id=task_id, skip_colliding=True)
            .insert(h.q(), b"fresh")
            .delete(other)
        )
        assert [t.value for t in result.inserted] == [b"fresh"]
        [kept] = await h.eq.tasks(ids=[task_id])
        assert kept == existing
        assert await h.eq.tasks(ids=[other.id]) == []
        # Nothing left once the collision is dropped: still a success.
        alone = await h.eq.modify(Modification().insert(h.q(), id=task_id, skip_colliding=True))
        assert alone.inserted == () and alone.changed == ()
        assert await h.eq.tasks(ids=[task_id]) == [existing]

    @conformance
    async def test_skip_colliding_does_not_hide_other_failures(self, h: Harness) -> None:
        task_id = "skip2-" + h.prefix
        await h.eq.modify(Modification().insert(h.q(), id=task_id))
        missing = TaskID("missing-" + h.prefix, 0)
        with pytest.raises(DependencyError) as info:
            await h.eq.modify(
                Modification()
                .insert(h.q(), id=task_id, skip_colliding=True)
                .insert(h.q("fresh"))
                .depend(missing)
            )
        assert [d.id for d in info.value.depends] == [missing.id]
        assert await h.eq.queue_stats(exact=[h.q("fresh")]) == {}
        # A collision on an insert NOT marked skippable is such a failure too.
        hard_id = "hard-" + h.prefix
        [hard] = (await h.eq.modify(Modification().insert(h.q("other"), id=hard_id))).inserted
        with pytest.raises(DependencyError) as info:
            await h.eq.modify(
                Modification()
                .insert(h.q(), id=task_id, skip_colliding=True)
                .insert(h.q(), id=hard_id)
                .insert(h.q("fresh"))
            )
        reported = {(i.id, i.version, i.queue) for i in info.value.inserts}
        assert (hard_id, hard.version, hard.queue) in reported
        assert {i.id for i in info.value.inserts} <= {task_id, hard_id}
        assert await h.eq.queue_stats(exact=[h.q("fresh")]) == {}

    @conformance
    async def test_change_replaces_data_and_keeps_identity(self, h: Harness) -> None:
        [task] = (await h.eq.modify(Modification().insert(h.q(), b"v", attempt=1))).inserted
        claimed = await h.eq.try_claim(h.q(), 30)
        assert claimed is not None
        other = await h.client()
        new_at = await h.in_ms(120_000)
        before = await h.eq.time()
        # Act for the holder, as an admin tool would.
        [changed] = (
            await other.modify(
                Modification().change(
                    claimed, queue=h.q("next"), value=b"v2", at=new_at, attempt=4, err="e"
                ),
                claimant=h.eq.claimant,
            )
        ).changed
        assert changed.id == task.id
        assert changed.version == claimed.version + 1
        assert changed.queue == h.q("next")
        assert (changed.value, changed.at, changed.attempt, changed.err) == (b"v2", new_at, 4, "e")
        assert changed.created == task.created
        assert changed.claims == 1
        assert changed.claimant == h.eq.claimant
        # modified is now: not the old modified, not the new at.
        assert before <= changed.modified <= await h.eq.time()
        assert await h.eq.queues(prefixes=[h.prefix]) == {h.q("next"): 1}

    @conformance
    async def test_change_without_arrival_releases_now(self, h: Harness) -> None:
        await h.eq.modify(Modification().insert(h.q()))
        claimed = await h.eq.try_claim(h.q(), 60)
        assert claimed is not None
        [released] = (await h.eq.modify(Modification().change(claimed))).changed
        assert released.at == released.modified
        again = await h.eq.try_claim(h.q(), 60)
        assert again is not None and again.version == released.version + 1

    @conformance
    async def test_change_keeps_a_past_arrival_time(self, h: Harness) -> None:
        # SPEC: a change sets at "as given"; only unset (or <= 0) means now.
        [task] = (await h.eq.modify(Modification().insert(h.q()))).inserted
        past = datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=UTC)
        [changed] = (await h.eq.modify(Modification().change(task, at=past))).changed
        assert changed.at == past
        [stored] = await h.eq.tasks(ids=[task.id])
        assert stored.at == past
        claimed = await h.eq.try_claim(h.q(), 10)
        assert claimed is not None and claimed.id == task.id

    @conformance
    async def test_renewal_extends_the_lease(self, h: Harness) -> None:
        await h.eq.modify(Modification().insert(h.q()))
        claimed = await h.eq.try_claim(h.q(), 0.5)
        assert claimed is not None
        renewed = await h.eq.renew_for(claimed, 30)
        assert renewed.version == claimed.version + 1
        assert renewed.at > claimed.at + timedelta(seconds=20)
        await h.wait_past(claimed.at)
        other = await h.client()
        assert await other.try_claim(h.q(), 10) is None

    @conformance
    async def test_delete_and_depend(self, h: Harness) -> None:
        a, b = (await h.eq.modify(Modification().insert(h.q()).insert(h.q()))).inserted
        result = await h.eq.modify(Modification().delete(a).depend(b))
        assert result.inserted == () and result.changed == ()
        [still] = await h.eq.tasks(h.q())
        # Depends are passive: no version bump, no claimant change.
        assert still == b

    @conformance
    async def test_depend_ignores_another_claimants_lease(self, h: Harness) -> None:
        # SPEC: depends are passive, with no claimant check (unlike deletes and changes).
        await h.eq.modify(Modification().insert(h.q()))
        holder = await h.client()
        leased = await holder.try_claim(h.q(), 60)
        assert leased is not None
        result = await h.eq.modify(Modification().depend(leased).insert(h.q("next")))
        assert len(result.inserted) == 1
        assert await h.eq.tasks(ids=[leased.id]) == [leased]

    @conformance
    async def test_future_insert_is_leased_by_its_inserter(self, h: Harness) -> None:
        # SPEC section 1: leased by X iff claimant == X and at > now; an insert
        # sets claimant to the inserter, so a future task is the inserter's lease.
        inserter = await h.client()
        future = await h.in_ms(60_000)
        [task] = (await inserter.modify(Modification().insert(h.q(), at=future))).inserted
        with pytest.raises(DependencyError) as info:
            await h.eq.modify(Modification().delete(task))
        err = info.value
        assert [i.id for i in err.claims] == [task.id]
        assert err.deletes == ()
        assert await h.eq.tasks(h.q(), claimant=h.eq.claimant) == []
        assert await h.eq.tasks(h.q(), claimant=inserter.claimant) == [task]
        await inserter.modify(Modification().delete(task))
        assert await h.eq.queues_empty(exact=[h.q()])

    @conformance
    async def test_stale_version_of_a_leased_task_is_not_a_claim_failure(self, h: Harness) -> None:
        # SPEC Modify table: "claim" is for the RIGHT version leased by another;
        # a wrong version is reported as a change or delete failure even if leased.
        await h.eq.modify(Modification().insert(h.q()).insert(h.q()))
        first = await h.eq.try_claim(h.q(), 60)
        second = await h.eq.try_claim(h.q(), 60)
        assert first is not None and second is not None
        other = await h.client()
        stale_change = TaskID(first.id, first.version + 1, first.queue)
        stale_delete = TaskID(second.id, second.version + 1, second.queue)
        with pytest.raises(DependencyError) as info:
            await other.modify(
                Modification()
                .add_change(TaskChange(stale_change, first.as_data()))
                .delete(stale_delete)
            )
        err = info.value
        assert [(c.id, c.version) for c in err.changes] == [(first.id, first.version + 1)]
        assert [(d.id, d.version) for d in err.deletes] == [(second.id, second.version + 1)]
        assert err.claims == ()

    @conformance
    async def test_dependency_error_reports_every_failure_together(self, h: Harness) -> None:
        a, b, c = (
            await h.eq.modify(Modification().insert(h.q()).insert(h.q()).insert(h.q()))
        ).inserted
        gone = TaskID("gone-" + h.prefix, 0, h.q())
        stale_b = TaskID(b.id, b.version + 5, b.queue)
        with pytest.raises(DependencyError) as info:
            await h.eq.modify(
                Modification()
                .depend(gone)
                .delete(stale_b)
                .add_change(TaskChange(TaskID(c.id, 7, c.queue), c.as_data()))
                .delete(a)
            )
        err = info.value
        assert [d.id for d in err.depends] == [gone.id]
        assert [(d.id, d.version) for d in err.deletes] == [(b.id, b.version + 5)]
        assert [(d.id, d.version) for d in err.changes] == [(c.id, 7)]
        assert err.inserts == () and err.claims == ()
        assert err.has_missing() and not err.only_claims()
        # Atomic: the valid delete of a was not applied.
        assert {t.id for t in await h.eq.tasks(h.q())} == {a.id, b.id, c.id}

    @conformance
    async def test_nothing_applies_when_one_dependency_fails(self, h: Harness) -> None:
        keep, change_me = (await h.eq.modify(Modification().insert(h.q()).insert(h.q()))).inserted
        with pytest.raises(DependencyError):
            await h.eq.modify(
                Modification()
                .insert(h.q("new"), b"n")
                .delete(keep)
                .change(change_me, value=b"changed")
                .depend(TaskID(keep.id + "-nope", 0))
            )
        stored = {t.id: t for t in await h.eq.tasks(h.q())}
        assert stored == {keep.id: keep, change_me.id: change_me}
        assert await h.eq.queue_stats(exact=[h.q("new")]) == {}

    @conformance
    async def test_leased_by_another_claimant(self, h: Harness) -> None:
        await h.eq.modify(Modification().insert(h.q()).insert(h.q()))
        holder = await h.client()
        first = await holder.try_claim(h.q(), 2)  # must outlast the next two calls
        second = await holder.try_claim(h.q(), 60)
        assert first is not None and second is not None
        with pytest.raises(DependencyError) as info:
            await h.eq.modify(Modification().change(first, value=b"mine").delete(second))
        err = info.value
        assert sorted(i.id for i in err.claims) == sorted([first.id, second.id])
        assert err.only_claims()
        # The holder's own claimant id may act on it (force, as admin tools do)...
        await h.eq.modify(Modification().delete(second), claimant=holder.claimant)
        # ...and once the lease expires, anyone may.
        await h.wait_past(first.at)
        [changed] = (await h.eq.modify(Modification().change(first, value=b"mine"))).changed
        assert changed.claimant == h.eq.claimant and changed.value == b"mine"

    @conformance
    async def test_stale_version_fails_after_takeover(self, h: Harness) -> None:
        await h.eq.modify(Modification().insert(h.q(), b"job"))
        slow = await h.client()
        stale = await slow.try_claim(h.q(), 0.3)
        assert stale is not None
        await h.wait_past(stale.at)
        fresh = await h.eq.try_claim(h.q(), 30)
        assert fresh is not None and fresh.id == stale.id
        with pytest.raises(DependencyError) as info:
            await slow.modify(Modification().delete(stale))
        assert [(d.id, d.version) for d in info.value.deletes] == [(stale.id, stale.version)]
        await h.eq.modify(Modification().delete(fresh))
        assert await h.eq.queues_empty(exact=[h.q()])

    @conformance
    async def test_concurrent_calls_of_one_client_each_stand_alone(self, h: Harness) -> None:
        # A backend may send concurrent calls of one client together (group
        # commit); each must still succeed or fail exactly as if sent alone.
        queue = h.q()
        mod = Modification()
        for i in range(40):
            mod.insert(queue, str(i).encode())
        await h.eq.modify(mod)
        got = await asyncio.gather(*(h.eq.try_claim(queue, 60) for _ in range(50)))
        claimed = [t for t in got if t is not None]
        assert len(claimed) == 40
        assert len({t.id for t in claimed}) == 40
        # Every other delete names the version before the claim: those alone fail.
        deletes = [TaskID(t.id, t.version - (i % 2), t.queue) for i, t in enumerate(claimed)]
        outcomes = await asyncio.gather(
            *(h.eq.modify(Modification().delete(d)) for d in deletes), return_exceptions=True
        )
        for i, (gone, outcome) in enumerate(zip(deletes, outcomes, strict=True)):
            if i % 2:
                assert isinstance(outcome, DependencyError), outcome
                assert [(d.id, d.version) for d in outcome.deletes] == [(gone.id, gone.version)]
            else:
                assert not isinstance(outcome, BaseException), outcome
        left = {t.id for t in await h.eq.tasks(queue)}
        assert left == {d.id for i, d in enumerate(deletes) if i % 2}

    @conformance
    async def test_invalid_modifications_are_rejected_with_the_field(self, h: Harness) -> None:
        [task] = (await h.eq.modify(Modification().insert(h.q()))).inserted
        cases = [
            ("depends[0].id", Modification().delete(task).depend(task)),
            ("inserts[0].queue", Modification().insert("")),
            ("inserts[0].attempt", Modification().insert(h.q(), attempt=-1)),
            ("inserts[0].queue", Modification().insert("a\x00b")),
            ("inserts[0].err", Modification().insert(h.q(), err="lone \udc80 surrogate")),
            (
                "changes[0].new.id",
                Modification().add_change(
                    TaskChange(task.as_id(), TaskData(queue=h.q(), id="other-id"))
                ),
            ),
        ]
        for field, mod in cases:
            with pytest.raises(InvalidArgument) as info:
                await h.eq.modify(mod)
            assert info.value.field == field, (field, info.value)
        with pytest.raises(InvalidArgument) as info:
            ModifyRequest(claimant="", inserts=(TaskData(queue=h.q()),))
        assert info.value.field == "claimant"
        with pytest.raises(InvalidArgument):
            Modification().insert(h.q(), value=b"x", at=datetime.now(UTC), delay=1)
        # The task is untouched by all of the above.
        assert await h.eq.tasks(ids=[task.id]) == [task]
        # An empty request is a no-op success.
        result = await h.eq.modify(Modification())
        assert result.inserted == () and result.changed == ()

    @conformance
    async def test_size_limits(self, h: Harness) -> None:
        ok_queue = h.prefix + "q" * (1024 - len(h.prefix.encode()))
        [task] = (await h.eq.modify(Modification().insert(ok_queue))).inserted
        assert task.queue == ok_queue
        with pytest.raises(InvalidArgument) as info:
            await h.eq.modify(Modification().insert(ok_queue + "q"))
        assert info.value.field == "inserts[0].queue"
        with pytest.raises(InvalidArgument) as info:
            await h.eq.modify(Modification().change(task, queue=ok_queue + "q"))
        assert info.value.field == "changes[0].new.queue"
        assert await h.eq.tasks(ids=[task.id]) == [task]
        # Limits count UTF-8 bytes, not characters.
        with pytest.raises(InvalidArgument):
            await h.eq.modify(Modification().insert(h.prefix + "é" * 512))
        with pytest.raises(InvalidArgument) as info:
            await h.eq.modify(Modification().insert(h.q(), id="i" * 129))
        assert info.value.field == "inserts[0].id"
        unique_id = (uuid.uuid4().hex * 4)[:128]
        [long_id] = (await h.eq.modify(Modification().insert(h.q(), id=unique_id))).inserted
        assert long_id.id == unique_id

    @conformance
    async def test_claimant_ids_are_limited_to_128_bytes(self, h: Harness) -> None:
        longest = (uuid.uuid4().hex * 4)[:128]
        holder = await h.client(claimant=longest)
        [task] = (await holder.modify(Modification().insert(h.q()))).inserted
        assert task.claimant == longest
        claimed = await holder.try_claim(h.q(), 60)
        assert claimed is not None and claimed.claimant == longest
        # Stored whole: the claimant filter still recognises the holder.
        assert await h.eq.tasks(h.q(), claimant=longest) == [claimed]
        assert await h.eq.tasks(h.q(), claimant=h.eq.claimant) == []
        for too_long in ("c" * 129, "é" * 65):  # limits count UTF-8 bytes
            with pytest.raises(InvalidArgument) as info:
                await h.eq.modify(Modification().insert(h.q()), claimant=too_long)
            assert info.value.field == "claimant"
            with pytest.raises(InvalidArgument) as info:
                await h.eq.tasks(h.q(), claimant=too_long)
            assert info.value.field == "claimant"
            with pytest.raises(InvalidArgument) as info:
                AsyncEntroQ(h.eq.backend, claimant=too_long)
            assert info.value.field == "claimant"
        assert await h.eq.queues(exact=[h.q()]) == {h.q(): 1}

    @conformance
    async def test_times_have_millisecond_precision(self, h: Harness) -> None:
        base = await h.in_ms(60_000)
        at = base.replace(microsecond=(base.microsecond // 1000) * 1000 + 789)
        [task] = (await h.eq.modify(Modification().insert(h.q(), at=at))).inserted
        assert task.at == at.replace(microsecond=(at.microsecond // 1000) * 1000)
        for stamp in (task.at, task.created, task.modified):
            assert stamp.microsecond % 1000 == 0
            assert stamp.utcoffset() == timedelta(0)
        [stored] = await h.eq.tasks(ids=[task.id])
        assert stored.at == task.at and stored.created == task.created

    @conformance
    async def test_results_keep_request_order(self, h: Harness) -> None:
        tasks = (
            await h.eq.modify(
                Modification().insert(h.q(), b"0").insert(h.q(), b"1").insert(h.q(), b"2")
            )
        ).inserted
        mod = Modification()
        for task in reversed(tasks):
            mod.change(task, value=task.value + b"!")
        for i in range(5):
            mod.insert(h.q("new"), str(i))
        result = await h.eq.modify(mod)
        assert [t.value for t in result.changed] == [b"2!", b"1!", b"0!"]
        assert [t.value for t in result.inserted] == [str(i).encode() for i in range(5)]

    @conformance
    async def test_versions_move_only_on_claim_and_change(self, h: Harness) -> None:
        [task] = (await h.eq.modify(Modification().insert(h.q()))).inserted
        assert task.version == 0
        await h.eq.tasks(h.q())
        await h.eq.queue_stats(prefixes=[h.prefix])
        await h.eq.modify(Modification().depend(task))
        [read] = await h.eq.tasks(ids=[task.id])
        assert read.version == 0
        claimed = await h.eq.try_claim(h.q(), 30)
        assert claimed is not None and claimed.version == 1
        [changed] = (await h.eq.modify(Modification().change(claimed))).changed
        assert changed.version == 2
        assert changed.claims == 1
