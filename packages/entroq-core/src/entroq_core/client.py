"""AsyncEntroQ: the API people use, over any backend."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from .backend import Backend
from .claiming import DEFAULT_POLL_SECONDS
from .errors import DeadlineExceeded, InvalidArgument
from .ids import new_task_id
from .lease import RenewedLease
from .modification import Modification
from .registry import connect
from .requests import ClaimRequest, QueuesRequest, TasksRequest, check_id
from .timeutil import seconds, utcnow
from .types import ModifyResult, QueueStats, Task, TaskChange, TaskData, TaskID

T = TypeVar("T")

DEFAULT_LEASE_SECONDS = 30.0


def default_claimant() -> str:
    """A claimant id unique to this client: host, pid and a random suffix."""
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{new_task_id()[:8]}"


def queue_tuple(queues: str | Iterable[str]) -> tuple[str, ...]:
    """Accept one queue name or several."""
    if isinstance(queues, str):
        return (queues,)
    return tuple(queues)


def duration_ms(field: str, value: float | timedelta) -> int:
    """Convert seconds or a timedelta to whole positive milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise InvalidArgument(field, value, "must be seconds or a timedelta")
    ms = round(seconds(value) * 1000)
    if ms <= 0:
        raise InvalidArgument(field, value, "must be at least 1 ms")
    return ms


class AsyncEntroQ:
    """An EntroQ client bound to one backend and one claimant id.

    Example::

        async with await AsyncEntroQ.open("mem://") as eq:
            await eq.modify(Modification().insert("jobs", b"hello"))
            task = await eq.claim("jobs", duration=30)
            await eq.modify(Modification().delete(task))
    """

    def __init__(self, backend: Backend, *, claimant: str | None = None) -> None:
        self._backend = backend
        self._claimant = check_id("claimant", claimant) if claimant else default_claimant()

    @classmethod
    async def open(cls, url: str, *, claimant: str | None = None, **options: Any) -> AsyncEntroQ:
        """Connect to the backend at ``url`` (``mem://``, ``pg://...``, ``grpc://...``)."""
        return cls(await connect(url, **options), claimant=claimant)

    @property
    def claimant(self) -> str:
        """This client's claimant id: who it claims and modifies as."""
        return self._claimant

    @property
    def backend(self) -> Backend:
        """The backend this client talks to."""
        return self._backend

    async def __aenter__(self) -> AsyncEntroQ:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the backend."""
        await self._backend.aclose()

    # --- claiming --------------------------------------------------------

    async def try_claim(
        self, queues: str | Iterable[str], duration: float | timedelta = DEFAULT_LEASE_SECONDS
    ) -> Task | None:
        """Claim a random available task from ``queues`` for ``duration``, or return None.

        Raises:
            InvalidArgument: no queues, a bad queue name, or a non-positive duration.
        """
        request = ClaimRequest(
            self._claimant, queue_tuple(queues), duration_ms("duration", duration)
        )
        return await self._backend.try_claim(request)

    async def claim(
        self,
        queues: str | Iterable[str],
        duration: float | timedelta = DEFAULT_LEASE_SECONDS,
        *,
        poll: float | timedelta = DEFAULT_POLL_SECONDS,
        timeout: float | timedelta | None = None,
    ) -> Task:
        """Claim a task from ``queues``, waiting until one is available.

        Args:
            queues: one queue name or several; a random one is tried first.
            duration: the lease, in seconds or as a timedelta.
            poll: the longest wait between tries when no wake-up arrives.
            timeout: give up after this long (None waits forever).

        Returns:
            The claimed task, leased to this client until ``task.at``.

        Raises:
            DeadlineExceeded: ``timeout`` passed with nothing claimed.
            InvalidArgument: bad queues, duration or poll.
        """
        request = ClaimRequest(
            self._claimant, queue_tuple(queues), duration_ms("duration", duration)
        )
        poll_s = duration_ms("poll", poll) / 1000.0
        if timeout is None:
            return await self._backend.claim(request, poll_s)
        limit = seconds(timeout)
        try:
            async with asyncio.timeout(limit):
                return await self._backend.claim(request, poll_s)
        except TimeoutError as exc:
            if isinstance(exc, DeadlineExceeded):
                raise
            raise DeadlineExceeded(
                f"no task claimed from {list(request.queues)} within {limit:g}s"
            ) from None

    # --- modifying -------------------------------------------------------

    async def modify(
        self,
        modification: Modification | None = None,
        *,
        inserts: Iterable[TaskData] = (),
        changes: Iterable[TaskChange] = (),
        deletes: Iterable[TaskID] = (),
        depends: Iterable[TaskID] = (),
        claimant: str | None = None,
    ) -> ModifyResult:
        """Apply a modification atomically.

        ``claimant`` acts for another holder (admin tools); workers never set it.

        Returns:
            The inserted and changed tasks, in request order.

        Raises:
            DependencyError: some dependency failed; nothing was applied.
            InvalidArgument: the request breaks a rule of the contract.
        """
        mod = modification if modification is not None else Modification()
        if inserts or changes or deletes or depends:
            mod = Modification(
                inserts=[*mod.inserts, *inserts],
                changes=[*mod.changes, *changes],
                deletes=[*mod.deletes, *deletes],
                depends=[*mod.depends, *depends],
            )
        request = mod.to_request(claimant or self._claimant)
        if request.is_empty():
            return ModifyResult()
        return await self._backend.modify(request)

    async def renew_for(self, task: Task, duration: float | timedelta) -> Task:
        """Extend the lease on ``task`` to now + ``duration``; return the new version."""
        ms = duration_ms("duration", duration)
        mod = Modification().change(task, at=utcnow() + timedelta(milliseconds=ms))
        result = await self.modify(mod)
        return result.changed[0]

    def renewing(
        self, task: Task, lease: float | timedelta = DEFAULT_LEASE_SECONDS
    ) -> RenewedLease:
        """Keep ``task`` leased while the ``async with`` block runs.

        Example::

            async with eq.renewing(task, 30) as held:
                await work(held.task.value)
            await eq.modify(Modification().delete(held.task))
        """
        lease_s = duration_ms("lease", lease) / 1000.0
        return RenewedLease(task, lease_s / 2, lambda t: self.renew_for(t, lease_s))

    async def do_with_renew(
        self,
        task: Task,
        lease: float | timedelta,
        work: Callable[[Task], Awaitable[T]],
    ) -> tuple[Task, T]:
        """Run ``work(task)`` while renewing the lease; return the latest task and the result.

        Raises:
            DependencyError: the lease was lost (the work was cancelled).
        """
        async with self.renewing(task, lease) as held:
            result = await work(held.task)
        return held.task, result

    # --- reading ---------------------------------------------------------

    def stream_tasks(
        self,
        queue: str = "",
        *,
        claimant: str = "",
        ids: Iterable[str] = (),
        limit: int = 0,
        omit_values: bool = False,
    ) -> AsyncIterator[Task]:
        """Yield tasks of ``queue`` and/or with ``ids`` without holding them all."""
        request = TasksRequest(
            queue=queue, claimant=claimant, ids=tuple(ids), limit=limit, omit_values=omit_values
        )
        return self._backend.tasks(request)

    async def tasks(
        self,
        queue: str = "",
        *,
        claimant: str = "",
        ids: Iterable[str] = (),
        limit: int = 0,
        omit_values: bool = False,
    ) -> list[Task]:
        """List tasks of ``queue`` and/or with ``ids`` (unknown ids are skipped).

        ``claimant`` keeps only tasks that client could claim or already holds.
        """
        stream = self.stream_tasks(
            queue, claimant=claimant, ids=ids, limit=limit, omit_values=omit_values
        )
        return [t async for t in stream]

    async def queue_stats(
        self, prefixes: Iterable[str] = (), exact: Iterable[str] = (), limit: int = 0
    ) -> dict[str, QueueStats]:
        """Stats of queues matching any prefix or exact name (all queues if neither)."""
        request = QueuesRequest(prefixes=tuple(prefixes), exact=tuple(exact), limit=limit)
        return await self._backend.queue_stats(request)

    async def queues(
        self, prefixes: Iterable[str] = (), exact: Iterable[str] = (), limit: int = 0
    ) -> dict[str, int]:
        """Task counts of the matching queues."""
        stats = await self.queue_stats(prefixes, exact, limit)
        return {name: s.num_tasks for name, s in stats.items()}

    async def queues_empty(self, prefixes: Iterable[str] = (), exact: Iterable[str] = ()) -> bool:
        """True if no matching queue holds a task."""
        if not prefixes and not exact:
            raise InvalidArgument("prefixes", [], "name at least one prefix or exact queue")
        return not await self.queue_stats(prefixes, exact, limit=1)

    async def wait_queues_empty(
        self,
        prefixes: Iterable[str] = (),
        exact: Iterable[str] = (),
        *,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> None:
        """Wait until every matching queue is empty.

        Raises:
            DeadlineExceeded: ``timeout`` passed first.
        """
        prefixes, exact = tuple(prefixes), tuple(exact)
        try:
            async with asyncio.timeout(timeout):
                # Emptiness has no wake-up source in the Backend protocol: poll.
                while not await self.queues_empty(prefixes, exact):  # noqa: ASYNC110
                    await asyncio.sleep(poll)
        except TimeoutError:
            raise DeadlineExceeded(
                f"queues {list(prefixes) + list(exact)} not empty after {timeout}s"
            ) from None

    async def time(self) -> datetime:
        """The backend's clock."""
        return await self._backend.time()
