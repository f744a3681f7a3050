"""AsyncEntroQ and EntroQ behaviour beyond the conformance suite."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from entroq_core import AsyncEntroQ, DependencyError, EntroQ, InvalidArgument, Modification


def test_sync_client_round_trip_and_streaming() -> None:
    with EntroQ("mem://") as eq:
        inserted = eq.modify(Modification().insert("q", "a").insert("q", "b")).inserted
        assert [t.value for t in inserted] == [b"a", b"b"]
        streamed = list(eq.stream_tasks("q"))
        assert {t.id for t in streamed} == {t.id for t in inserted}
        task = eq.try_claim("q", 10)
        assert task is not None and task.claimant == eq.claimant
        assert eq.queues() == {"q": 2}
        eq.modify(Modification().delete(task))
        assert eq.queue_stats()["q"].num_tasks == 1
        assert not eq.queues_empty(exact=["q"])


def test_sync_clients_on_one_named_store_wake_each_other() -> None:
    with EntroQ("mem://shared-sync") as waiter, EntroQ("mem://shared-sync") as producer:
        got = []
        thread = threading.Thread(target=lambda: got.append(waiter.claim("w", 10, poll=60)))
        thread.start()
        time.sleep(0.2)
        producer.modify(Modification().insert("w", "ping"))
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert got[0].value == b"ping"


def test_sync_do_with_renew_reports_a_lost_lease() -> None:
    with EntroQ("mem://lost-sync") as worker, EntroQ("mem://lost-sync") as admin:
        worker.modify(Modification().insert("q", "job"))
        task = worker.claim("q", 0.4)

        def work(held: object) -> str:
            # Someone else deletes the task (acting as the holder) while we work.
            admin.modify(Modification().delete(task), claimant=worker.claimant)
            time.sleep(0.5)
            return "late result"

        with pytest.raises(DependencyError):
            worker.do_with_renew(task, 0.4, work)


def test_renewing_keeps_the_lease_and_returns_latest_version() -> None:
    async def main() -> None:
        async with await AsyncEntroQ.open("mem://renew") as eq:
            other = await AsyncEntroQ.open("mem://renew")
            await eq.modify(Modification().insert("q"))
            task = await eq.claim("q", 0.3)
            async with eq.renewing(task, 0.3) as held:
                await asyncio.sleep(0.8)
                # Past the original lease, but renewed: nobody else can claim it.
                assert await other.try_claim("q", 10) is None
            assert held.task.version > task.version
            await eq.modify(Modification().delete(held.task))
            await other.aclose()

    asyncio.run(main())


def test_lost_lease_cancels_the_block_and_raises_dependency_error() -> None:
    async def main() -> None:
        async with await AsyncEntroQ.open("mem://lost") as eq:
            thief = await AsyncEntroQ.open("mem://lost")
            await eq.modify(Modification().insert("q"))
            task = await eq.claim("q", 0.2)
            finished = False

            async def work(t: object) -> None:
                nonlocal finished
                await thief.modify(Modification().delete(task), claimant=eq.claimant)
                await asyncio.sleep(5)
                finished = True

            with pytest.raises(DependencyError):
                await eq.do_with_renew(task, 0.2, work)
            assert not finished
            await thief.aclose()

    asyncio.run(main())


def test_client_argument_errors_name_the_field() -> None:
    async def main() -> None:
        async with await AsyncEntroQ.open("mem://") as eq:
            for kwargs, field in (
                ({"duration": "ten"}, "duration"),
                ({"duration": 0.0001}, "duration"),
                ({"poll": -1}, "poll"),
            ):
                with pytest.raises(InvalidArgument) as info:
                    await eq.claim("q", **kwargs)  # type: ignore[arg-type]
                assert info.value.field == field
            with pytest.raises(InvalidArgument):
                await eq.queues_empty()
            with pytest.raises(InvalidArgument) as info:
                AsyncEntroQ(eq.backend, claimant="x" * 200)
            assert info.value.field == "claimant"

    asyncio.run(main())
