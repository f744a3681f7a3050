"""Claim wake-ups from etcd Watch, so a waiter wakes when any process inserts.

One Watch stream per backend handle carries two watches per waited queue: its
ready index (a put there is a task available now: ring a waiter) and its future
index (a put there is a task or lease due later: ring a waiter when it comes
due, unless the key is deleted first). Watches are created before a claim first
tries its queues and live until the handle closes, so a worker's repeated claims
pay for them once. If the stream breaks it is reopened on the next endpoint,
the watches re-created, and every waiter rung, since events may have been missed.

gRPC allows one write at a time on a stream (a second one fails the whole
call), so every request goes out under one lock, in the order etcd will answer
it. A handle watches at most ``_MAX_QUEUES`` queues, dropping the least recently
waited ones, but never a queue some claim is waiting on right now.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any

import grpc
import grpc.aio

from entroq_core.errors import BackendUnavailable
from entroq_core.timeutil import now_ms
from entroq_core.wakeups import QueueWakeups

from ._etcdpb import kv_pb2, rpc_pb2
from .client import EtcdClient
from .keys import KeyLayout

log = logging.getLogger("entroq.etcd.watch")

_MAX_QUEUES = 1024  # watched queues per handle, unless more are being waited on at once
_MAX_PENDING = 4096  # future arrivals remembered per queue
_RECONNECT_DELAY = 0.2


class _Timers:
    """Future arrivals of one queue, to ring a waiter when each comes due."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, bytes]] = []
        self.live: dict[bytes, int] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.armed_at: int | None = None


class QueueWatcher:
    """Feeds a QueueWakeups from etcd Watch events on the waited queues."""

    def __init__(self, client: EtcdClient, keys: KeyLayout, wakeups: QueueWakeups) -> None:
        self._client = client
        self._keys = keys
        self._wakeups = wakeups
        self._queues: dict[str, asyncio.Future[None]] = {}  # queue -> created
        self._waiting: dict[str, int] = {}  # queue -> claims waiting on it now
        self._write_lock = asyncio.Lock()
        self._watch_ids: dict[int, str] = {}
        self._pending_creates: list[str] = []
        self._sent: set[str] = set()  # queues whose creates went on the current stream
        self._timers: dict[str, _Timers] = {}
        # Per queue, the revision of the newest put seen: its waiters were rung, or
        # will be by a timer when it comes due.
        self._newest_put: dict[str, int] = {}
        self.events = 0  # watch events received (each costs this process a decode)
        self._call: grpc.aio.StreamStreamCall | None = None  # type: ignore[type-arg]
        self._runner: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._resync = False
        self._broken = False  # the stream failed and has not worked since (for logging)
        self._closed = False

    @contextlib.asynccontextmanager
    async def watching(self, queues: Iterable[str], timeout: float) -> AsyncIterator[None]:
        """Watch ``queues`` while a claim waits on them: confirmed by etcd on entry,
        and none of them dropped to make room for other queues until exit."""
        held = tuple(dict.fromkeys(queues))
        for queue in held:
            self._waiting[queue] = self._waiting.get(queue, 0) + 1
        try:
            await self.ensure(held, timeout)
            yield
        finally:
            for queue in held:
                left = self._waiting[queue] - 1
                if left:
                    self._waiting[queue] = left
                else:
                    del self._waiting[queue]

    async def ensure(self, queues: Iterable[str], timeout: float) -> None:
        """Make sure every queue is watched; wait until etcd confirms the watches."""
        if self._closed:
            raise BackendUnavailable("the etcd backend is closed")
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="entroq-etcd-watch")
        waits = []
        for queue in queues:
            created = self._queues.get(queue)
            if created is None:
                self._evict()
                created = asyncio.get_running_loop().create_future()
                self._queues[queue] = created
                if self._call is not None:
                    # Shielded: a claim cancelled mid-write must not cut a request
                    # short on the stream every other claim of this handle shares.
                    await asyncio.shield(self._spawn(self._send_create(queue)))
            else:
                # Most recently used last, for eviction.
                self._queues[queue] = self._queues.pop(queue)
            if not created.done():
                waits.append(created)
        if waits:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(asyncio.shield(w) for w in waits))
            except TimeoutError:
                raise BackendUnavailable(
                    f"etcd at {self._client.config.describe()} did not confirm a watch "
                    f"within {timeout:g}s"
                ) from None

    def newest_put(self, queues: Iterable[str]) -> int:
        """The revision of the newest put seen on ``queues``, which rang or will ring
        their waiters (0: none).

        etcd sends a write's watch events before the write is readable (mvcc's
        watchableStoreTxnWrite.End notifies, then ends the write), and a
        serializable read may also come from a member that is behind: a read
        below this revision may not show the task a wake-up was for.
        """
        return max((self._newest_put.get(queue, 0) for queue in queues), default=0)

    async def aclose(self) -> None:
        """Stop watching."""
        self._closed = True
        for timers in self._timers.values():
            if timers.handle is not None:
                timers.handle.cancel()
        if self._call is not None:
            self._call.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner

    # --- stream ------------------------------------------------------------------

    def _evict(self) -> None:
        """Drop the least recently waited queues nobody waits on now, down to the limit."""
        if len(self._queues) < _MAX_QUEUES:
            return
        for queue in list(self._queues):
            if len(self._queues) < _MAX_QUEUES:
                return
            if queue not in self._waiting:
                self._drop(queue)

    def _drop(self, queue: str) -> None:
        self._queues.pop(queue)
        self._newest_put.pop(queue, None)
        timers = self._timers.pop(queue, None)
        if timers is not None and timers.handle is not None:
            timers.handle.cancel()
        self._sent.discard(queue)  # so a later wait creates its watches again
        call = self._call
        for watch_id, name in list(self._watch_ids.items()):
            if name == queue:
                del self._watch_ids[watch_id]
                if call is not None:
                    cancel = rpc_pb2.WatchCancelRequest(watch_id=watch_id)
                    # Not awaited: a late event for it is simply ignored.
                    self._spawn(self._write(call, rpc_pb2.WatchRequest(cancel_request=cancel)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _write(
        self,
        call: grpc.aio.StreamStreamCall[Any, Any],
        request: rpc_pb2.WatchRequest,
        creates: str = "",
    ) -> None:
        """Send one request on ``call``, never two at once; ``creates`` names the
        queue of a create request, recorded in the order etcd will confirm it."""
        async with self._write_lock:
            if self._closed or call is not self._call:
                return  # that stream is gone; its watches are re-created on the next
            if creates:
                self._pending_creates.append(creates)
            try:
                await call.write(request)
            except Exception as exc:  # the stream broke: reopen it, which re-creates all
                self._log_break("etcd watch stream write failed, reopening it: %r", exc)
                call.cancel()

    async def _send_create(self, queue: str) -> None:
        # Checked and marked before the first await, so a queue is never sent twice.
        call = self._call
        if call is None or queue in self._sent:
            return
        self._sent.add(queue)
        ready_start, ready_end = self._keys.ready_range(queue)
        future_start, future_end = self._keys.future_range(queue)
        creates = (
            # A ready key deleted is a task claimed, moved or done: nothing to wake
            # for, and with many waiting handles most events would be those.
            rpc_pb2.WatchCreateRequest(
                key=ready_start,
                range_end=ready_end,
                filters=[rpc_pb2.WatchCreateRequest.NODELETE],
            ),
            # Future-key deletes cancel the timers their puts armed.
            rpc_pb2.WatchCreateRequest(key=future_start, range_end=future_end),
        )
        for create in creates:
            await self._write(call, rpc_pb2.WatchRequest(create_request=create), creates=queue)

    async def _run(self) -> None:
        while not self._closed:
            endpoint = ""
            try:
                call, endpoint = self._client.watch_stream()
                self._call = call
                self._pending_creates = []
                self._sent = set()
                self._watch_ids = {}
                # Events between the old stream's end and these watches' start are
                # unknown: once etcd confirms them, every waiter looks again.
                self._resync = bool(self._queues)
                for queue in list(self._queues):
                    await self._send_create(queue)
                async for response in call:
                    if self._broken:
                        self._broken = False
                        log.info("etcd watch stream at %s works again", endpoint)
                    self._handle(response)
                if not self._closed:
                    self._log_break("etcd watch stream at %s ended; reconnecting", endpoint)
            except asyncio.CancelledError:
                runner = asyncio.current_task()
                if self._closed or (runner is not None and runner.cancelling()):
                    raise
                # Not this task being cancelled: the stream was, by a failed write.
                self._log_break("etcd watch stream at %s cancelled after a failed write", endpoint)
            except grpc.aio.AioRpcError as exc:
                if not self._closed:
                    self._log_break("etcd watch stream at %s failed: %s", endpoint, exc.details())
            except Exception:  # never let the wake-up source die silently
                log.exception("etcd watch stream at %s failed", endpoint)
            self._call = None
            if self._closed:
                return
            self._client.watch_failed(endpoint)
            # Queues must be confirmed again; events in the gap are unknown.
            for queue, created in list(self._queues.items()):
                if created.done():
                    self._queues[queue] = asyncio.get_running_loop().create_future()
            self._wakeups.notify_all()
            await asyncio.sleep(_RECONNECT_DELAY)

    def _log_break(self, message: str, *args: object) -> None:
        """Warn of the first break of a run (reconnects follow every 0.2 s while
        etcd is away); later ones go to debug until the stream works again."""
        log.log(logging.DEBUG if self._broken else logging.WARNING, message, *args)
        self._broken = True

    def _handle(self, response: rpc_pb2.WatchResponse) -> None:
        if response.created:
            if self._pending_creates:
                queue = self._pending_creates.pop(0)
                if response.canceled:
                    created = self._queues.get(queue)
                    if created is not None and not created.done():
                        created.set_exception(
                            BackendUnavailable(
                                f"etcd refused to watch queue {queue!r}: {response.cancel_reason}"
                            )
                        )
                        self._queues.pop(queue, None)
                        self._sent.discard(queue)
                    return
                if self._resync and not self._pending_creates:
                    self._resync = False
                    self._wakeups.notify_all()
                if queue in self._queues:
                    self._watch_ids[response.watch_id] = queue
                    creates_left = queue in self._pending_creates
                    created = self._queues[queue]
                    if not creates_left and not created.done():
                        created.set_result(None)
                elif self._call is not None:  # dropped while its create was on the way
                    cancel = rpc_pb2.WatchCancelRequest(watch_id=response.watch_id)
                    self._spawn(
                        self._write(self._call, rpc_pb2.WatchRequest(cancel_request=cancel))
                    )
            return
        if response.canceled:
            queue = self._watch_ids.pop(response.watch_id, "")
            if queue and response.compact_revision:
                # Fell behind compaction: start over for this queue and ring its waiters.
                self._wakeups.notify(queue, 1 << 30)
                self._sent.discard(queue)
                self._spawn(self._send_create(queue))
            return
        if response.watch_id not in self._watch_ids:
            return
        for event in response.events:
            self._event(event)

    def _event(self, event: kv_pb2.Event) -> None:
        self.events += 1
        parsed = self._keys.parse_index(event.kv.key)
        if parsed is None:
            return
        queue = parsed.queue
        if event.type == kv_pb2.Event.DELETE:
            timers = self._timers.get(queue)
            if timers is not None:
                timers.live.pop(event.kv.key, None)
            return
        now = now_ms()
        if queue in self._queues:
            self._newest_put[queue] = max(self._newest_put.get(queue, 0), event.kv.mod_revision)
        if parsed.ready or parsed.at_ms <= now:
            self._wakeups.notify(queue, 1)
            return
        timers = self._timers.setdefault(queue, _Timers())
        if len(timers.live) >= _MAX_PENDING:
            return  # the claim loop's poll and next-arrival read cover the rest
        timers.live[event.kv.key] = parsed.at_ms
        heapq.heappush(timers.heap, (parsed.at_ms, event.kv.key))
        self._arm(queue, timers)

    def _arm(self, queue: str, timers: _Timers) -> None:
        while timers.heap and timers.live.get(timers.heap[0][1]) != timers.heap[0][0]:
            heapq.heappop(timers.heap)  # deleted or superseded
        if not timers.heap:
            return
        at = timers.heap[0][0]
        if timers.handle is not None and timers.armed_at is not None and timers.armed_at <= at:
            return
        if timers.handle is not None:
            timers.handle.cancel()
        delay = max(0, at - now_ms()) / 1000 + 0.002
        timers.armed_at = at
        timers.handle = asyncio.get_running_loop().call_later(delay, self._fire, queue)

    def _fire(self, queue: str) -> None:
        timers = self._timers.get(queue)
        if timers is None:
            return
        timers.handle = None
        timers.armed_at = None
        now = now_ms()
        due = 0
        while timers.heap and timers.heap[0][0] <= now:
            at, key = heapq.heappop(timers.heap)
            if timers.live.get(key) == at:
                del timers.live[key]
                due += 1
        if due:
            self._wakeups.notify(queue, due)
        self._arm(queue, timers)
