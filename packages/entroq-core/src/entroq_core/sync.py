"""EntroQ: the AsyncEntroQ API for synchronous code, on one private event-loop thread."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from .claiming import DEFAULT_POLL_SECONDS
from .client import DEFAULT_LEASE_SECONDS, AsyncEntroQ, duration_ms
from .lease import RenewedLease
from .modification import Modification
from .types import ModifyResult, QueueStats, Task, TaskChange, TaskData, TaskID
from .worker import Handler, Worker, WorkerOptions

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="entroq-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt in the caller: do not leave the coroutine running.
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class EntroQ:
    """Synchronous EntroQ client; same methods and arguments as :class:`AsyncEntroQ`.

    Example::

        with EntroQ("mem://") as eq:
            eq.modify(Modification().insert("jobs", b"hello"))
            task = eq.claim("jobs", duration=30)
            eq.modify(Modification().delete(task))
    """

    def __init__(self, url: str, *, claimant: str | None = None, **options: Any) -> None:
        self._thread = _LoopThread()
        try:
            self._client = self._thread.run(AsyncEntroQ.open(url, claimant=claimant, **options))
        except BaseException:
            self._thread.stop()
            raise

    @property
    def claimant(self) -> str:
        """This client's claimant id."""
        return self._client.claimant

    @property
    def async_client(self) -> AsyncEntroQ:
        """The AsyncEntroQ underneath (it lives on this object's loop thread)."""
        return self._client

    def __enter__(self) -> EntroQ:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the backend and stop the loop thread."""
        try:
            self._thread.run(self._client.aclose())
        finally:
            self._thread.stop()

    def try_claim(
        self, queues: str | Iterable[str], duration: float | timedelta = DEFAULT_LEASE_SECONDS
    ) -> Task | None:
        """See :meth:`AsyncEntroQ.try_claim`."""
        return self._thread.run(self._client.try_claim(queues, duration))

    def claim(
        self,
        queues: str | Iterable[str],
        duration: float | timedelta = DEFAULT_LEASE_SECONDS,
        *,
        poll: float | timedelta = DEFAULT_POLL_SECONDS,
        timeout: float | timedelta | None = None,
    ) -> Task:
        """See :meth:`AsyncEntroQ.claim`."""
        return self._thread.run(self._client.claim(queues, duration, poll=poll, timeout=timeout))

    def modify(
        self,
        modification: Modification | None = None,
        *,
        inserts: Iterable[TaskData] = (),
        changes: Iterable[TaskChange] = (),
        deletes: Iterable[TaskID] = (),
        depends: Iterable[TaskID] = (),
        claimant: str | None = None,
    ) -> ModifyResult:
        """See :meth:`AsyncEntroQ.modify`."""
        return self._thread.run(
            self._client.modify(
                modification,
                inserts=inserts,
                changes=changes,
                deletes=deletes,
                depends=depends,
                claimant=claimant,
            )
        )

    def renew_for(self, task: Task, duration: float | timedelta) -> Task:
        """See :meth:`AsyncEntroQ.renew_for`."""
        return self._thread.run(self._client.renew_for(task, duration))

    def do_with_renew(
        self, task: Task, lease: float | timedelta, work: Callable[[Task], T]
    ) -> tuple[Task, T]:
        """Run ``work(task)`` in this thread while the lease is renewed in the background.

        Sync code cannot be cancelled, so a lost lease is reported when ``work``
        returns: the DependencyError is raised instead of returning its result.
        """
        lease_s = duration_ms("lease", lease) / 1000.0
        held = RenewedLease(task, lease_s / 2, lambda t: self._client.renew_for(t, lease_s))

        async def start() -> None:
            # Not tied to a body task: a lost lease is only recorded.
            held._renewer = asyncio.get_running_loop().create_task(held._renew_loop())

        self._thread.run(start())
        try:
            result = work(task)
        finally:
            self._thread.run(held.stop())
        if held.lost is not None:
            raise held.lost
        return held.task, result

    def work(
        self,
        queues: str | Iterable[str],
        handler: Handler,
        options: WorkerOptions | None = None,
        *,
        handle_signals: bool = True,
        **option_values: Any,
    ) -> Worker:
        """Run a :class:`Worker` on this client until SIGTERM/SIGINT (or ``worker.stop()``).

        Blocks; returns the stopped worker. Sync handlers run in threads.
        """
        worker = Worker(self._client, queues, handler, options, **option_values)
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, frame: object) -> None:
                self._thread.loop.call_soon_threadsafe(worker.stop)

            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self._thread.run(worker.run())
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
        return worker

    def tasks(
        self,
        queue: str = "",
        *,
        claimant: str = "",
        ids: Iterable[str] = (),
        limit: int = 0,
        omit_values: bool = False,
    ) -> list[Task]:
        """See :meth:`AsyncEntroQ.tasks`."""
        return self._thread.run(
            self._client.tasks(
                queue, claimant=claimant, ids=ids, limit=limit, omit_values=omit_values
            )
        )

    def stream_tasks(
        self,
        queue: str = "",
        *,
        claimant: str = "",
        ids: Iterable[str] = (),
        limit: int = 0,
        omit_values: bool = False,
    ) -> Iterator[Task]:
        """See :meth:`AsyncEntroQ.stream_tasks`; yields tasks as they arrive."""
        stream = self._client.stream_tasks(
            queue, claimant=claimant, ids=ids, limit=limit, omit_values=omit_values
        )

        async def next_task() -> Task | None:
            try:
                return await anext(stream)
            except StopAsyncIteration:
                return None

        try:
            while (task := self._thread.run(next_task())) is not None:
                yield task
        finally:
            self._thread.run(_aclose(stream))

    def queue_stats(
        self, prefixes: Iterable[str] = (), exact: Iterable[str] = (), limit: int = 0
    ) -> dict[str, QueueStats]:
        """See :meth:`AsyncEntroQ.queue_stats`."""
        return self._thread.run(self._client.queue_stats(prefixes, exact, limit))

    def queues(
        self, prefixes: Iterable[str] = (), exact: Iterable[str] = (), limit: int = 0
    ) -> dict[str, int]:
        """See :meth:`AsyncEntroQ.queues`."""
        return self._thread.run(self._client.queues(prefixes, exact, limit))

    def queues_empty(self, prefixes: Iterable[str] = (), exact: Iterable[str] = ()) -> bool:
        """See :meth:`AsyncEntroQ.queues_empty`."""
        return self._thread.run(self._client.queues_empty(prefixes, exact))

    def wait_queues_empty(
        self,
        prefixes: Iterable[str] = (),
        exact: Iterable[str] = (),
        *,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> None:
        """See :meth:`AsyncEntroQ.wait_queues_empty`."""
        self._thread.run(
            self._client.wait_queues_empty(prefixes, exact, poll=poll, timeout=timeout)
        )

    def time(self) -> datetime:
        """See :meth:`AsyncEntroQ.time`."""
        return self._thread.run(self._client.time())


async def _aclose(stream: Any) -> None:
    aclose: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
