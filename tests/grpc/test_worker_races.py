"""Worker races that need a real network call in between, over a real entroq-svc."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc

from entroq_core import AsyncEntroQ, Modification, Task
from entroq_core.worker import Worker
from scripts.servers.entroq_svc import ServerThread

if TYPE_CHECKING:
    from entroq_svc.inflight import Continuation

MODIFY_DELAY = 0.3  # seconds every Modify takes, as over a slow network
WAIT = 60.0


class SlowModify(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Holds every Modify for MODIFY_DELAY before serving it."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or details.method != "/proto.EntroQ/Modify":
            return handler
        serve = handler.unary_unary

        async def slow(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await asyncio.sleep(MODIFY_DELAY)
            return await serve(request, context)

        return grpc.unary_unary_rpc_method_handler(
            slow,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def test_a_renewal_that_fails_as_the_handler_returns_drops_the_task_not_the_worker() -> None:
    """The lease is renewed at 1 s and the renewal takes 0.3 s; an admin changed the
    task first, so it fails. The handler returns in the middle of it: the worker
    must drop this task (someone else owns it) and go on with the next."""
    done: list[bytes] = []

    async def run() -> None:
        with ServerThread("mem://", interceptors=[SlowModify()]) as server:
            admin = await AsyncEntroQ.open(server.url)
            async with await AsyncEntroQ.open(server.url) as eq:
                await admin.modify(Modification().insert("race", b"first"))

                async def handle(task: Task) -> None:
                    if task.value == b"first":
                        # What `entroq mod --force` does: act for the holder.
                        moved = Modification().change(task, queue="race/held")
                        await admin.modify(moved, claimant=task.claimant)
                        await asyncio.sleep(1.15 - MODIFY_DELAY)  # returns mid-renewal
                    done.append(task.value)

                work = Worker(eq, "race", handle, lease=2.0, poll=0.5)
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
                    work.stop()
                    await asyncio.gather(runner, return_exceptions=True)
                    await admin.aclose()

    asyncio.run(run())
