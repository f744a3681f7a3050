"""Keeping a claimed task's lease alive while work runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from .errors import BackendUnavailable, DependencyError, RetryableConflict
from .types import Task

log = logging.getLogger("entroq.lease")

Renew = Callable[[Task], Awaitable[Task]]


class RenewedLease:
    """Renews a task every lease/2 in the background while its block runs.

    ``task`` always holds the latest renewed version: commit against it. If a
    renewal finds the task gone or taken, the block is cancelled and leaving it
    raises the DependencyError instead (someone else owns the task now).
    """

    def __init__(self, task: Task, interval: float, renew: Renew) -> None:
        self.task = task
        self.lost: DependencyError | None = None
        self._interval = interval
        self._renew = renew
        self._stop = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None
        self._body: asyncio.Task[object] | None = None

    async def __aenter__(self) -> RenewedLease:
        self._body = asyncio.current_task()
        self._renewer = asyncio.create_task(self._renew_loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        await self.stop()
        if self.lost is not None and exc_type is asyncio.CancelledError:
            assert self._body is not None
            if self._body.uncancel() == 0:
                raise self.lost from None
        if self.lost is not None and exc_type is None:
            raise self.lost
        return False

    async def stop(self) -> None:
        """Stop renewing; an in-flight renewal finishes first so ``task`` is current."""
        self._stop.set()
        if self._renewer is not None:
            await asyncio.shield(self._renewer)

    async def _renew_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._interval):
                    await self._stop.wait()
                return
            except TimeoutError:
                pass
            try:
                # A renewal slower than the interval is no use, and unbounded it
                # would hang on a service that stopped answering (and stop() waits
                # for it). Cut off, its outcome is unknown; if it landed, the next
                # renewal finds the version moved on and the lease counts as lost.
                async with asyncio.timeout(self._interval):
                    self.task = await self._renew(self.task)
            except DependencyError as exc:
                log.warning("lease lost for task %s: %s", self.task.as_id(), exc)
                self.lost = exc
                # Once stop() was called the block has ended and is waiting for this
                # renewal: leaving raises ``lost``. Cancelling it then would turn that
                # into a CancelledError nobody asked for (a Worker would stop).
                if self._body is not None and not self._stop.is_set():
                    self._body.cancel()
                return
            except (BackendUnavailable, RetryableConflict, TimeoutError) as exc:
                # The lease may still be valid; try again at the next interval.
                log.warning("renewal of task %s failed, will retry: %s", self.task.as_id(), exc)
