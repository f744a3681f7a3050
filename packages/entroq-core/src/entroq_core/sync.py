"""EntroQ: the AsyncEntroQ API for synchronous code, on one private event-loop thread."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from .claiming import DEFAULT_POLL_SECONDS
from .client import DEFAULT_LEASE_SECONDS, AsyncEntroQ, duration_ms
from .errors import BackendUnavailable
from .lease import RenewedLease
from .modification import Modification
from .types import ModifyResult, QueueStats, Task, TaskChange, TaskData, TaskID
from .worker import Handler, Worker, WorkerOptions

T = TypeVar("T")


# How long closing a client lets calls still waiting in other threads (a Worker
# releasing its tasks) finish after they are cancelled.
_CLOSE_GRACE_SECONDS = 10.0


class _LoopThread:
    """An event loop running forever in a daemon thread, and the calls on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="entroq-loop", daemon=True
        )
        self._calls: set[asyncio.Task[Any]] = set()  # callers' coroutines running now
        self._waiting: set[Future[Any]] = set()  # what callers' threads wait on
        self._lock = threading.Lock()  # a call is refused, or waited for by close()
        self.closing = False
        self._thread.start()

    def is_current(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it in this thread."""
        if self.is_current():
            coro.close()
            raise RuntimeError(
                "the sync EntroQ client was called from its own event loop thread (an async "
                "handler or coroutine), where it would wait for itself forever; use its "
                "AsyncEntroQ there: eq.async_client"
            )
        with self._lock:
            if self.closing:
                coro.close()
                raise BackendUnavailable("this EntroQ client is closed")
            future: Future[T] = asyncio.run_coroutine_threadsafe(self._tracked(coro), self.loop)
            self._waiting.add(future)
        try:
            return future.result()
        except CancelledError:
            if self.closing:
                raise BackendUnavailable("this EntroQ client was closed during the call") from None
            raise
        except BaseException:
            # KeyboardInterrupt in the caller: do not leave the coroutine running.
            future.cancel()
            raise
        finally:
            with self._lock:
                self._waiting.discard(future)

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        call = asyncio.current_task()
        assert call is not None
        self._calls.add(call)
        try:
            return await coro
        finally:
            self._calls.discard(call)

    def close(self, last: Coroutine[Any, Any, None]) -> None:
        """Refuse new calls, cancel those still running in other threads (a Worker
        releases its tasks then), run ``last``, and stop the loop."""
        with self._lock:
            if self.closing:
                last.close()
                return
            self.closing = True

        async def shut_down() -> None:
            calls = set(self._calls)
            for call in calls:
                call.cancel()
            if calls:
                await asyncio.wait(calls, timeout=_CLOSE_GRACE_SECONDS)
            await last

        try:
            asyncio.run_coroutine_threadsafe(shut_down(), self.loop).result()
        finally:
            self.stop()
            # Calls that outlived the grace would otherwise wait on a stopped loop.
            with self._lock:
                left = list(self._waiting)
            for future in left:
                if not future.done():  # set_exception: cancel() does nothing once running
                    future.set_exception(
                        BackendUnavailable("this EntroQ client was closed during the call")
                    )

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
        """Close the backend and stop the loop thread (again: nothing happens).

        Calls still waiting in other threads end with BackendUnavailable; a
        ``work()`` running in another thread releases its tasks first.
        """
        if self._thread.is_current():
            raise RuntimeError("close the sync EntroQ client from outside its event loop thread")
        self._thread.close(self._client.aclose())

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
