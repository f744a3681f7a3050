"""Group commit: concurrent write Txns of one backend handle sent as one etcd Txn.

etcd spends most of a small Txn's cost on the Txn itself (raft proposal, WAL
write, apply), not on its operations, and each call costs this process a gRPC
round trip. When several claims and modifications of one handle are waiting
(a busy entroq-svc, a worker with concurrency), the ones queued behind the
calls in flight go together as nested Txns of one Txn. Each nested Txn keeps
its own compares and branches, so each request still succeeds or fails on its
own, atomically, exactly as if sent alone; they merely share a revision.

With nothing queued a request goes out at once, alone: batching never adds
latency, it only takes what would otherwise wait.

etcd refuses a whole Txn in which two nested Txns write the same key, so a
batch never holds two requests whose written keys overlap (the later one waits
for the next batch). If etcd still refuses a batch before applying anything
(INVALID_ARGUMENT: a duplicate key, too many operations, too large), each of
its requests is sent again alone, so batching can never make a request fail
that would have succeeded by itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass

from entroq_core.errors import InvalidArgument, MessageTooLarge

from . import ops
from .client import EtcdClient

MAX_IN_FLIGHT = 2  # write Txns of one handle on the wire at once
MAX_BATCH = 16  # requests per batch (etcd's default --max-txn-ops is 128)
MAX_OPS_TO_BATCH = 32  # bigger requests go alone: nested ops count against the limit
MAX_BYTES_TO_BATCH = 64 * 1024


@dataclass
class _Waiting:
    request: ops.TxnRequest
    writes: frozenset[bytes]
    result: asyncio.Future[ops.TxnResponse]
    size: int
    alone: bool  # too big to share a Txn


class TxnBatcher:
    """Sends write Txns for one backend handle, batching those that would queue."""

    def __init__(self, client: EtcdClient, max_request_bytes: int) -> None:
        self._client = client
        self._max_bytes = max_request_bytes // 2
        self._queue: deque[_Waiting] = deque()
        self._in_flight = 0
        self._senders: set[asyncio.Task[None]] = set()
        self.batches_sent = 0  # Txns that carried more than one request
        self.requests_batched = 0  # requests that went in such Txns

    async def txn(self, request: ops.TxnRequest) -> ops.TxnResponse:
        """Run one write Txn, alone at once or in a batch if it would have to wait."""
        if self._in_flight < MAX_IN_FLIGHT and not self._queue:
            self._in_flight += 1
            try:
                return await self._client.txn(request)
            finally:
                self._in_flight -= 1
                self._dispatch()
        # Only a request that waits is examined: one sent at once costs nothing extra.
        writes = ops.written_keys(request)
        size = request.ByteSize()
        alone = size > MAX_BYTES_TO_BATCH or _op_count(request) > MAX_OPS_TO_BATCH
        alone = alone or not writes  # unknown writes: cannot be checked for overlaps
        future: asyncio.Future[ops.TxnResponse] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(request, writes, future, size, alone))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._in_flight < MAX_IN_FLIGHT and self._queue:
            batch = self._take_batch()
            if not batch:
                return
            self._in_flight += 1
            sender = asyncio.get_running_loop().create_task(self._send(batch))
            self._senders.add(sender)  # the loop keeps only weak references to tasks
            sender.add_done_callback(self._senders.discard)

    def _take_batch(self) -> list[_Waiting]:
        """Take queued requests, in order, that may share one Txn."""
        batch: list[_Waiting] = []
        written: set[bytes] = set()
        size = 0
        kept: deque[_Waiting] = deque()
        for waiting in self._queue:
            if waiting.result.done():
                continue  # its caller was cancelled before it was sent: drop it
            if not batch:
                fits = True
            else:
                fits = (
                    not waiting.alone
                    and not batch[0].alone
                    and len(batch) < MAX_BATCH
                    and size + waiting.size <= self._max_bytes
                    and written.isdisjoint(waiting.writes)
                )
            if fits:
                batch.append(waiting)
                written |= waiting.writes
                size += waiting.size
            else:
                kept.append(waiting)
        self._queue = kept
        return batch

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            if len(batch) == 1:
                await _settle(batch[0], self._client.txn(batch[0].request))
                return
            combined = ops.txn(success=[ops.RequestOp(request_txn=w.request) for w in batch])
            try:
                response = await self._client.txn(combined)
            except (InvalidArgument, MessageTooLarge):
                # Refused as a whole before anything was applied: each goes alone.
                await asyncio.gather(*(_settle(w, self._client.txn(w.request)) for w in batch))
                return
            self.batches_sent += 1
            self.requests_batched += len(batch)
            for w, part in zip(batch, response.responses, strict=True):
                own = part.response_txn
                # Everything in the Txn was written at its one revision.
                own.header.CopyFrom(response.header)
                if not w.result.done():
                    w.result.set_result(own)
        except BaseException as exc:  # every caller hears of it (those already told are skipped)
            for w in batch:
                _fail(w, exc)
            if not isinstance(exc, Exception):
                raise  # this sender was cancelled: let it end cancelled
        finally:
            self._in_flight -= 1
            self._dispatch()


async def _settle(waiting: _Waiting, call: Awaitable[ops.TxnResponse]) -> None:
    """Await a Txn and hand its outcome to the waiting caller."""
    try:
        response = await call
    except BaseException as exc:
        _fail(waiting, exc)
        if not isinstance(exc, Exception):
            raise
        return
    if not waiting.result.done():
        waiting.result.set_result(response)


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if waiting.result.done():
        return
    if isinstance(exc, Exception):
        waiting.result.set_exception(exc)
    else:
        waiting.result.cancel()  # the sender itself was cancelled (loop shutting down)


def _op_count(request: ops.TxnRequest) -> int:
    return max(len(request.compare), len(request.success), len(request.failure))
