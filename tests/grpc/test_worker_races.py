"""Worker races that need a real network call in between, over a real entroq-svc."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import grpc

from entroq_core import AsyncEntroQ, Modification, Task
from entroq_core.worker import Worker
from scripts.servers.entroq_svc import ServerThread

if TYPE_CHECKING:
    from entroq_svc.inflight import Continuation

WAIT = 60.0


class BeforeModify(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs ``before(request)`` on the server before each Modify is served."""

    async def before(self, request: Any) -> None:
        raise NotImplementedError

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or details.method != "/proto.EntroQ/Modify":
            return handler
        serve = handler.unary_unary

        async def modify(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self.before(request)
            return await serve(request, context)

        return grpc.unary_unary_rpc_method_handler(
            modify,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class HeldRenewals(BeforeModify):
    """Holds a lease renewal (a Modify changing a task in queue ``queue``) once it
    arrives, until ``release`` is set: the renewal is then surely in flight."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def before(self, request: Any) -> None:
        renewal = any(c.new_data.queue == self.queue for c in request.changes)
        if renewal and not self.release.is_set():
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, WAIT)


def test_a_renewal_that_fails_as_the_handler_returns_drops_the_task_not_the_worker() -> None:
    """An admin moved the task away, so the worker's next renewal fails; the handler
    returns while that renewal is in flight. The worker must drop this task
    (someone else owns it) and go on with the next, not stop."""
    held = HeldRenewals("race")
    done: list[bytes] = []

    async def run() -> None:
        with ServerThread("mem://", interceptors=[held]) as server:
            admin = await AsyncEntroQ.open(server.url)
            async with await AsyncEntroQ.open(server.url) as eq:
                await admin.modify(Modification().insert("race", b"first"))

                async def handle(task: Task) -> None:
                    if task.value == b"first":
                        # What `entroq mod --force` does: act for the holder.
                        moved = Modification().change(task, queue="race/held")
                        await admin.modify(moved, claimant=task.claimant)
                        assert await asyncio.to_thread(held.arrived.wait, WAIT)
                        # Returns now; the renewal is let go a moment later.
                        asyncio.get_running_loop().call_later(0.2, held.release.set)
                    done.append(task.value)

                work = Worker(eq, "race", handle, lease=1.0, poll=0.5)
                runner = asyncio.create_task(work.run())
                try:
                    async with asyncio.timeout(WAIT):
                        while done != [b"first"]:
                            await asyncio.sleep(0.02)
                    await admin.modify(Modification().insert("race", b"second"))
                    async with asyncio.timeout(WAIT):
                        while len(done) < 2 and not runner.done():
                            await asyncio.sleep(0.02)
                    assert not runner.done(), runner  # the worker is still running
                    assert done == [b"first", b"second"]
                    # The first task's result was not committed: it is where the admin put it.
                    [left] = await admin.tasks("race/held")
                    assert left.value == b"first"
                finally:
                    held.release.set()
                    work.stop()
                    await asyncio.gather(runner, return_exceptions=True)
                    await admin.aclose()

    asyncio.run(run())


class Unanswered(BeforeModify):
    """Leaves every Modify unanswered while ``silent`` is set, as a frozen service or
    a dead network path would; ``held`` counts the calls left waiting."""

    def __init__(self) -> None:
        self.silent = threading.Event()
        self.held = 0

    async def before(self, request: Any) -> None:
        if self.silent.is_set():
            self.held += 1
            while self.silent.is_set():
                await asyncio.sleep(0.05)


def test_a_worker_stops_within_its_grace_when_the_service_stops_answering() -> None:
    """The service stops answering while two handlers run: one finishes and commits
    (the commit waits), the other is still renewing (the renewal waits). Stopped,
    the worker must end about its grace later, not when the service comes back."""
    quiet = Unanswered()

    async def run() -> None:
        with ServerThread("mem://", interceptors=[quiet]) as server:
            async with await AsyncEntroQ.open(server.url) as eq:
                await eq.modify(Modification().insert("frozen", b"quick").insert("frozen", b"slow"))
                started: list[bytes] = []

                async def handle(task: Task) -> None:
                    started.append(task.value)
                    if task.value == b"slow":
                        await asyncio.sleep(3600)  # outlives the grace

                work = Worker(eq, "frozen", handle, lease=2.0, grace=1.0, concurrency=2)
                runner = asyncio.create_task(work.run())
                try:
                    async with asyncio.timeout(WAIT):
                        while len(started) < 2:
                            await asyncio.sleep(0.02)
                    quiet.silent.set()
                    async with asyncio.timeout(WAIT):
                        while quiet.held < 2:  # the commit and a renewal are waiting
                            await asyncio.sleep(0.02)
                    work.stop()
                    # The grace (1 s), then at most a second for the release it tries.
                    done, _ = await asyncio.wait({runner}, timeout=10)
                    assert done, "the worker was still waiting on the silent service"
                finally:
                    quiet.silent.clear()
                    work.stop()
                    await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(run())
