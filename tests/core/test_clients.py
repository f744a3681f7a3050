"""AsyncEntroQ and EntroQ behaviour beyond the conformance suite."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from entroq_core import AsyncEntroQ, DependencyError, EntroQ, InvalidArgument, Modification, Task
from entroq_core.errors import BackendUnavailable

WAIT = 60.0


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


# --- the sync client's own loop thread, and closing it under other threads ------------


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Start ``call`` in a thread; the list gets its result or the exception it raised."""
    out: list[object] = []

    def target() -> None:
        try:
            out.append(call())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def test_the_sync_client_inside_its_own_async_handler_fails_instead_of_hanging() -> None:
    eq = EntroQ("mem://")
    eq.modify(Modification().insert("own-loop", b"x"))

    async def handle(task: Task) -> None:
        eq.modify(Modification().insert("audit", b"x"))  # waits on the loop it runs on

    thread, _ = _in_thread(
        lambda: eq.work("own-loop", handle, max_attempts=1, handle_signals=False, poll=0.1)
    )
    try:
        deadline = time.monotonic() + WAIT
        while not eq.tasks("own-loop/err") and time.monotonic() < deadline:
            time.sleep(0.05)
        [failed] = eq.tasks("own-loop/err")
        assert "called from its own event loop thread" in failed.err
        assert "eq.async_client" in failed.err
    finally:
        eq.close()
        thread.join(WAIT)
    assert not thread.is_alive()


def test_close_ends_calls_other_threads_wait_on() -> None:
    eq = EntroQ("mem://")
    thread, out = _in_thread(lambda: eq.claim("nothing-here", 10))
    time.sleep(0.3)  # the claim is waiting
    eq.close()
    thread.join(WAIT)
    assert not thread.is_alive()
    [ended] = out
    # "closed during the call", or "is closed" if close() won the race to the loop.
    assert isinstance(ended, BackendUnavailable) and "closed" in str(ended)


def test_a_closed_sync_client_refuses_calls_and_closes_once() -> None:
    with EntroQ("mem://") as eq:
        eq.close()  # and again on leaving the block: nothing happens
    with pytest.raises(BackendUnavailable, match="this EntroQ client is closed"):
        eq.time()


def test_closing_under_a_worker_thread_releases_its_task() -> None:
    store = "mem://sync-close-release"
    watcher = EntroQ(store)  # keeps the named store alive and looks at it
    eq = EntroQ(store)
    try:
        watcher.modify(Modification().insert("long", b"job"))
        started = threading.Event()

        async def handle(task: Task) -> None:
            started.set()
            await asyncio.sleep(3600)

        thread, out = _in_thread(lambda: eq.work("long", handle, handle_signals=False, lease=60))
        assert started.wait(WAIT)
        [held] = watcher.tasks("long")
        assert held.claimant == eq.claimant and held.at > watcher.time()
        eq.close()
        thread.join(WAIT)
        assert not thread.is_alive() and isinstance(out[0], BackendUnavailable)
        [released] = watcher.tasks("long")
        assert released.at <= watcher.time()  # available again at once, not in 60 s
    finally:
        eq.close()
        watcher.close()
