"""Workers talking to entroq-svc carry on while the service restarts in front of etcd."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from entroq_core import AsyncEntroQ, Modification, Task
from entroq_core.backoff import Backoff
from entroq_core.errors import BackendUnavailable
from entroq_core.worker import Worker
from scripts.servers.entroq_svc import ServerThread, SvcProcess, start_svc
from scripts.servers.etcd import EtcdCluster, free_port
from tests.waiting import until

from .workers import running

HANG_GUARD = 60

TASKS = 300


def test_workers_carry_on_through_service_restarts(etcd_url: str) -> None:
    """A rolling restart of entroq-svc: each stop ends the workers' calls (waiting
    claims, and calls grpc cancels as it shuts down) and the service comes back on
    the same port. The workers must treat all of it as "unavailable, try again",
    never as their own cancellation, and every task must be committed once."""
    extra = ["--port", str(free_port())]
    done: list[bytes] = []

    async def handle(task: Task) -> Modification:
        await asyncio.sleep(0.01)
        return Modification().delete(task).insert("done", task.value)

    async def run() -> None:
        svc: SvcProcess = await asyncio.to_thread(start_svc, etcd_url, extra)
        store = await AsyncEntroQ.open(etcd_url)  # straight to etcd: setup and checks
        mod = Modification()
        for i in range(TASKS):
            mod.insert("todo", b"%d" % i)
        await store.modify(mod)
        clients = [await AsyncEntroQ.open(svc.url) for _ in range(2)]
        fast = Backoff(base=0.05, cap=0.5)
        workers = [
            Worker(c, "todo", handle, concurrency=4, lease=5, poll=1.0, backoff=fast)
            for c in clients
        ]
        try:
            async with running(workers, clients) as runs:
                for restart in range(2):
                    target = sum(w.processed for w in workers) + 30
                    await until(
                        lambda target=target: sum(w.processed for w in workers) >= target,
                        f"progress before restart {restart}",
                    )
                    assert await asyncio.to_thread(svc.terminate) == 0
                    svc.close()
                    svc = await asyncio.to_thread(start_svc, etcd_url, extra)
                async with asyncio.timeout(120):
                    while len(await store.tasks("done", omit_values=True)) < TASKS:
                        assert not any(r.done() for r in runs), "a worker stopped"
                        await asyncio.sleep(0.1)
                assert not any(r.done() for r in runs), "a worker stopped"
            done.extend(t.value for t in await store.tasks("done"))
            assert await store.tasks("todo") == []
        finally:
            await store.aclose()
            await asyncio.to_thread(svc.terminate)
            svc.close()

    asyncio.run(run())
    assert sorted(done) == sorted(b"%d" % i for i in range(TASKS))


def test_health_of_the_service_follows_etcd_and_the_process_stays_serving(
    own_etcd: EtcdCluster,
) -> None:
    """etcd goes away: the first call that finds it unavailable turns proto.EntroQ
    NOT_SERVING (a readiness probe stops sending work), while "" stays SERVING (a
    liveness probe must not restart the server). etcd comes back: the readiness
    probe finds it and proto.EntroQ is SERVING again, with no client call."""
    member = own_etcd.members[0]
    with ServerThread(own_etcd.url + "/health/?call_timeout=1") as server:

        async def run() -> None:
            async with grpc.aio.insecure_channel(server.address) as channel:
                health_stub = health_pb2_grpc.HealthStub(channel)

                async def status(service: str) -> int:
                    request = health_pb2.HealthCheckRequest(service=service)
                    return (await health_stub.Check(request)).status

                serving = health_pb2.HealthCheckResponse.SERVING
                assert await status("proto.EntroQ") == serving
                async with await AsyncEntroQ.open(server.url) as eq:
                    member.kill()
                    with pytest.raises(BackendUnavailable):
                        await eq.queues()
                    async with asyncio.timeout(HANG_GUARD):
                        while await status("proto.EntroQ") == serving:
                            await asyncio.sleep(0.05)
                    assert await status("") == serving
                    own_etcd.restart(member)
                    async with asyncio.timeout(HANG_GUARD):
                        while await status("proto.EntroQ") != serving:
                            await asyncio.sleep(0.1)
                    assert await eq.queues() == {}

        asyncio.run(run())
