"""Group commit for backends: calls that would have to wait go out together.

A backend handle shared by many concurrent callers (a worker with concurrency,
an entroq-svc serving many clients) pays a round trip and a commit per call. A
:class:`Coalescer` lets a few calls run at once; calls that arrive while those
are in flight queue up, and the queue goes out as one batch when a slot frees.
With a slot free and nothing queued a call is sent at once and alone; a call
that arrives while every slot is busy waits for the first to free, then goes
with everything else that waited. Fewer slots make bigger batches and fewer
round trips and commits; more slots, less waiting.

What may share a batch, and how a batch is sent, is the backend's business:
``send_many`` must give each item the result it would have had alone (each
succeeds or fails on its own; an exception in its list goes to that item's
caller alone, an exception it raises to every caller in the batch), and
``joins`` keeps apart items that must not share a batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def _always(batch: Sequence[object], item: object) -> bool:
    return True


class NotSent(TimeoutError):
    """A call's deadline passed while it was still queued: it was never sent."""


@dataclass
class _Waiting(Generic[ItemT, ResultT]):
    item: ItemT
    result: asyncio.Future[ResultT]
    sent: bool = False


class Coalescer(Generic[ItemT, ResultT]):
    """Runs calls at most ``max_in_flight`` at a time, batching those that queue."""

    def __init__(
        self,
        send_one: Callable[[ItemT], Awaitable[ResultT]],
        send_many: Callable[[list[ItemT]], Awaitable[Sequence[ResultT | BaseException]]],
        *,
        max_in_flight: int = 2,
        max_batch: int = 16,
        joins: Callable[[Sequence[ItemT], ItemT], bool] = _always,
    ) -> None:
        self._send_one = send_one
        self._send_many = send_many
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._joins = joins
        self._queue: deque[_Waiting[ItemT, ResultT]] = deque()
        self._in_flight = 0
        self._senders: set[asyncio.Task[None]] = set()
        self.batches_sent = 0  # sends that carried more than one item
        self.items_batched = 0  # items that went in such sends

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing queued."""
        return self._in_flight == 0 and not self._queue

    async def call(self, item: ItemT, queued_until: float | None = None) -> ResultT:
        """Send ``item`` now if a slot is free and nobody queues, else with the queue.

        ``queued_until`` (event loop time) bounds the wait in the queue: past it an
        item not yet sent is dropped and NotSent raised, so callers behind a
        stalled store fail by their deadline rather than one send timeout per
        batch ahead of them. Once sent, the send's own deadline applies.
        """
        if self._in_flight < self._max_in_flight and not self._queue:
            self._in_flight += 1
            try:
                return await self._send_one(item)
            finally:
                self._in_flight -= 1
                self._dispatch()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        waiting = _Waiting(item, future)
        self._queue.append(waiting)
        self._dispatch()
        if queued_until is not None and not future.done():
            try:
                await asyncio.wait((future,), timeout=max(0.0, queued_until - loop.time()))
            except asyncio.CancelledError:
                future.cancel()  # dropped from the queue if not sent yet
                raise
            if not future.done() and not waiting.sent:
                future.cancel()
                raise NotSent("still queued behind other calls at its deadline")
        return await future

    def _dispatch(self) -> None:
        while self._in_flight < self._max_in_flight and self._queue:
            batch = self._take_batch()
            if not batch:
                return
            self._in_flight += 1
            sender = asyncio.get_running_loop().create_task(self._send(batch))
            self._senders.add(sender)  # the loop keeps only weak references to tasks
            sender.add_done_callback(self._senders.discard)

    def _take_batch(self) -> list[_Waiting[ItemT, ResultT]]:
        """Take queued items, in order, that may share one send."""
        batch: list[_Waiting[ItemT, ResultT]] = []
        items: list[ItemT] = []
        kept: deque[_Waiting[ItemT, ResultT]] = deque()
        for waiting in self._queue:
            if waiting.result.done():
                continue  # its caller was cancelled before it was sent: drop it
            if not batch or (len(batch) < self._max_batch and self._joins(items, waiting.item)):
                waiting.sent = True
                batch.append(waiting)
                items.append(waiting.item)
            else:
                kept.append(waiting)
        self._queue = kept
        return batch

    async def _send(self, batch: list[_Waiting[ItemT, ResultT]]) -> None:
        try:
            if len(batch) == 1:
                results: Sequence[ResultT | BaseException] = [await self._send_one(batch[0].item)]
            else:
                results = await self._send_many([w.item for w in batch])
                self.batches_sent += 1
                self.items_batched += len(batch)
            for waiting, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    _fail(waiting.result, result)
                elif not waiting.result.done():
                    waiting.result.set_result(result)
        except BaseException as exc:  # every caller hears of it (those already told are skipped)
            for waiting in batch:
                _fail(waiting.result, exc)
            if not isinstance(exc, Exception):
                raise  # this sender was cancelled: let it end cancelled
        finally:
            self._in_flight -= 1
            self._dispatch()


def _fail(result: asyncio.Future[ResultT], exc: BaseException) -> None:
    if result.done():
        return
    if isinstance(exc, Exception):
        result.set_exception(exc)
    else:
        result.cancel()  # the sender itself was cancelled (loop shutting down)
