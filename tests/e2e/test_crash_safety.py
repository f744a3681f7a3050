"""Workers killed with SIGKILL never cause a lost task or a double commit."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from entroq_core import AsyncEntroQ, DependencyError, Modification, TaskID
from scripts.servers.entroq_svc import svc_process

WORKER = Path(__file__).with_name("stage_worker.py")


@pytest.fixture(scope="module")
def svc_url() -> Iterator[str]:
    with svc_process("mem") as url:
        yield url


def spawn(url: str, prefix: str, *flags: str, watch: bool = False) -> subprocess.Popen[str]:
    """Start a stage worker; ``watch`` pipes its "started" lines to the test.

    An unread pipe fills up and blocks the worker, so only watched workers get one.
    """
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, prefix, *flags],
        stdout=subprocess.PIPE if watch else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_killed_worker_is_taken_over_and_its_late_commit_fails(svc_url: str) -> None:
    prefix = f"crash-{uuid.uuid4().hex[:8]}/"

    async def main() -> None:
        async with await AsyncEntroQ.open(svc_url) as eq:
            [task] = (await eq.modify(Modification().insert(prefix + "s3", b"job"))).inserted
            hung = spawn(svc_url, prefix, "--hang", watch=True)
            assert hung.stdout is not None
            line = await asyncio.to_thread(hung.stdout.readline)
            started_id, started_version = line.split()[1:]
            assert started_id == task.id
            hung.kill()  # SIGKILL mid-task: no release, no commit
            hung.wait()
            hung.stdout.close()
            healthy = spawn(svc_url, prefix)
            try:
                async with asyncio.timeout(60):
                    while not (done := await eq.tasks(prefix + "done")):
                        await asyncio.sleep(0.1)
            finally:
                healthy.terminate()
                healthy.wait(30)
            [finished] = done
            assert finished.id == task.id and finished.value == b"job|s3"
            assert finished.claims == 2  # the killed worker's claim, then the taker's
            # The killed worker's commit, arriving late with the version it held:
            late = TaskID(task.id, int(started_version), prefix + "s3")
            with pytest.raises(DependencyError) as info:
                await eq.modify(Modification().delete(late).insert(prefix + "ledger", "late"))
            assert [d.id for d in info.value.deletes] == [task.id]
            ledger = [t.value for t in await eq.tasks(prefix + "ledger")]
            assert ledger == [f"{task.id}|s3".encode()]

    asyncio.run(main())


def test_pipeline_with_workers_killed_and_restarted_commits_each_stage_once(
    svc_url: str,
) -> None:
    prefix = f"pipe-{uuid.uuid4().hex[:8]}/"
    total = 2000

    async def load() -> None:
        async with await AsyncEntroQ.open(svc_url) as eq:
            for start in range(0, total, 500):
                mod = Modification()
                for i in range(start, start + 500):
                    mod.insert(prefix + "s1", str(i))
                await eq.modify(mod)

    async def done_count() -> int:
        async with await AsyncEntroQ.open(svc_url) as eq:
            return (await eq.queues(exact=[prefix + "done"])).get(prefix + "done", 0)

    asyncio.run(load())
    steady = [spawn(svc_url, prefix) for _ in range(2)]
    chaos = [spawn(svc_url, prefix) for _ in range(2)]
    kills = 0
    deadline = time.monotonic() + 300
    try:
        while asyncio.run(done_count()) < total:
            assert time.monotonic() < deadline, "pipeline did not finish"
            time.sleep(1.0)
            for i, proc in enumerate(chaos):
                proc.kill()
                proc.wait()
                kills += 1
                chaos[i] = spawn(svc_url, prefix)
    finally:
        for proc in steady + chaos:
            proc.terminate()
        for proc in steady + chaos:
            proc.wait(30)
    assert kills >= 2

    async def verify() -> None:
        async with await AsyncEntroQ.open(svc_url) as eq:
            done = await eq.tasks(prefix + "done")
            assert sorted(t.value for t in done) == sorted(
                f"{i}|s1|s2|s3".encode() for i in range(total)
            )
            ledger = collections.Counter(t.value for t in await eq.tasks(prefix + "ledger"))
            assert len(ledger) == 3 * total
            assert set(ledger.values()) == {1}, "a stage was committed twice for some task"
            for stage in ("s1", "s2", "s3"):
                assert await eq.queues_empty(exact=[prefix + stage])

    asyncio.run(verify())
