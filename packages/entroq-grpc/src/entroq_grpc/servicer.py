"""The ``proto.EntroQ`` service over any entroq_core Backend, for a grpc.aio server.

Requests are decoded with non-raising deserializers and validated by building
core request objects, so bad input of any kind ends as INVALID_ARGUMENT (or
RESOURCE_EXHAUSTED), and every other exception is mapped by ``status`` rather
than escaping as UNKNOWN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from entroq_core.backend import Backend
from entroq_core.claiming import DEFAULT_POLL_SECONDS
from entroq_core.errors import BackendUnavailable, DeadlineExceeded
from entroq_core.requests import MAX_VALUE_BYTES, ClaimRequest
from entroq_core.types import ModifyResult, Task

from . import convert
from .status import Failure, failure_for

log = logging.getLogger("entroq_grpc.servicer")

# A server-side Claim gives up this long before the call's deadline, so the client
# hears a clean DEADLINE_EXCEEDED from us instead of racing a claim against it.
CLAIM_DEADLINE_MARGIN = 0.05

# StreamTasks flushes a message at whichever limit comes first.
STREAM_CHUNK_TASKS = 500
STREAM_CHUNK_BYTES = 1024 * 1024

Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]


class EntroQServicer:
    """Serves ``proto.EntroQ`` from one backend.

    Example::

        servicer = EntroQServicer(await entroq_core.connect("mem://"))
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((servicer.handler(),))
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_value_bytes: int = MAX_VALUE_BYTES,
        stream_chunk_tasks: int = STREAM_CHUNK_TASKS,
        stream_chunk_bytes: int = STREAM_CHUNK_BYTES,
        on_backend: Callable[[bool], None] | None = None,
    ) -> None:
        """``on_backend`` hears, after each call, whether the backend answered it
        (True: the call succeeded) or was unavailable (False); entroq-svc's health
        follows it."""
        self._backend = backend
        self._on_backend = on_backend
        self._max_value_bytes = max_value_bytes
        self._chunk_tasks = max(1, stream_chunk_tasks)
        self._chunk_bytes = max(1, stream_chunk_bytes)
        self._draining = False
        self._waiting: set[asyncio.Future[Task]] = set()

    @property
    def backend(self) -> Backend:
        """The backend being served."""
        return self._backend

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` was called."""
        return self._draining

    @property
    def waiting_claims(self) -> int:
        """How many Claim calls are waiting for a task right now."""
        return len(self._waiting)

    def drain(self) -> int:
        """Refuse new Claims and end waiting ones with UNAVAILABLE; return how many were waiting.

        Other RPCs keep running, so in-flight Modify calls finish during shutdown.
        """
        self._draining = True
        waiting = list(self._waiting)
        for fut in waiting:
            fut.cancel()
        return len(waiting)

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler to add to a ``grpc.aio`` server."""
        unary: dict[str, Handler] = {
            "TryClaim": self._try_claim,
            "Claim": self._claim,
            "Modify": self._modify,
            "Tasks": self._tasks,
            "Queues": self._queues,
            "QueueStats": self._queue_stats,
            "Time": self._time,
        }
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for name, method in convert.METHODS.items():
            if method.server_streaming:
                handlers[name] = grpc.unary_stream_rpc_method_handler(
                    self._guard_stream(name, self._stream_tasks),
                    request_deserializer=method.parse_request,
                    response_serializer=method.serialize,
                )
            else:
                handlers[name] = grpc.unary_unary_rpc_method_handler(
                    self._guard(name, unary[name]),
                    request_deserializer=method.parse_request,
                    response_serializer=method.serialize,
                )
        return grpc.method_handlers_generic_handler(convert.SERVICE_NAME, handlers)

    # --- error shaping ---------------------------------------------------

    def _failure(self, name: str, exc: Exception) -> Failure:
        if self._on_backend is not None and isinstance(exc, BackendUnavailable):
            self._on_backend(False)
        failure = failure_for(exc, name)
        if not failure.expected:
            log.error("unexpected error in %s", name, exc_info=exc)
        return failure

    def _guard(self, name: str, fn: Handler) -> Handler:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
            try:
                if isinstance(request, convert.Undecodable):
                    raise request.invalid()
                response = await fn(request, context)
                if self._on_backend is not None:
                    self._on_backend(True)
                return response
            except Exception as exc:  # every exception becomes a proper status
                failure = self._failure(name, exc)
            # abort() raises; it must run outside the try so it is not caught above.
            await context.abort(failure.code, failure.details, failure.trailing_metadata)
            raise AssertionError("unreachable: abort returned")

        handle.__name__ = name
        return handle

    def _guard_stream(
        self,
        name: str,
        fn: Callable[[Any], AsyncIterator[Message]],
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]:
        # Messages go out with context.write rather than by yielding: a client that
        # cancels while a send waits on flow control fails the write, and grpc
        # logged each such failure of a yielded message as an error with a traceback.
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            try:
                if isinstance(request, convert.Undecodable):
                    raise request.invalid()
                async for message in fn(request):
                    try:
                        await context.write(message)
                    except Exception as exc:
                        # Only a call that is over refuses a write (cancelled, or
                        # the client gone): there is no one left to tell.
                        log.debug("%s ended by the client mid-stream: %r", name, exc)
                        return
                return
            except Exception as exc:  # every exception becomes a proper status
                failure = self._failure(name, exc)
            await context.abort(failure.code, failure.details, failure.trailing_metadata)

        handle.__name__ = name
        return handle

    # --- RPCs ------------------------------------------------------------

    async def _try_claim(self, msg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        request, _ = convert.claim_from_pb(msg)
        return convert.claim_response(await self._backend.try_claim(request))

    async def _claim(self, msg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        request, poll = convert.claim_from_pb(msg)
        if self._draining:
            raise BackendUnavailable("server is shutting down; claim elsewhere or retry")
        # Most claims find a task at once; only a real wait pays for a cancellable future.
        task = await self._backend.try_claim(request)
        if task is None:
            task = await self._wait_for_task(request, poll, context.time_remaining())
        return convert.claim_response(task)

    async def _wait_for_task(
        self, request: ClaimRequest, poll: float | None, remaining: float | None
    ) -> Task:
        if self._draining:
            # drain() ran while this claim's first try was in flight, before the
            # wait below existed for it to cancel: without this check the claim
            # would wait until the server's grace ran out and end CANCELLED.
            raise BackendUnavailable("server is shutting down; retry the claim")
        waiting = asyncio.ensure_future(
            self._claim_within(request, poll or DEFAULT_POLL_SECONDS, remaining)
        )
        self._waiting.add(waiting)
        try:
            return await waiting
        except asyncio.CancelledError:
            current = asyncio.current_task()
            # Cancelled by drain(), not by the client: tell the client to go elsewhere.
            if self._draining and waiting.cancelled() and not (current and current.cancelling()):
                raise BackendUnavailable("server is shutting down; retry the claim") from None
            raise
        finally:
            self._waiting.discard(waiting)

    async def _claim_within(
        self, request: ClaimRequest, poll: float, remaining: float | None
    ) -> Task:
        if remaining is None:
            return await self._backend.claim(request, poll)
        limit = max(remaining - CLAIM_DEADLINE_MARGIN, 0.0)
        try:
            async with asyncio.timeout(limit):
                return await self._backend.claim(request, poll)
        except TimeoutError:
            raise DeadlineExceeded(
                f"no task in {list(request.queues)} before the call's deadline"
            ) from None

    async def _modify(self, msg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        request = convert.modify_from_pb(msg, self._max_value_bytes)
        if request.is_empty():
            return convert.result_to_pb(ModifyResult())
        return convert.result_to_pb(await self._backend.modify(request))

    async def _tasks(self, msg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        request = convert.tasks_from_pb(msg)
        encoded = []
        stream = self._backend.tasks(request)
        async with _closing(stream):
            async for task in stream:
                encoded.append(convert.task_to_pb(task))
        return convert.tasks_response(encoded)

    async def _stream_tasks(self, msg: Any) -> AsyncIterator[Message]:
        request = convert.tasks_from_pb(msg)
        chunk: list[Any] = []
        size = 0
        stream = self._backend.tasks(request)
        async with _closing(stream):
            async for task in stream:
                chunk.append(convert.task_to_pb(task))
                size += convert.task_wire_size(task)
                if len(chunk) >= self._chunk_tasks or size >= self._chunk_bytes:
                    yield convert.tasks_response(chunk)
                    chunk, size = [], 0
        if chunk:
            yield convert.tasks_response(chunk)

    async def _queues(self, msg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        stats = await self._backend.queue_stats(convert.queues_from_pb(msg))
        return convert.stats_response(stats.values(), names_only=True)

    async def _queue_stats(self, msg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        stats = await self._backend.queue_stats(convert.queues_from_pb(msg))
        return convert.stats_response(stats.values())

    async def _time(self, msg: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        return convert.time_to_pb(await self._backend.time())


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[Task]) -> AsyncIterator[None]:
    """Close a backend's task iterator even when the client stops reading early."""
    try:
        yield
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
