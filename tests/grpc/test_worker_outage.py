"""A Worker whose entroq-svc goes away: it keeps trying, quietly, and stops at once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from entroq_core import AsyncEntroQ, Modification, Task, worker
from entroq_core.backoff import Backoff
from entroq_core.worker import Worker
from scripts.servers.entroq_svc import ServerThread
from tests.waiting import until, until_reachable

WAIT = 60.0


def _claim_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "entroq.worker" and r.message.startswith(("claim from", "claims from"))
    ]


def test_an_outage_is_one_warning_then_one_recovery_not_a_line_per_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="entroq.worker")
    done: list[bytes] = []

    async def handle(task: Task) -> None:
        done.append(task.value)

    async def run() -> None:
        first = ServerThread("mem://").start()
        port = first.port
        async with await AsyncEntroQ.open(first.url) as eq:
            work = Worker(eq, "outage", handle, concurrency=4, lease=5, poll=1.0)
            runner = asyncio.create_task(work.run())
            try:
                await asyncio.sleep(0.2)  # the slots are waiting in Claim
                await asyncio.to_thread(first.stop)
                # Every slot fails and tries again a few times while nothing listens.
                await until(lambda: len(_claim_failures(caplog)) >= 12, "repeated claim failures")
                with ServerThread("mem://", port=port) as second:
                    async with await AsyncEntroQ.open(second.url) as producer:
                        await until_reachable(producer)
                        await producer.modify(Modification().insert("outage", b"after"))
                    await until(lambda: done == [b"after"], "the task inserted after the outage")
                    assert not runner.done(), "the worker stopped"
                    work.stop()
                    await runner
            finally:
                work.stop()
                await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(run())
    records = _claim_failures(caplog)
    loud = [r for r in records if r.levelno >= logging.WARNING]
    assert len(records) >= 12
    assert [("failed; retrying" in r.message, "work again" in r.message) for r in loud] == [
        (True, False),
        (False, True),
    ], [r.message for r in loud]


def test_stop_ends_a_pause_between_failed_claims_at_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pauses of ten minutes: the worker must still stop when told, not after one.
    monkeypatch.setattr(worker, "CLAIM_RETRY", Backoff(base=600, cap=600, jitter=False))
    caplog.set_level(logging.DEBUG, logger="entroq.worker")

    async def handle(task: Task) -> None:
        return None

    async def run() -> None:
        server = ServerThread("mem://").start()
        async with await AsyncEntroQ.open(server.url) as eq:
            work = Worker(eq, "outage", handle, concurrency=2, lease=5, poll=1.0)
            runner = asyncio.create_task(work.run())
            try:
                await asyncio.sleep(0.2)
                await asyncio.to_thread(server.stop)
                await until(lambda: len(_claim_failures(caplog)) >= 2, "both slots failing")
                work.stop()
                async with asyncio.timeout(WAIT):
                    await runner
            finally:
                runner.cancel()

    asyncio.run(run())
