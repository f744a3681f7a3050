"""The etcd backend, ``etcd://host:port[,host:port...]``.

The key layout is in ``keys``, the Txn of a modification in ``plan``, the claim
window in ``window``, wake-ups in ``watch`` and the wire in ``client``. The
clock is this process's (SPEC section 1), as etcd has no clock of its own to
offer; hosts sharing a cluster should run NTP.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from entroq_core.claiming import claim_until_found
from entroq_core.errors import (
    BackendUnavailable,
    EntroQError,
    MessageTooLarge,
    RetryableConflict,
)
from entroq_core.ids import new_task_id
from entroq_core.requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from entroq_core.timeutil import from_ms, now_ms
from entroq_core.types import ModifyResult, QueueStats, Task
from entroq_core.wakeups import QueueWakeups

from . import config as config_mod
from . import ops
from .batch import TxnBatcher
from .client import EtcdClient, HistoryCompacted
from .config import EtcdConfig
from .keys import HASH_SPACE, QUEUE_MARK, KeyLayout
from .plan import Current, Insert, Plan, build, claim_ops, current_from, diagnose
from .record import Record, decode
from .watch import QueueWatcher
from .window import TARGET, WindowSizer

log = logging.getLogger("entroq.etcd")

_CLAIM_ROUNDS = 20  # candidate reads per try_claim before reporting a conflict
_CLAIM_TRIES_PER_READ = 3  # candidates tried from one read
_CANDIDATES = 12  # ready keys returned per window read (the window holds ~TARGET)
_SPARE_MS = 1000  # how long unused candidates of a read are worth trying
_MAX_SPARES = 4 * _CANDIDATES  # unused candidates kept per queue
_CLOCK_SKEW_MS = 60_000  # clock differences between writers this backend tolerates
_MAX_TRACKED_QUEUES = 4096
_MODIFY_ATTEMPTS = 8
_PROMOTE_AT = 2 * TARGET  # due future-index keys before a claim promotes them
_CACHE_SIZE = 10_000
_PAGE = 1000  # keys per listing read
_READ_OPS = 100  # ranges per read Txn (etcd's default --max-txn-ops is 128)
_SIZE_MARGIN = 1024  # etcd wraps a Txn in a slightly larger raft request
# What a value must leave of etcd's request limit for the keys and records
# written around it. A change of a task writes more keys than its insert did (it
# deletes the old index and stats keys and reads the task back on failure: up to
# about 15 KiB with 1,024-byte queue names), so a value sized to just fit an
# insert could never be renewed or moved on; with this headroom it always can.
_VALUE_HEADROOM = 32 * 1024


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(0.1, 0.002 * 2**attempt))


class EtcdBackend:
    """EntroQ over etcd v3: one Txn per claim and per modification."""

    def __init__(self, config: EtcdConfig, client: EtcdClient) -> None:
        self.config = config
        self._client = client
        self._keys = KeyLayout(config.prefix)
        self._wakeups = QueueWakeups()
        self._watcher = QueueWatcher(client, self._keys, self._wakeups)
        self._batcher = TxnBatcher(client, config.max_request_bytes)
        self._sizer = WindowSizer()
        self._rand = random.Random()
        # Records this handle wrote or read, with their mod_revision: a modify of a
        # task just claimed needs no read first. A stale entry only fails a compare.
        self._cache: OrderedDict[str, Current] = OrderedDict()
        # Unused candidates of the last read per queue: (expiry ms, index entries).
        self._spares: dict[str, tuple[int, list[ops.KeyValue]]] = {}
        # Per queue, the arrival time below which no due key can be (see _raise_due_floor).
        self._due_floor: dict[str, int] = {}
        self.stale_reads = 0  # candidate reads repeated linearizably (see _read)
        self._closed = False

    # --- claims -------------------------------------------------------------------

    async def try_claim(self, request: ClaimRequest) -> Task | None:
        """Claim a random available task from the listed queues, or return None."""
        self._check_open()
        queues = list(request.queues)
        self._rand.shuffle(queues)
        for round_ in range(_CLAIM_ROUNDS):
            task = await self._claim_spare(request, queues[0])
            if task is not None:
                return task
            now = now_ms()
            found_any = False
            for chunk in _chunks(queues, _READ_OPS // 3):
                candidates = await self._candidates(chunk, now)
                for queue in chunk:
                    kvs = candidates[queue]
                    if not kvs:
                        continue
                    due, window = kvs
                    pool = due + window
                    self._rand.shuffle(pool)
                    tried = 0
                    while pool:
                        kv = pool.pop()
                        old = self._ours(queue, kv)
                        if old is None:
                            continue  # someone else's key: skipped, never touched
                        found_any = True
                        task = await self._claim_one(request, kv, old, now)
                        if task is not None:
                            if len(due) >= _PROMOTE_AT:
                                await self._promote(queue, [d for d in due if d is not kv])
                            elif pool:
                                self._keep_spares(queue, pool)
                            return task
                        tried += 1
                        if tried >= _CLAIM_TRIES_PER_READ:
                            break
                        now = now_ms()
            if not found_any:
                return None
            await asyncio.sleep(_backoff(round_))
        raise RetryableConflict(
            f"claim from {list(request.queues)} lost {_CLAIM_ROUNDS} races in a row"
        )

    async def _claim_spare(self, request: ClaimRequest, queue: str) -> Task | None:
        """Try candidates left over from this handle's last read of ``queue``.

        A read returns several candidates and a claim takes one: the rest usually
        stay available for a while, and trying one costs no read. A spare that
        another claimer took fails its compare, and then the queue's spares go.

        ``try_claim`` passes only the first queue of its random order. A read after
        a miss tries the queues in that same order, so either way the queue
        chosen is the first one in a fresh random order that has a task, and a
        queue's chance does not depend on whether this handle holds spares of
        it. (Trying any queue with spares first favoured the queues read last:
        145 of 200 claims from one of two equal queues, in runs.)
        """
        entry = self._spares.get(queue)
        if entry is None:
            return None
        expires, pool = entry
        now = now_ms()
        while pool and now < expires:
            kv = pool.pop()
            old = self._ours(queue, kv)
            if old is None:
                continue
            task = await self._claim_one(request, kv, old, now)
            if task is not None:
                if not pool:
                    self._drop_spares(queue, pool)
                return task
            break
        self._drop_spares(queue, pool)
        return None

    def _keep_spares(self, queue: str, pool: list[ops.KeyValue]) -> None:
        """Keep a read's unused candidates, adding them to spares still held.

        Claims that share a handle run out of spares together and read
        together; each read's leftovers replacing the last one's threw most of
        them away (0.3 reads per claim with 8 claimers on one handle). The
        newest candidates are tried first; a stale one fails its compare and
        then all go.
        """
        now = now_ms()
        entry = self._spares.get(queue)
        if entry is not None and now < entry[0]:
            held = entry[1]
            known = {kv.key for kv in held}
            held.extend(kv for kv in pool if kv.key not in known)
            del held[:-_MAX_SPARES]
            pool = held
        self._spares.pop(queue, None)  # re-inserted last: the dict is in expiry order
        self._spares[queue] = (now + _SPARE_MS, pool)
        # Spares of queues this handle claimed from once and never again would stay
        # forever: drop the expired ones first in line, and the oldest beyond a limit.
        while True:
            oldest = next(iter(self._spares))
            if self._spares[oldest][0] > now and len(self._spares) <= _MAX_TRACKED_QUEUES:
                break
            del self._spares[oldest]

    def _drop_spares(self, queue: str, pool: list[ops.KeyValue]) -> None:
        """Forget ``queue``'s spares if ``pool`` is still what is held (another
        claim may have stored newer ones meanwhile)."""
        entry = self._spares.get(queue)
        if entry is not None and entry[1] is pool:
            del self._spares[queue]

    async def _candidates(
        self, queues: list[str], now: int
    ) -> dict[str, tuple[list[ops.KeyValue], list[ops.KeyValue]] | None]:
        """Read due and ready candidates of each queue in one read Txn."""
        reads: list[ops.RequestOp] = []
        layout: list[tuple[str, int, int]] = []  # queue, width, number of window pieces
        for queue in queues:
            start, width = self._sizer.window(queue)
            pieces = self._keys.ready_window(queue, start, width)
            due_start, due_end = self._keys.due_range(queue, now, self._due_floor.get(queue, 0))
            # Due keys are the oldest first: read more of them, so a backlog is seen
            # (and promoted) while a random pick still spreads competing claimers.
            reads.append(ops.ranged(ops.scan(due_start, due_end, limit=TARGET, serializable=True)))
            for lo, hi in pieces:
                reads.append(ops.ranged(ops.scan(lo, hi, limit=_CANDIDATES, serializable=True)))
            layout.append((queue, width, len(pieces)))
        results = ops.range_results(await self._read(ops.txn(success=reads), queues))
        out: dict[str, tuple[list[ops.KeyValue], list[ops.KeyValue]] | None] = {}
        pos = 0
        for queue, width, n in layout:
            due_resp = results[pos]
            window_resps = results[pos + 1 : pos + 1 + n]
            pos += 1 + n
            count = sum(r.count for r in window_resps)
            self._sizer.observe(queue, width, count)
            window = [kv for r in window_resps for kv in r.kvs]
            # Due entries are few and may include foreign keys that cannot be claimed.
            due = [kv for kv in due_resp.kvs if self._ours(queue, kv) is not None]
            self._raise_due_floor(queue, due_resp.kvs, now)
            if not window and not due and width < HASH_SPACE:
                # An empty sample of a queue that may have shrunk: look at all of it.
                pieces = self._keys.ready_window(
                    queue, self._rand.randrange(HASH_SPACE), HASH_SPACE
                )
                reads = [
                    ops.ranged(ops.scan(lo, hi, limit=_CANDIDATES, serializable=True))
                    for lo, hi in pieces
                ]
                full = ops.range_results(await self._read(ops.txn(success=reads), [queue]))
                self._sizer.observe(queue, HASH_SPACE, sum(r.count for r in full))
                window = [kv for r in full for kv in r.kvs]
            out[queue] = (due, window) if (due or window) else None
        return out

    async def _read(self, request: ops.TxnRequest, queues: list[str]) -> ops.TxnResponse:
        """Serializable candidate reads, repeated through consensus when they are older
        than a put this handle's watch already saw on ``queues``.

        Serializable reads cost etcd no consensus round, but one issued right after
        a wake-up can miss the task it was for (see QueueWatcher.newest_put), and
        the waiter then sleeps until its poll: under CPU load about 1 run in 12 of
        32 claims on one handle. The newest put is taken before the read, so a
        write that lands during the read does not count as missed.
        """
        seen = self._watcher.newest_put(queues)
        response = await self._client.txn(request, read_only=True)
        if response.header.revision < seen:
            self.stale_reads += 1
            response = await self._client.txn(ops.linearizable(request), read_only=True)
        return response

    def _raise_due_floor(self, queue: str, due: Iterable[ops.KeyValue], now: int) -> None:
        """Remember where this queue's due keys start, so later reads skip what is below.

        etcd keeps deleted keys (tombstones) in its index until the history is
        compacted, and a range visits them all. Every lease leaves a future-index
        key behind when its task is done, so a due range read from the start of
        the queue would visit the whole uncompacted history. Keys written later
        have ``at`` after their writer's now, so the oldest live due key (or now)
        less a margin for clock skew between writers bounds every due key to come.
        """
        oldest = now
        for kv in due:
            at = self._keys.parse_future_at(kv.key)
            if at is not None:
                oldest = min(oldest, at)
                break  # ranges are in key order: the first is the oldest
        if len(self._due_floor) >= _MAX_TRACKED_QUEUES and queue not in self._due_floor:
            self._due_floor.pop(next(iter(self._due_floor)))
        self._due_floor[queue] = max(0, oldest - _CLOCK_SKEW_MS)

    def _ours(self, queue: str, kv: ops.KeyValue) -> Record | None:
        """The record of an index entry this backend wrote, or None for anything else."""
        parsed = self._keys.parse_index(kv.key)
        record = decode(kv.value)
        if parsed and record and record.id == parsed.task_id and record.queue == queue:
            return record
        return None

    async def _claim_one(
        self, request: ClaimRequest, kv: ops.KeyValue, old: Record, now: int
    ) -> Task | None:
        new = old.claimed(request.claimant, now, request.duration_ms)
        success = claim_ops(self._keys, kv.key, old, new)
        success.append(ops.get(self._keys.value(old.id)))
        response = await self._write(ops.txn([ops.mod_is(kv.key, kv.mod_revision)], success))
        if not response.succeeded:
            return None
        self._remember(new, response.header.revision)
        values = ops.range_results(response)
        value = values[0].kvs[0].value if values and values[0].kvs else b""
        return new.to_task(value)

    async def _write(self, request: ops.TxnRequest) -> ops.TxnResponse:
        """A claim's or a modification's Txn, batched with others queued on this handle."""
        if not self.config.batch_writes:
            return await self._client.txn(request)
        return await self._batcher.txn(request)

    @property
    def batcher(self) -> TxnBatcher:
        """The write batcher (its counters show how much batching happened)."""
        return self._batcher

    async def _promote(self, queue: str, due: list[ops.KeyValue]) -> None:
        """Move due future-index keys to the ready index so claims read short ranges."""
        moves = []
        for kv in due:
            parsed = self._keys.parse_index(kv.key)
            if parsed is None or parsed.ready:
                continue
            moves.append(
                ops.nested(
                    [ops.mod_is(kv.key, kv.mod_revision)],
                    [
                        ops.delete(kv.key),
                        ops.put(self._keys.ready(queue, parsed.task_id), kv.value),
                    ],
                )
            )
        if not moves:
            return
        try:
            await self._client.txn(ops.txn(success=moves))
        except BackendUnavailable as exc:
            log.info("promoting due tasks of %r failed, will retry later: %s", queue, exc)

    async def claim(self, request: ClaimRequest, poll: float) -> Task:
        """Claim a task, waking on etcd Watch events and at the next known arrival."""
        self._check_open()
        async with self._watcher.watching(request.queues, self.config.call_timeout):
            return await claim_until_found(
                request, self.try_claim, self._wakeups, poll, self._seconds_to_next_arrival
            )

    async def _seconds_to_next_arrival(self, queues: tuple[str, ...]) -> float | None:
        now = now_ms()
        soonest: int | None = None
        for chunk in _chunks(list(queues), _READ_OPS):
            reads = []
            for queue in chunk:
                start, end = self._keys.not_due_range(queue, now)
                reads.append(
                    ops.ranged(ops.scan(start, end, limit=1, keys_only=True, serializable=True))
                )
            results = ops.range_results(
                await self._client.txn(ops.txn(success=reads), read_only=True)
            )
            for result in results:
                for kv in result.kvs:
                    at = self._keys.parse_future_at(kv.key)
                    if at is not None and (soonest is None or at < soonest):
                        soonest = at
        if soonest is None:
            return None
        return max(0, soonest - now_ms()) / 1000

    # --- modify ---------------------------------------------------------------------

    async def modify(self, request: ModifyRequest) -> ModifyResult:
        """Apply the modification in one etcd Txn or raise DependencyError."""
        self._check_open()
        if request.is_empty():
            return ModifyResult()
        self._check_sizes(request)
        inserts = [
            Insert(i, data, data.id or new_task_id(), bool(data.id))
            for i, data in enumerate(request.inserts)
        ]
        targets = [d.id for d in request.deletes] + [c.old.id for c in request.changes]
        everyone = targets + [d.id for d in request.depends] + [i.id for i in inserts if i.explicit]
        state: dict[str, Current] = {}
        fresh = False  # state came from etcd in this attempt, not from the cache
        for attempt in range(_MODIFY_ATTEMPTS):
            now = now_ms()
            if not fresh:
                cached = self._cached_state(request, targets, now)
                if cached is None:
                    state = await self._read_tasks(everyone)
                    fresh = True
                else:
                    state = cached
            if fresh:
                verdict = diagnose(request, inserts, state, self._keys, now)
                if verdict.error is not None:
                    self._forget(everyone)
                    raise verdict.error
                if verdict.skip:
                    inserts = [i for i in inserts if i.index not in verdict.skip]
            plan = build(request, inserts, state, self._keys, now)
            size = plan.request.ByteSize()
            if size > self.config.max_request_bytes - _SIZE_MARGIN:
                raise MessageTooLarge(
                    "modification",
                    f"<{size} bytes>",
                    f"exceeds etcd's request limit of {self.config.max_request_bytes} bytes "
                    f"less {_SIZE_MARGIN} for etcd's own envelope (--max-request-bytes; the "
                    "backend option max_request_bytes)",
                )
            response = await self._write(plan.request)
            if response.succeeded:
                return self._applied(plan, response.header.revision, now)
            # The failure branch read every named task at the failing revision.
            reads = ops.range_results(response)
            state = {
                task_id: current_from(list(result.kvs))
                for task_id, result in zip(_named(request, inserts), reads, strict=True)
            }
            fresh = True
            verdict = diagnose(request, inserts, state, self._keys, now_ms())
            if verdict.error is not None:
                self._forget(everyone)
                raise verdict.error
            if verdict.skip:
                inserts = [i for i in inserts if i.index not in verdict.skip]
                continue
            # Compares failed but the request is still valid: something raced us.
            await asyncio.sleep(_backoff(attempt))
        self._forget(everyone)
        raise RetryableConflict(
            f"modification by {request.claimant!r} lost {_MODIFY_ATTEMPTS} races in a row"
        )

    def _cached_state(
        self, request: ModifyRequest, targets: list[str], now: int
    ) -> dict[str, Current] | None:
        """Cached records of the deletes, changes and depends, if all are known and
        look fine.

        Anything that looks like a failure is read again before it is reported:
        a DependencyError is only ever built from what etcd said.
        """
        state: dict[str, Current] = {}
        for task_id in targets:
            current = self._cache.get(task_id)
            if current is None or current.record is None:
                return None
            if current.record.leased_by_other(request.claimant, now):
                return None
            state[task_id] = current
        for d in request.depends:
            current = self._cache.get(d.id)
            if current is None or current.record is None:
                return None
            state[d.id] = current
        wanted = (
            [(d.id, d.version) for d in request.deletes]
            + [(c.old.id, c.old.version) for c in request.changes]
            + [(d.id, d.version) for d in request.depends]
        )
        for task_id, version in wanted:
            record = state[task_id].record
            if record is None or record.version != version:
                return None
        return state

    def _check_sizes(self, request: ModifyRequest) -> None:
        most = self.config.max_request_bytes
        headroom = min(_VALUE_HEADROOM, most // 2)
        limit = most - headroom
        named = [(f"inserts[{i}].value", d.value) for i, d in enumerate(request.inserts)] + [
            (f"changes[{i}].new.value", c.new.value) for i, c in enumerate(request.changes)
        ]
        for field, value in named:
            if len(value) > limit:
                raise MessageTooLarge(
                    field,
                    f"<{len(value)} bytes>",
                    f"is over the largest value this backend stores, {limit} bytes: etcd's "
                    f"request limit of {most} bytes (--max-request-bytes; the backend option "
                    f"max_request_bytes) less {headroom} for the keys and records around it",
                )

    async def _read_tasks(self, ids: list[str]) -> dict[str, Current]:
        state: dict[str, Current] = {}
        for chunk in _chunks(ids, _READ_OPS):
            response = await self._client.txn(
                ops.txn(success=[ops.get(self._keys.task(t)) for t in chunk]), read_only=True
            )
            for task_id, result in zip(chunk, ops.range_results(response), strict=True):
                state[task_id] = current_from(list(result.kvs))
        return state

    def _applied(self, plan: Plan, revision: int, now: int) -> ModifyResult:
        for task_id in plan.deleted:
            self._cache.pop(task_id, None)
        woken: dict[str, int] = {}
        inserted: list[Task] = []
        changed: list[Task] = []
        for out, items in ((inserted, plan.inserted), (changed, plan.changed)):
            for record, value in items:
                self._remember(record, revision)
                out.append(record.to_task(value))
                if record.at_ms <= now:
                    woken[record.queue] = woken.get(record.queue, 0) + 1
        for queue, count in woken.items():
            self._wakeups.notify(queue, count)
        return ModifyResult(inserted=tuple(inserted), changed=tuple(changed))

    def _remember(self, record: Record, revision: int) -> None:
        self._cache[record.id] = Current(record, revision)
        self._cache.move_to_end(record.id)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _forget(self, ids: Iterable[str]) -> None:
        for task_id in ids:
            self._cache.pop(task_id, None)

    # --- reads ------------------------------------------------------------------------

    async def tasks(self, request: TasksRequest) -> AsyncIterator[Task]:
        """Yield the matching tasks; a listing without values never reads them."""
        self._check_open()
        now = now_ms()
        left = request.limit or -1
        async for batch in self._task_batches(request):
            records = [
                r
                for r in batch
                if not request.claimant or r.claimant == request.claimant or r.at_ms <= now
            ]
            if left >= 0:
                records = records[:left]
                left -= len(records)
            values = await self._values(records, request.omit_values)
            for record in records:
                yield record.to_task(values.get(record.id, b""))
            if left == 0:
                return

    async def _task_batches(self, request: TasksRequest) -> AsyncIterator[list[Record]]:
        if request.ids:
            for chunk in _chunks(list(request.ids), _READ_OPS):
                response = await self._client.txn(
                    ops.txn(success=[ops.get(self._keys.task(t)) for t in chunk]), read_only=True
                )
                batch = []
                for task_id, result in zip(chunk, ops.range_results(response), strict=True):
                    current = current_from(list(result.kvs))
                    record = current.record
                    if record is None or record.id != task_id:
                        continue
                    if request.queue and record.queue != request.queue:
                        continue
                    batch.append(record)
                yield batch
            return
        revision = 0
        for start, end in (
            self._keys.ready_range(request.queue),
            self._keys.future_range(request.queue),
        ):
            key = start
            while True:
                try:
                    result = await self._client.range(
                        ops.scan(key, end, limit=_PAGE, revision=revision)
                    )
                except HistoryCompacted:
                    # The revision this listing started at is gone (etcd compacts its
                    # history regularly, and a caller may read slowly): go on from
                    # here at the latest one. Best-effort, as listings are: a task
                    # claimed or moved meanwhile may show twice or not at all.
                    revision = 0
                    continue
                revision = revision or result.header.revision
                batch = []
                for kv in result.kvs:
                    parsed = self._keys.parse_index(kv.key)
                    record = decode(kv.value)
                    if parsed is None or record is None or record.id != parsed.task_id:
                        continue  # someone else's key
                    batch.append(record)
                if batch:
                    yield batch
                if not result.more or not result.kvs:
                    break
                key = result.kvs[-1].key + b"\x00"

    async def _values(self, records: list[Record], omit: bool) -> dict[str, bytes]:
        if omit or not records:
            return {}
        values: dict[str, bytes] = {}
        for chunk in _chunks(records, _READ_OPS):
            response = await self._client.txn(
                ops.txn(success=[ops.get(self._keys.value(r.id)) for r in chunk]), read_only=True
            )
            for record, result in zip(chunk, ops.range_results(response), strict=True):
                if result.kvs:
                    values[record.id] = result.kvs[0].value
        return values

    async def queue_stats(self, request: QueuesRequest) -> dict[str, QueueStats]:
        """Return stats for the matching queues from count-only and keys-only reads."""
        self._check_open()
        names = sorted(await self._queue_names(request))
        stats: dict[str, QueueStats] = {}
        empty: list[str] = []
        for chunk in _chunks(names, _READ_OPS // 5):
            now = now_ms()
            reads = []
            for queue in chunk:
                for start, end, count_only in (
                    (*self._keys.ready_range(queue), True),
                    (*self._keys.future_range(queue), True),
                    (*self._keys.due_range(queue, now), True),
                    (*self._keys.unclaimed_future_range(queue, now), True),
                    (*self._keys.stats_range(queue), False),
                ):
                    reads.append(
                        ops.ranged(
                            ops.scan(
                                start,
                                end,
                                count_only=count_only,
                                keys_only=True,
                                limit=0 if count_only else 1,
                            )
                        )
                    )
            results = ops.range_results(
                await self._client.txn(ops.txn(success=reads), read_only=True)
            )
            for i, queue in enumerate(chunk):
                ready, future, due, fresh, first = results[5 * i : 5 * i + 5]
                total = ready.count + future.count
                if total == 0:
                    empty.append(queue)
                    continue
                claims = self._keys.parse_stats_claims(first.kvs[0].key) if first.kvs else None
                available = ready.count + due.count
                stats[queue] = QueueStats(
                    name=queue,
                    num_tasks=total,
                    num_available=available,
                    num_claimed=max(0, total - available - fresh.count),
                    num_future=fresh.count,
                    max_claims=claims or 0,
                )
            if request.limit and len(stats) >= request.limit:
                break
        if empty:
            await self._forget_queues(empty)
        if request.limit:
            stats = dict(list(stats.items())[: request.limit])
        return stats

    async def _queue_names(self, request: QueuesRequest) -> set[str]:
        names = set(request.exact)
        prefixes = list(request.prefixes)
        if not request.prefixes and not request.exact:
            prefixes = [""]
        for prefix in prefixes:
            start, end = self._keys.queues_range(prefix)
            while True:
                result = await self._client.range(ops.scan(start, end, limit=_PAGE))
                for kv in result.kvs:
                    name = self._keys.parse_queue(kv.key)
                    if name is not None and kv.value == QUEUE_MARK:
                        names.add(name)
                if not result.more or not result.kvs:
                    break
                start = result.kvs[-1].key + b"\x00"
        return {n for n in names if request.matches(n)}

    async def _forget_queues(self, queues: list[str]) -> None:
        """Drop registry keys of queues that hold no task, guarded against a racing insert."""
        for chunk in _chunks(queues, _READ_OPS):
            guarded = []
            for queue in chunk:
                start, end = self._keys.queue_keys_range(queue)
                key = self._keys.queue(queue)
                guarded.append(
                    ops.nested(
                        [ops.value_is(key, QUEUE_MARK), ops.absent(start, end)], [ops.delete(key)]
                    )
                )
            try:
                await self._client.txn(ops.txn(success=guarded))
            except EntroQError as exc:  # housekeeping only: a read-only user cannot do it
                log.info("could not drop empty queues from the registry: %s", exc)

    async def time(self) -> datetime:
        """Return this process's clock, the one every decision of this backend uses."""
        return from_ms(now_ms())

    async def aclose(self) -> None:
        """Stop watching and close the connections."""
        if self._closed:
            return
        self._closed = True
        await self._watcher.aclose()
        await self._client.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable("the etcd backend is closed")


def _named(request: ModifyRequest, inserts: list[Insert]) -> list[str]:
    """Ids in the order ``plan.build`` reads them in its failure branch."""
    return (
        [d.id for d in request.deletes]
        + [c.old.id for c in request.changes]
        + [d.id for d in request.depends]
        + [i.id for i in inserts if i.explicit]
    )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


async def open_backend(url: str, **options: Any) -> EtcdBackend:
    """Open an etcd backend.

    Args:
        url: ``etcd://[user[:password]@]host:port[,host:port...][/prefix/][?option=value]``.
        **options: ``prefix``, ``user``, ``password``, ``tls``, ``ca_file``, ``cert_file``,
            ``key_file``, ``server_name``, ``call_timeout``, ``max_request_bytes``
            (see ``entroq_etcd.config``).

    Returns:
        An open backend; close it with ``await backend.aclose()``.

    Raises:
        InvalidArgument: the URL or an option is malformed.
        BackendUnavailable: no endpoint answered within ``call_timeout``.
        AuthenticationError: the credentials were refused (or are needed).
    """
    config = config_mod.parse(url, options)
    client = EtcdClient(config)
    try:
        await client.open(KeyLayout(config.prefix).prefix)
    except BaseException:
        await client.aclose()
        raise
    return EtcdBackend(config, client)
