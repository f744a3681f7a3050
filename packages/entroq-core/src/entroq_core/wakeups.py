"""Wake-ups for waiting claims, safe across event loops and threads.

A backend calls :meth:`QueueWakeups.notify` when a task becomes available now in a
queue (insert or change, from this process or, for backends that can hear it,
another), and :meth:`QueueWakeups.arrival` when one is put off to a later time.
A waiting claim registers interest with :meth:`QueueWakeups.watch` BEFORE it
tries to claim, so an event between its try and its wait is not lost.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from .timeutil import now_ms, to_ms
from .types import Task


class Waiter:
    """One waiting claim's doorbell."""

    __slots__ = ("_event", "_loop", "queues", "rung", "wakes_at")

    def __init__(self, queues: tuple[str, ...]) -> None:
        self.queues = queues
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.rung = False
        # Wall-clock ms its current wait ends; infinite while it is not waiting, so
        # an arrival announced while it tries or looks ahead still wakes it.
        self.wakes_at = math.inf

    def ring(self) -> None:
        """Wake the waiter from any thread."""
        self.rung = True
        self.wake()

    def wake(self) -> None:
        """End the current (or next) wait from any thread, without claiming a ring."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a ring; return True if rung."""
        if timeout > 0 and not self._event.is_set():
            self.wakes_at = now_ms() + timeout * 1000
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                pass
            finally:
                self.wakes_at = math.inf
        rung = self._event.is_set()
        self._event.clear()
        self.rung = False
        return rung


class QueueWakeups:
    """Registry of waiting claims by queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_queue: dict[str, list[Waiter]] = {}

    def has_waiters(self, queue: str) -> bool:
        """True if some claim is waiting on ``queue`` (a cheap, racy hint)."""
        return queue in self._by_queue

    @contextmanager
    def watch(self, queues: Iterable[str]) -> Iterator[Waiter]:
        """Register a waiter on ``queues`` for the duration of the block."""
        waiter = Waiter(tuple(queues))
        with self._lock:
            for q in waiter.queues:
                self._by_queue.setdefault(q, []).append(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                for q in waiter.queues:
                    waiters = self._by_queue.get(q)
                    if waiters is not None:
                        waiters.remove(waiter)
                        if not waiters:
                            del self._by_queue[q]
                handoff = waiter.rung
            # A waiter that leaves (found a task elsewhere, timed out, was
            # cancelled) after being rung passes the ring on, so an available
            # task is never left with sleeping waiters.
            if handoff:
                for q in waiter.queues:
                    self.notify(q, 1)

    def notify(self, queue: str, count: int = 1) -> None:
        """Wake up to ``count`` waiters of ``queue`` that have not been rung yet."""
        if queue not in self._by_queue:
            return
        with self._lock:
            waiters = self._by_queue.get(queue, ())
            chosen = [w for w in waiters if not w.rung][:count]
            for w in chosen:
                w.rung = True
        for w in chosen:
            w.ring()

    def arrival(self, queue: str, at_ms: int) -> None:
        """A task of ``queue`` comes due at ``at_ms``: wake the waiters that would
        sleep past it, so each looks again and sleeps until then (SPEC section 2:
        wake at the earliest known future arrival, also one announced mid-wait)."""
        if queue not in self._by_queue:
            return
        with self._lock:
            late = [w for w in self._by_queue.get(queue, ()) if w.wakes_at > at_ms]
        for w in late:
            w.wake()

    def notify_all(self) -> None:
        """Wake every waiter (for example after a lost connection is restored)."""
        with self._lock:
            everyone = {id(w): w for ws in self._by_queue.values() for w in ws}
        for w in everyone.values():
            w.ring()


def future_arrivals(tasks: Iterable[Task]) -> dict[str, int]:
    """Per queue, the earliest ``at`` (ms) among the just written ``tasks`` that
    are not yet due: what a modification announces with :meth:`QueueWakeups.arrival`.

    "Not yet due" is judged against each task's ``modified``, the store's own
    clock at the write: a client clock behind the database's would otherwise
    take every task written for now as a future one and wake every waiter.
    """
    arrivals: dict[str, int] = {}
    for task in tasks:
        at = to_ms(task.at)
        if at > to_ms(task.modified) and at < arrivals.get(task.queue, at + 1):
            arrivals[task.queue] = at
    return arrivals
