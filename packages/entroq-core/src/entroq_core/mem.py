"""The in-memory backend, ``mem://``: one process, no persistence, exact semantics.

Each queue keeps its available task ids in an array (random pick and removal in
O(1)) and its not-yet-available ones in a heap keyed by arrival time; a claim
first moves the heap's due entries into the array, so claims never scan a queue.
Heap entries are never updated in place: a stale entry (task gone, moved or
re-timed) is recognised and dropped when it surfaces, and the heap is rebuilt
when stale entries outnumber live ones.
"""

from __future__ import annotations

import heapq
import random
import threading
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .claiming import claim_until_found
from .dependencies import Holding, check_dependencies
from .errors import BackendUnavailable, InvalidArgument
from .ids import new_task_id
from .requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from .timeutil import from_ms, now_ms, to_ms
from .types import ModifyResult, QueueStats, Task
from .wakeups import QueueWakeups, future_arrivals

_rand = random.Random()


class _Queue:
    """Index of one queue's tasks by availability."""

    __slots__ = ("available", "future", "members", "position")

    def __init__(self) -> None:
        self.members: dict[str, None] = {}
        self.available: list[str] = []
        self.position: dict[str, int] = {}
        self.future: list[tuple[int, str]] = []

    def add_available(self, task_id: str) -> None:
        self.position[task_id] = len(self.available)
        self.available.append(task_id)

    def remove_available(self, task_id: str) -> bool:
        index = self.position.pop(task_id, None)
        if index is None:
            return False
        last = self.available.pop()
        if last != task_id:
            self.available[index] = last
            self.position[last] = index
        return True


class _Store:
    """All tasks of one mem:// store, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[str, Task] = {}
        self.queues: dict[str, _Queue] = {}
        self.wakeups = QueueWakeups()

    # --- placement -------------------------------------------------------

    def place(self, task: Task, now: int) -> bool:
        """Index a stored task; return True if it is available now."""
        q = self.queues.get(task.queue)
        if q is None:
            q = self.queues[task.queue] = _Queue()
        q.members[task.id] = None
        at = to_ms(task.at)
        if at <= now:
            q.add_available(task.id)
            return True
        heapq.heappush(q.future, (at, task.id))
        return False

    def unplace(self, task: Task) -> None:
        q = self.queues[task.queue]
        del q.members[task.id]
        if not q.members:
            del self.queues[task.queue]
            return
        q.remove_available(task.id)
        self._maybe_compact(task.queue, q)

    def _maybe_compact(self, name: str, q: _Queue) -> None:
        # Linear in the heap, but only once stale entries outnumber live ones, so
        # O(1) amortised per operation and never a scan of the whole queue.
        live = len(q.members) - len(q.available)
        if len(q.future) > 2 * live + 1024:
            q.future = list({entry for entry in q.future if self._is_live(name, q, entry)})
            heapq.heapify(q.future)

    def _is_live(self, name: str, q: _Queue, entry: tuple[int, str]) -> bool:
        """True if a heap entry still describes a waiting task of this queue."""
        at, task_id = entry
        task = self.tasks.get(task_id)
        return (
            task is not None
            and task.queue == name
            and task_id not in q.position
            and to_ms(task.at) == at
        )

    def promote(self, name: str, q: _Queue, now: int) -> None:
        """Move every due task from the heap to the available array."""
        heap = q.future
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._is_live(name, q, entry):
                q.add_available(entry[1])

    # --- operations ------------------------------------------------------

    def try_claim(self, request: ClaimRequest) -> Task | None:
        queues = list(request.queues)
        if len(queues) > 1:
            _rand.shuffle(queues)
        with self.lock:
            now = now_ms()
            for name in queues:
                q = self.queues.get(name)
                if q is None:
                    continue
                self.promote(name, q, now)
                if not q.available:
                    continue
                task_id = q.available[_rand.randrange(len(q.available))]
                q.remove_available(task_id)
                old = self.tasks[task_id]
                now_dt = from_ms(now)
                at = now + request.duration_ms
                task = Task(
                    queue=old.queue,
                    id=task_id,
                    version=old.version + 1,
                    at=from_ms(at),
                    claimant=request.claimant,
                    value=old.value,
                    created=old.created,
                    modified=now_dt,
                    claims=old.claims + 1,
                    attempt=old.attempt,
                    err=old.err,
                )
                self.tasks[task_id] = task
                heapq.heappush(q.future, (at, task_id))
                return task
        return None

    def seconds_to_next_arrival(self, queues: tuple[str, ...]) -> float | None:
        with self.lock:
            heads = [q.future[0][0] for n in queues if (q := self.queues.get(n)) and q.future]
            if not heads:
                return None
            return max(0, min(heads) - now_ms()) / 1000.0

    def modify(self, request: ModifyRequest) -> ModifyResult:
        modifier = request.claimant
        woken: dict[str, int] = {}
        with self.lock:
            now = now_ms()
            tasks = self.tasks

            def lookup(task_id: str) -> Holding | None:
                task = tasks.get(task_id)
                if task is None:
                    return None
                leased = to_ms(task.at) > now
                return Holding(task_id, task.version, task.queue, task.claimant, leased)

            skipped = check_dependencies(request, lookup)

            now_dt = from_ms(now)
            for d in request.deletes:
                self.unplace(tasks.pop(d.id))
            changed = []
            for c in request.changes:
                old = tasks[c.old.id]
                new = c.new
                self.unplace(old)
                task = Task(
                    queue=new.queue,
                    id=old.id,
                    version=old.version + 1,
                    at=new.at or now_dt,
                    claimant=modifier,
                    value=new.value,
                    created=old.created,
                    modified=now_dt,
                    claims=old.claims,
                    attempt=new.attempt,
                    err=new.err,
                )
                tasks[task.id] = task
                if self.place(task, now):
                    woken[task.queue] = woken.get(task.queue, 0) + 1
                changed.append(task)
            inserted = []
            for i, data in enumerate(request.inserts):
                if i in skipped:
                    continue
                task = Task(
                    queue=data.queue,
                    id=data.id or new_task_id(),
                    version=0,
                    at=data.at or now_dt,
                    claimant=modifier,
                    value=data.value,
                    created=now_dt,
                    modified=now_dt,
                    claims=0,
                    attempt=data.attempt,
                    err=data.err,
                )
                tasks[task.id] = task
                if self.place(task, now):
                    woken[task.queue] = woken.get(task.queue, 0) + 1
                inserted.append(task)
        for queue, count in woken.items():
            self.wakeups.notify(queue, count)
        for queue, at in future_arrivals((*inserted, *changed)).items():
            self.wakeups.arrival(queue, at)
        return ModifyResult(inserted=tuple(inserted), changed=tuple(changed))

    def list_tasks(self, request: TasksRequest) -> list[Task]:
        with self.lock:
            now = now_ms()
            if request.ids:
                candidates = [t for i in request.ids if (t := self.tasks.get(i)) is not None]
                if request.queue:
                    candidates = [t for t in candidates if t.queue == request.queue]
            else:
                q = self.queues.get(request.queue)
                members = list(q.members) if q is not None else []
                candidates = [self.tasks[i] for i in members]
        if request.claimant:
            candidates = [
                t for t in candidates if t.claimant == request.claimant or to_ms(t.at) <= now
            ]
        if request.limit:
            candidates = candidates[: request.limit]
        return candidates

    def queue_stats(self, request: QueuesRequest) -> dict[str, QueueStats]:
        with self.lock:
            now = now_ms()
            names = sorted(n for n in self.queues if request.matches(n))
            if request.limit:
                names = names[: request.limit]
            stats = {}
            for name in names:
                q = self.queues[name]
                self.promote(name, q, now)
                claimed = future = max_claims = 0
                for task_id in q.members:
                    task = self.tasks[task_id]
                    max_claims = max(max_claims, task.claims)
                    if task_id in q.position:
                        continue
                    if task.claims > 0:
                        claimed += 1
                    else:
                        future += 1
                stats[name] = QueueStats(
                    name=name,
                    num_tasks=len(q.members),
                    num_available=len(q.available),
                    num_claimed=claimed,
                    num_future=future,
                    max_claims=max_claims,
                )
            return stats


class MemBackend:
    """In-memory backend; all clients of one store share tasks and wake-ups."""

    def __init__(self, store: _Store | None = None) -> None:
        self._store = store or _Store()
        self._closed = False

    def _check_open(self) -> _Store:
        if self._closed:
            raise BackendUnavailable("mem backend is closed")
        return self._store

    async def try_claim(self, request: ClaimRequest) -> Task | None:
        """Claim a random available task from the listed queues, or return None."""
        return self._check_open().try_claim(request)

    async def claim(self, request: ClaimRequest, poll: float) -> Task:
        """Claim a task, waking on inserts and at the earliest future arrival."""
        store = self._check_open()

        async def next_arrival(queues: tuple[str, ...]) -> float | None:
            return store.seconds_to_next_arrival(queues)

        return await claim_until_found(request, self.try_claim, store.wakeups, poll, next_arrival)

    async def modify(self, request: ModifyRequest) -> ModifyResult:
        """Apply the modification atomically or raise DependencyError."""
        return self._check_open().modify(request)

    async def tasks(self, request: TasksRequest) -> AsyncIterator[Task]:
        """Yield the matching tasks."""
        for task in self._check_open().list_tasks(request):
            if request.omit_values and task.value:
                task = _without_value(task)
            yield task

    async def queue_stats(self, request: QueuesRequest) -> dict[str, QueueStats]:
        """Return stats for the matching queues."""
        return self._check_open().queue_stats(request)

    async def time(self) -> datetime:
        """Return the process clock."""
        return from_ms(now_ms())

    async def aclose(self) -> None:
        """Close this handle; a named store lives on while other handles use it."""
        self._closed = True


def _without_value(task: Task) -> Task:
    return Task(
        queue=task.queue,
        id=task.id,
        version=task.version,
        at=task.at,
        claimant=task.claimant,
        value=b"",
        created=task.created,
        modified=task.modified,
        claims=task.claims,
        attempt=task.attempt,
        err=task.err,
    )


_named_stores: weakref.WeakValueDictionary[str, _Store] = weakref.WeakValueDictionary()
_named_lock = threading.Lock()


async def open_backend(url: str = "mem://", **options: Any) -> MemBackend:
    """Open a mem backend.

    ``mem://`` gives a fresh private store; ``mem://NAME`` shares the store called
    NAME with every other open handle in this process.
    """
    if options:
        raise InvalidArgument("options", sorted(options), "the mem backend takes no options")
    parts = urlsplit(url)
    if parts.scheme.lower() != "mem":
        raise InvalidArgument("url", url, "is not a mem:// URL")
    name = parts.netloc + parts.path.rstrip("/")
    if not name:
        return MemBackend()
    with _named_lock:
        store = _named_stores.get(name)
        if store is None:
            store = _Store()
            _named_stores[name] = store
    return MemBackend(store)
