"""The worker loop of SPEC section 5: claim, work under a renewed lease, commit once.

A handler receives the claimed task and returns what should happen to it:

- ``None``: the task is done; delete it.
- a :class:`Modification`: commit it atomically (typically delete or move the task
  plus inserts of follow-up tasks). References to the claimed task are rewritten to
  its latest renewed version at commit time, so handlers build them from the task
  they were given.

A handler that raises :class:`MoveToError` sends the task to its error queue now;
any other exception is a retryable failure (attempt+1, error appended, arrival
delayed by the backoff), and after ``max_attempts`` failures the task goes to the
error queue too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from .backoff import Backoff
from .client import AsyncEntroQ, duration_ms, queue_tuple
from .errors import (
    BackendUnavailable,
    DependencyError,
    EntroQError,
    InvalidArgument,
    RetryableConflict,
)
from .modification import Modification
from .requests import ClaimRequest
from .threads import in_own_thread
from .timeutil import utcnow
from .types import Task, TaskChange, TaskID

log = logging.getLogger("entroq.worker")

HandlerResult = Modification | None
Handler = Callable[[Task], Awaitable[HandlerResult]] | Callable[[Task], HandlerResult]

# Pauses between failed claims (the backend or entroq-svc down or restarting),
# per slot: short at first so a restart costs little, growing to a few seconds
# so a long outage is not hammered.
CLAIM_RETRY = Backoff(base=0.25, factor=2.0, cap=5.0)
# How long a worker being cancelled waits for the claim it cancelled to end, so
# a task that claim took anyway is released, not left leased to nobody.
_CLAIM_SETTLE_SECONDS = 1.0
# A commit or release that starts when the grace is (nearly) spent still gets this
# long: enough for a service that answers, not a wait on one that does not.
_LAST_WRITE_SECONDS = 1.0


class _ClaimFailures:
    """Failed claims in a row, across a worker's slots: one warning when claims
    start failing and one line when they work again, not a line per slot per try."""

    def __init__(self, queues: tuple[str, ...]) -> None:
        self._queues = list(queues)
        self._in_a_row = 0
        self._since = 0.0

    def failed(self, exc: BaseException) -> None:
        self._in_a_row += 1
        if self._in_a_row == 1:
            self._since = time.monotonic()
            log.warning(
                "claim from %s failed; retrying, pausing up to %gs between tries: %s",
                self._queues,
                CLAIM_RETRY.cap,
                exc,
            )
        else:
            log.debug(
                "claim from %s failed again (%d in a row): %s", self._queues, self._in_a_row, exc
            )

    def succeeded(self) -> None:
        if self._in_a_row:
            log.warning(
                "claims from %s work again, after %d failures over %.1fs",
                self._queues,
                self._in_a_row,
                time.monotonic() - self._since,
            )
            self._in_a_row = 0


class MoveToError(Exception):
    """Raised by a handler to send its task to the error queue at once."""


class _GraceOver(Exception):
    """The handler outlived the shutdown grace period."""


def default_error_queue(queue: str) -> str:
    """``<queue>/err``: where tasks go after too many failures."""
    return f"{queue}/err"


@dataclass
class WorkerOptions:
    """How a worker claims, retries and stops."""

    concurrency: int = 1
    lease: float = 30.0
    max_attempts: int = 5
    error_queue: Callable[[str], str] = default_error_queue
    backoff: Backoff = field(default_factory=Backoff)
    poll: float = 30.0
    grace: float = 10.0
    handler_timeout: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int):
            raise InvalidArgument("concurrency", self.concurrency, "must be an integer")
        if self.concurrency < 1:
            raise InvalidArgument("concurrency", self.concurrency, "must be at least 1")
        duration_ms("lease", self.lease)
        duration_ms("poll", self.poll)
        if self.max_attempts < 1:
            raise InvalidArgument("max_attempts", self.max_attempts, "must be at least 1")
        if self.grace < 0:
            raise InvalidArgument("grace", self.grace, "must not be negative")
        if self.handler_timeout is not None and self.handler_timeout <= 0:
            raise InvalidArgument("handler_timeout", self.handler_timeout, "must be positive")


def settles(mod: Modification, task: Task) -> bool:
    """Whether ``mod`` deletes or changes ``task``, so committing it ends this claim."""
    return any(d.id == task.id for d in mod.deletes) or any(
        c.old.id == task.id for c in mod.changes
    )


def retarget(mod: Modification, latest: Task) -> Modification:
    """Point a handler's references to its task at the latest renewed version."""
    old_ids = {latest.id}
    new_id = latest.as_id()

    def fix(ref: TaskID) -> TaskID:
        return new_id if ref.id in old_ids else ref

    return Modification(
        inserts=list(mod.inserts),
        changes=[TaskChange(fix(c.old), c.new) if c.old.id in old_ids else c for c in mod.changes],
        deletes=[fix(d) for d in mod.deletes],
        depends=[fix(d) for d in mod.depends],
    )


class Worker:
    """Runs a handler over tasks claimed from ``queues`` until stopped.

    Example::

        async def handle(task: Task) -> Modification | None:
            print(task.value)
            return None  # done: delete it

        worker = Worker(eq, "jobs", handle, concurrency=4)
        worker.install_signal_handlers()
        await worker.run()
    """

    def __init__(
        self,
        client: AsyncEntroQ,
        queues: str | Iterable[str],
        handler: Handler,
        options: WorkerOptions | None = None,
        **option_values: object,
    ) -> None:
        self.client = client
        self.queues = queue_tuple(queues)
        if not self.queues:
            raise InvalidArgument("queues", list(self.queues), "at least one queue is required")
        if not callable(handler):
            raise InvalidArgument("handler", handler, "must be callable")
        self.handler = handler
        ClaimRequest(client.claimant, self.queues, 1)  # validates the queue names now
        base = options or WorkerOptions()
        self.options = replace(base, **option_values) if option_values else base  # type: ignore[arg-type]
        self._stopping = asyncio.Event()
        self._stopped_at: float | None = None  # time.monotonic() of the first stop()
        self._claim_failures = _ClaimFailures(self.queues)
        self.processed = 0
        self.failed = 0

    # --- control ---------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running handlers get ``grace`` seconds to finish."""
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stopping.is_set()

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT stop the worker cleanly (call from the running loop)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info(
            "received %s: stopping, %.1fs grace for running tasks", sig.name, self.options.grace
        )
        self.stop()

    async def run(self) -> None:
        """Claim and process tasks with ``concurrency`` slots until stopped."""
        log.info(
            "worker %s on %s, concurrency %d",
            self.client.claimant,
            list(self.queues),
            self.options.concurrency,
        )
        slots = [asyncio.create_task(self._slot(i)) for i in range(self.options.concurrency)]
        try:
            await asyncio.gather(*slots)
        finally:
            for s in slots:
                s.cancel()
            await asyncio.gather(*slots, return_exceptions=True)
        log.info("worker stopped after %d tasks (%d failures)", self.processed, self.failed)

    # --- one slot ----------------------------------------------------------

    async def _slot(self, number: int) -> None:
        failed_claims = 0  # this slot's, in a row: its pauses grow with them
        while not self.stopping:
            try:
                task = await self._claim()
            except (EntroQError, TimeoutError) as exc:
                failed_claims += 1
                self._claim_failures.failed(exc)
                await self._pause(CLAIM_RETRY.delay(failed_claims))
                continue
            if task is None:
                continue
            if failed_claims:
                failed_claims = 0
                self._claim_failures.succeeded()
            await self._process(task)

    async def _claim(self) -> Task | None:
        """A claimed task, or None once the worker is stopping; raises if the claim failed."""
        claim = asyncio.create_task(
            self.client.claim(self.queues, self.options.lease, poll=self.options.poll)
        )
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The worker itself is cancelled: a claim left running could still take
            # a task that nobody would then work on until its lease ran out.
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                # A claim whose answer is already on its way may still finish.
                await asyncio.wait({claim}, timeout=_CLAIM_SETTLE_SECONDS)
            won = None
            if claim.done() and not claim.cancelled() and claim.exception() is None:
                won = claim.result()
            if won is not None:
                await asyncio.shield(self._release(won))
            raise
        finally:
            stop.cancel()
        if not claim.done():
            claim.cancel()
            try:
                return await claim
            except asyncio.CancelledError:
                return None
            except EntroQError:
                return None
        return claim.result()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the worker is stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _process(self, task: Task) -> None:
        opts = self.options
        log.info("task %s attempt %d: started", task.as_id(), task.attempt + 1)
        held = self.client.renewing(task, opts.lease)
        outcome: HandlerResult | BaseException
        try:
            async with held:
                outcome = await self._run_handler(task)
        except DependencyError as lost:
            log.warning("task %s: lease lost while working, dropped: %s", task.id, lost)
            return
        except _GraceOver:
            # Shutting down and the handler did not finish in time: hand the task
            # back now rather than make others wait for the lease to expire.
            await self._release(held.task)
            return
        except asyncio.CancelledError:
            await asyncio.shield(self._release(held.task))
            raise
        await self._commit(held.task, outcome)

    async def _run_handler(self, task: Task) -> HandlerResult | BaseException:
        """The handler's result, or the exception it raised (as a value)."""
        limit = self.options.handler_timeout
        try:
            async with asyncio.timeout(limit):
                return await self._with_grace(self._call_handler(task))
        except (DependencyError, _GraceOver):
            raise
        except TimeoutError as exc:
            return exc if str(exc) else TimeoutError(f"handler took longer than {limit}s")
        except Exception as exc:
            return exc

    async def _with_grace(self, work: Awaitable[HandlerResult]) -> HandlerResult:
        """Await the handler; once stop() is called it has ``grace`` seconds left."""
        handler = asyncio.ensure_future(work)
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({handler, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not handler.done():
                done, _ = await asyncio.wait({handler}, timeout=self.options.grace)
                if not done:
                    handler.cancel()
                    raise _GraceOver()
            return handler.result()
        finally:
            stop.cancel()
            if not handler.done():
                handler.cancel()

    async def _call_handler(self, task: Task) -> HandlerResult:
        if inspect.iscoroutinefunction(self.handler):
            return await self.handler(task)  # type: ignore[no-any-return]
        result = await in_own_thread(self.handler, task, name=f"entroq-handler-{task.id}")
        if inspect.isawaitable(result):
            return await result
        return result

    async def _commit(self, task: Task, outcome: HandlerResult | BaseException) -> None:
        if isinstance(outcome, BaseException):
            await self._fail(task, outcome)
            return
        if outcome is None:
            mod = Modification().delete(task)
        elif isinstance(outcome, Modification):
            if not settles(outcome, task):
                # Committed as it is, it would leave the task to be claimed and its
                # result committed again after the lease, over and over.
                await self._fail(
                    task,
                    ValueError(
                        f"handler's Modification neither deletes nor changes task {task.id}; "
                        "add .delete(task) or .change(task, ...), or return None to delete it"
                    ),
                )
                return
            mod = retarget(outcome, task)
        else:
            await self._fail(
                task,
                TypeError(
                    f"handler returned {type(outcome).__name__}, expected Modification or None"
                ),
            )
            return
        try:
            await self._write(mod)
        except DependencyError as exc:
            log.warning("task %s: commit refused, another worker owns it: %s", task.id, exc)
            return
        except InvalidArgument as exc:
            await self._fail(task, exc)
            return
        except (BackendUnavailable, RetryableConflict, TimeoutError) as exc:
            # The lease will expire and someone will redo the work; nothing is lost.
            log.warning("task %s: commit failed, lease will expire: %s", task.id, exc)
            return
        self.processed += 1
        log.info("task %s attempt %d: done", task.id, task.attempt + 1)

    async def _fail(self, task: Task, exc: BaseException) -> None:
        opts = self.options
        self.failed += 1
        attempt = task.attempt + 1
        reason = f"attempt {attempt}: {type(exc).__name__}: {exc}"
        if isinstance(exc, MoveToError) or attempt >= opts.max_attempts:
            target = opts.error_queue(task.queue)
            mod = Modification().change(task, queue=target, attempt=attempt, append_err=reason)
            log.error("task %s %s; moved to %s", task.id, reason, target)
        else:
            delay = opts.backoff.delay(attempt)
            mod = Modification().change(
                task,
                attempt=attempt,
                append_err=reason,
                at=utcnow() + timedelta(seconds=delay),
            )
            log.warning("task %s %s; retry in %.1fs", task.id, reason, delay)
        try:
            await self._write(mod)
        except (EntroQError, TimeoutError) as commit_error:
            log.warning("task %s: could not record the failure: %s", task.id, commit_error)

    async def _release(self, task: Task) -> None:
        try:
            await self._write(Modification().change(task))
            log.info("task %s: released for others at shutdown", task.id)
        except (EntroQError, TimeoutError) as exc:
            log.warning("task %s: release failed, its lease will expire: %s", task.id, exc)

    async def _write(self, mod: Modification) -> None:
        """Commit, fail or release a task, waiting at most a lease (a slower write
        has most likely lost the lease anyway) and, once stopping, no longer than
        what is left of the grace: a service that stopped answering must not keep
        the worker from stopping. Past the limit the outcome is unknown, which a
        version-checked write makes safe: the lease expires and the task is redone
        only if this write did not land."""
        limit = self.options.lease
        if self._stopped_at is not None:
            left = self._stopped_at + self.options.grace - time.monotonic()
            limit = min(limit, max(left, _LAST_WRITE_SECONDS))
        try:
            async with asyncio.timeout(limit):
                await self.client.modify(mod)
        except TimeoutError as exc:
            if isinstance(exc, EntroQError):
                raise
            raise TimeoutError(f"the service did not answer within {limit:g}s") from None
