"""Counting the EntroQ calls a server has taken on, from their start to their end.

At shutdown a grpc.aio server hands no more calls to the service, yet it holds
the ones that arrived as the shutdown began until its grace runs out, though it
will never serve them. This counter tells those apart from the calls the service
took on: it counts a call from the moment grpc hands it over (as the first
interceptor, so before any other interceptor runs and before the request is
read) until grpc reports the call over (after the response is sent). A call it
cannot see end is never uncounted, so the worst a miss can do is let a stop
wait out its grace, as it did before this counter.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:  # the stubs' generic types do not exist at run time
    Continuation = Callable[
        [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
    ]


class InFlightCalls(grpc.aio.ServerInterceptor):
    """Counts the calls of one service (``/SERVICE/...`` methods) in flight."""

    def __init__(self, service: str) -> None:
        self._prefix = f"/{service}/"
        self._count = 0
        self._none = asyncio.Event()
        self._none.set()

    @property
    def count(self) -> int:
        """Calls of the service handed over and not yet over."""
        return self._count

    async def none_in_flight(self) -> None:
        """Return once no call of the service is in flight."""
        await self._none.wait()

    def _start(self) -> None:
        self._count += 1
        self._none.clear()

    def _end(self) -> None:
        self._count -= 1
        if not self._count:
            self._none.set()

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if not details.method.startswith(self._prefix):
            return await continuation(details)
        self._start()
        try:
            handler = await continuation(details)
        except BaseException:
            self._end()
            raise
        if handler is None:
            self._end()
            return None
        return _ending_with(handler, self._end)


def _ending_with(
    handler: grpc.RpcMethodHandler[Any, Any], on_end: Callable[[], None]
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with ``on_end`` called once its call is over.

    Every ``proto.EntroQ`` method takes one request message, answered with one
    message or a stream (yielded, or written with ``context.write``); a handler
    of any other kind is returned as it is and uncounted at once. The behaviours
    of a grpc.aio handler are coroutines or async generators; the type stubs
    describe the synchronous API, hence ``Any``.
    """
    original: Any = handler

    def watch(context: Any) -> None:
        context.add_done_callback(lambda _: on_end())

    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if original.unary_unary is not None:

        async def unary(request: Any, context: Any) -> Any:
            watch(context)
            return await original.unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, **options)
    if original.unary_stream is not None and inspect.isasyncgenfunction(original.unary_stream):

        async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
            watch(context)
            async for message in original.unary_stream(request, context):
                yield message

        return grpc.unary_stream_rpc_method_handler(streaming, **options)
    if original.unary_stream is not None:  # writes its messages with context.write

        async def writing(request: Any, context: Any) -> None:
            watch(context)
            await original.unary_stream(request, context)

        return grpc.unary_stream_rpc_method_handler(writing, **options)
    on_end()
    return handler
