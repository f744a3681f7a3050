"""The worker loop against mem: outcomes, retries, leases, shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from entroq_core import (
    AsyncEntroQ,
    Backoff,
    InvalidArgument,
    Modification,
    MoveToError,
    Task,
    Worker,
)

FAST = {"backoff": Backoff(base=0.05, cap=0.1), "poll": 0.5, "lease": 2.0}


def run(main: Callable[[AsyncEntroQ], Awaitable[None]]) -> None:
    async def wrapper() -> None:
        async with await AsyncEntroQ.open("mem://") as eq:
            async with asyncio.timeout(60):
                await main(eq)

    asyncio.run(wrapper())


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


async def run_worker_until(
    worker: Worker, condition: Callable[[], Awaitable[bool]], timeout: float = 20
) -> None:
    running = asyncio.create_task(worker.run())
    try:
        await until(condition, timeout)
    finally:
        worker.stop()
        await running


def test_success_deletes_or_commits_the_returned_modification() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"1").insert("in", b"2").insert("in", b"3"))

        async def handle(task: Task) -> Modification | None:
            if task.value == b"1":
                return None
            return (
                Modification()
                .change(task, queue="out", value=task.value + b"!")
                .insert("log", task.value)
            )

        worker = Worker(eq, "in", handle, **FAST)
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]))
        out = sorted(t.value for t in await eq.tasks("out"))
        assert out == [b"2!", b"3!"]
        assert sorted(t.value for t in await eq.tasks("log")) == [b"2", b"3"]
        assert worker.processed == 3

    run(main)


def test_commit_uses_the_renewed_version() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"slow"))

        async def handle(task: Task) -> Modification:
            await asyncio.sleep(0.9)  # several renewals at lease 0.3
            return Modification().change(task, queue="done")

        worker = Worker(eq, "in", handle, lease=0.3, poll=0.5)
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]))
        [done] = await eq.tasks("done")
        # 1 claim + at least 2 renewals + the final change.
        assert done.version >= 4
        assert done.claims == 1

    run(main)


def test_failures_retry_with_backoff_then_go_to_the_error_queue() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"bad"))
        calls = 0

        async def handle(task: Task) -> None:
            nonlocal calls
            calls += 1
            raise RuntimeError(f"boom {calls}")

        worker = Worker(eq, "in", handle, max_attempts=3, **FAST)
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]))
        [failed] = await eq.tasks("in/err")
        assert calls == 3
        assert failed.attempt == 3
        assert failed.err.splitlines() == [
            "attempt 1: RuntimeError: boom 1",
            "attempt 2: RuntimeError: boom 2",
            "attempt 3: RuntimeError: boom 3",
        ]
        assert worker.failed == 3

    run(main)


def test_move_to_error_and_bad_return_types() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"poison").insert("in", b"typo"))

        def handle(task: Task) -> Any:  # a sync handler, run in a thread
            assert threading.current_thread() is not threading.main_thread()
            if task.value == b"poison":
                raise MoveToError("cannot parse")
            return 42

        worker = Worker(eq, "in", handle, error_queue=lambda q: "dead/" + q, max_attempts=2, **FAST)
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]))
        dead = {t.value: t for t in await eq.tasks("dead/in")}
        assert dead[b"poison"].attempt == 1
        assert dead[b"poison"].err == "attempt 1: MoveToError: cannot parse"
        assert dead[b"typo"].attempt == 2
        assert "handler returned int, expected Modification or None" in dead[b"typo"].err

    run(main)


def test_a_modification_that_leaves_the_task_alone_is_never_committed() -> None:
    # Committed, it would leave the task to be claimed and its result committed
    # again every time the lease ran out.
    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"job"))
        calls = 0

        async def handle(task: Task) -> Modification:
            nonlocal calls
            calls += 1
            return Modification().insert("out", task.value + b"-result").depend(task)

        worker = Worker(eq, "in", handle, max_attempts=2, **{**FAST, "lease": 0.4})
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]))
        assert await eq.tasks("out") == []
        [failed] = await eq.tasks("in/err")
        assert calls == 2 and failed.attempt == 2
        assert "neither deletes nor changes task" in failed.err
        assert worker.processed == 0

    run(main)


def test_lost_lease_cancels_the_handler_and_the_worker_goes_on() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        thief = await AsyncEntroQ.open("mem://")
        await eq.modify(Modification().insert("in", b"stolen"))
        cancelled = asyncio.Event()

        async def handle(task: Task) -> None:
            if task.value == b"stolen":
                # An admin removes the task while we work on it.
                await eq.modify(Modification().delete(task))
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise
            return None

        worker = Worker(eq, "in", handle, lease=0.3, poll=0.3)
        running = asyncio.create_task(worker.run())
        async with asyncio.timeout(10):
            await cancelled.wait()
        await eq.modify(Modification().insert("in", b"next"))
        await until(lambda: eq.queues_empty(exact=["in"]))
        worker.stop()
        await running
        assert worker.processed == 1
        await thief.aclose()

    run(main)


def test_commit_dependency_error_is_dropped_and_work_continues() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"a").insert("in", b"b"))
        [ghost] = (await eq.modify(Modification().insert("ghost"))).inserted
        await eq.modify(Modification().delete(ghost))

        async def handle(task: Task) -> Modification:
            mod = Modification().delete(task)
            if task.value == b"a":
                mod.depend(ghost)  # gone: this commit must fail
            return mod

        worker = Worker(eq, "in", handle, lease=0.5, poll=0.3)
        # "a" keeps failing to commit and comes back when its lease expires, so
        # wait for "b" to be done and "a" to have been tried.
        await run_worker_until(
            worker, lambda: _values(eq, "in", lambda vs: vs == [b"a"]), timeout=20
        )
        assert worker.processed == 1

    run(main)


async def _values(eq: AsyncEntroQ, queue: str, check: Callable[[list[bytes]], bool]) -> bool:
    return check(sorted(t.value for t in await eq.tasks(queue)))


def test_concurrency_runs_handlers_at_once() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        mod = Modification()
        for i in range(8):
            mod.insert("in", str(i))
        await eq.modify(mod)
        active = peak = 0

        async def handle(task: Task) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.3)
            active -= 1

        worker = Worker(eq, "in", handle, concurrency=4, **FAST)
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]))
        assert peak == 4

    run(main)


def test_stop_lets_short_handlers_finish_and_releases_long_ones() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"short").insert("in", b"long"))
        started = 0

        async def handle(task: Task) -> None:
            nonlocal started
            started += 1
            await asyncio.sleep(0.3 if task.value == b"short" else 30)

        worker = Worker(eq, "in", handle, concurrency=2, grace=1.0, lease=60, poll=0.5)
        running = asyncio.create_task(worker.run())
        await until(lambda: asyncio.sleep(0, started == 2))
        worker.stop()
        await running
        [left] = await eq.tasks("in")
        assert left.value == b"long"
        # Released, not left leased for 60 s: available to others right now.
        assert left.at <= await eq.time()
        assert left.claims == 1
        assert worker.processed == 1

    run(main)


def test_sync_handlers_each_get_a_thread_however_many_slots() -> None:
    # asyncio's shared pool has min(32, CPUs + 4) threads: 6 on a 2-core machine.
    slots = 16

    async def main(eq: AsyncEntroQ) -> None:
        mod = Modification()
        for i in range(slots):
            mod.insert("in", str(i))
        await eq.modify(mod)
        # As on a 2-core machine whatever this one has: the handlers must not need it.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(6))
        all_running = threading.Barrier(slots, timeout=30)

        def handle(task: Task) -> None:
            all_running.wait()  # only passes once every slot's handler runs at once

        worker = Worker(eq, "in", handle, concurrency=slots, **FAST)
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]), timeout=60)
        assert (worker.processed, worker.failed) == (slots, 0)

    run(main)


def test_hung_sync_handlers_do_not_starve_the_next_ones() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(6))
        hung = threading.Event()
        mod = Modification()
        for _ in range(9):
            mod.insert("in", b"hang")
        await eq.modify(mod)

        def handle(task: Task) -> Modification | None:
            if task.value == b"hang" and task.attempt == 0:
                hung.wait(60)  # outlives its timeout; Python cannot stop it
                return None
            return Modification().delete(task).insert("done", task.value)

        worker = Worker(eq, "in", handle, concurrency=3, handler_timeout=0.3, **FAST)
        try:
            # Every task times out once (9 threads left hanging), then is retried and
            # must run: a shared pool of 6 threads would be full of hung handlers.
            await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]), timeout=60)
        finally:
            hung.set()
        assert len(await eq.tasks("done")) == 9
        # At least the 9 first attempts failed (a retry may time out too on a slow machine).
        assert worker.failed >= 9 and await eq.tasks("in/err") == []

    run(main)


def test_sync_handlers_see_the_context_and_may_raise_anything() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    async def main(eq: AsyncEntroQ) -> None:
        await eq.modify(Modification().insert("in", b"ctx").insert("in", b"stop"))
        seen: list[str] = []

        def handle(task: Task) -> None:
            seen.append(request_id.get("unset"))
            if task.value == b"stop":
                raise StopIteration("not a generator")

        request_id.set("set-before-run")
        worker = Worker(eq, "in", handle, max_attempts=1, **FAST)
        await run_worker_until(worker, lambda: eq.queues_empty(exact=["in"]))
        assert seen == ["set-before-run", "set-before-run"]
        [failed] = await eq.tasks("in/err")
        assert "StopIteration: not a generator" in failed.err

    run(main)


def test_bad_options_name_the_field() -> None:
    async def main(eq: AsyncEntroQ) -> None:
        async def handle(task: Task) -> None:
            return None

        for kwargs, field in (
            ({"concurrency": 0}, "concurrency"),
            ({"lease": 0}, "lease"),
            ({"max_attempts": 0}, "max_attempts"),
        ):
            with pytest.raises(InvalidArgument) as info:
                Worker(eq, "in", handle, **kwargs)
            assert info.value.field == field
        with pytest.raises(InvalidArgument) as info:
            Worker(eq, [], handle)
        assert info.value.field == "queues"
        with pytest.raises(InvalidArgument):
            Worker(eq, "in", "not callable")  # type: ignore[arg-type]

    run(main)


def test_sigterm_stops_a_sync_worker_and_releases_its_task() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from entroq_core import EntroQ, Modification
        with EntroQ("mem://") as eq:
            eq.modify(Modification().insert("in", b"long"))
            def handle(task):
                print("started", flush=True)
                time.sleep(3)
            worker = eq.work("in", handle, grace=0.2, lease=60)
            [task] = eq.tasks("in")
            print("released", task.claims, task.at <= eq.time(), worker.processed, flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.1)
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == "released 1 True 0"
