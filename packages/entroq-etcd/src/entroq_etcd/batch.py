"""Group commit: concurrent write Txns of one backend handle sent as one etcd Txn.

etcd spends most of a small Txn's cost on the Txn itself (raft proposal, WAL
write, apply), not on its operations, and each call costs this process a gRPC
round trip. When several claims and modifications of one handle are waiting
(a busy entroq-svc, a worker with concurrency), the ones queued behind the
calls in flight go together as nested Txns of one Txn. Each nested Txn keeps
its own compares and branches, so each request still succeeds or fails on its
own, atomically, exactly as if sent alone; they merely share a revision.

With nothing queued a request goes out at once, alone: batching never adds
latency, it only takes what would otherwise wait (the queueing itself is
entroq_core.coalescing's; this module says what may share a Txn and how).

etcd refuses a whole Txn in which two nested Txns write the same key, so a
batch never holds two requests whose written keys overlap (the later one waits
for the next batch). etcd also evaluates every nested Txn's compares before
applying any of them, so a request whose compares or reads touch a key another
request of the batch writes would be judged on the state before that write:
two modifications that each depend on the task the other deletes would both
commit, which no order of sending them alone allows. Such requests never share
a batch either. If etcd still refuses a batch before applying anything
(INVALID_ARGUMENT: a duplicate key, too many operations, too large), each of
its requests is sent again alone, so batching can never make a request fail
that would have succeeded by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from entroq_core.coalescing import Coalescer, NotSent
from entroq_core.errors import BackendUnavailable, InvalidArgument, MessageTooLarge

from . import ops
from .client import EtcdClient

MAX_IN_FLIGHT = 2  # write Txns of one handle on the wire at once
MAX_BATCH = 16  # requests per batch (etcd's default --max-txn-ops is 128)
MAX_OPS_TO_BATCH = 32  # bigger requests go alone: nested ops count against the limit
MAX_BYTES_TO_BATCH = 64 * 1024


class PendingTxn:
    """A write Txn and, worked out only if it has to wait, what batching needs to know."""

    def __init__(
        self,
        request: ops.TxnRequest,
        writes: frozenset[bytes] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.request = request
        self.deadline = deadline  # event loop time; None: call_timeout from when it is sent
        self._writes = writes  # given only by tests that declare them
        self._reads: frozenset[bytes] | None = None
        self._reads_known = False
        self._size: int | None = None

    @property
    def writes(self) -> frozenset[bytes]:
        if self._writes is None:
            self._writes = ops.written_keys(self.request)
        return self._writes

    @property
    def reads(self) -> frozenset[bytes] | None:
        """Keys its compares and reads look at (None: a range, so not known)."""
        if not self._reads_known:
            self._reads = ops.read_keys(self.request)
            self._reads_known = True
        return self._reads

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self.request.ByteSize()
        return self._size

    @property
    def alone(self) -> bool:
        """Too big to share a Txn, or writes or reads unknown (no overlap check possible)."""
        return (
            self.size > MAX_BYTES_TO_BATCH
            or _op_count(self.request) > MAX_OPS_TO_BATCH
            or not self.writes
            or self.reads is None
        )


class TxnBatcher:
    """Sends write Txns for one backend handle, batching those that would queue."""

    def __init__(self, client: EtcdClient, max_request_bytes: int) -> None:
        self._client = client
        self._max_bytes = max_request_bytes // 2
        self._coalescer: Coalescer[PendingTxn, ops.TxnResponse] = Coalescer(
            self._send_one,
            self._send_many,
            max_in_flight=MAX_IN_FLIGHT,
            max_batch=MAX_BATCH,
            joins=self.may_share,
        )
        self.batches_sent = 0  # Txns that carried more than one request
        self.requests_batched = 0  # requests that went in such Txns

    async def txn(self, request: ops.TxnRequest) -> ops.TxnResponse:
        """Run one write Txn, alone at once or in a batch if it would have to wait.

        Its call_timeout counts from now, time spent queued included: while etcd
        does not answer, writes queued behind others fail by their own deadline,
        never sent, instead of one call_timeout per batch ahead of them.
        """
        timeout = self._client.config.call_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            return await self._coalescer.call(PendingTxn(request, deadline=deadline), deadline)
        except NotSent:
            raise BackendUnavailable(
                f"etcd at {self._client.config.describe()} did not take this write within "
                f"{timeout:g}s (it waited behind others of this handle); it was not sent"
            ) from None

    def may_share(self, batch: Sequence[PendingTxn], candidate: PendingTxn) -> bool:
        """Whether ``candidate`` may join ``batch``'s Txn: no key one of them writes
        is written, compared or read by the other (see the module doc), and the
        Txn stays within etcd's request size."""
        if candidate.alone or batch[0].alone:
            return False
        if sum(p.size for p in batch) + candidate.size > self._max_bytes:
            return False
        return all(_independent(p, candidate) for p in batch)

    async def _send_one(self, pending: PendingTxn) -> ops.TxnResponse:
        return await self._client.txn(pending.request, deadline=pending.deadline)

    async def _send_many(
        self, batch: list[PendingTxn]
    ) -> Sequence[ops.TxnResponse | BaseException]:
        combined = ops.txn(success=[ops.RequestOp(request_txn=p.request) for p in batch])
        # The newest request's deadline: an old one's nearly spent deadline must not
        # cut short (and leave unknown the outcome of) the others' write.
        deadlines = [p.deadline for p in batch]
        deadline = None if None in deadlines else max(d for d in deadlines if d is not None)
        try:
            response = await self._client.txn(combined, deadline=deadline)
        except (InvalidArgument, MessageTooLarge):
            # Refused as a whole before anything was applied: each goes alone.
            return await asyncio.gather(
                *(self._client.txn(p.request, deadline=p.deadline) for p in batch),
                return_exceptions=True,
            )
        self.batches_sent += 1
        self.requests_batched += len(batch)
        parts = []
        for part in response.responses:
            own = part.response_txn
            # Everything in the Txn was written at its one revision.
            own.header.CopyFrom(response.header)
            parts.append(own)
        return parts


def _independent(a: PendingTxn, b: PendingTxn) -> bool:
    """Neither request writes a key the other writes, compares or reads."""
    a_reads, b_reads = a.reads, b.reads
    assert a_reads is not None and b_reads is not None  # requests with unknown reads go alone
    return (
        a.writes.isdisjoint(b.writes)
        and a.writes.isdisjoint(b_reads)
        and b.writes.isdisjoint(a_reads)
    )


def _op_count(request: ops.TxnRequest) -> int:
    return max(len(request.compare), len(request.success), len(request.failure))
