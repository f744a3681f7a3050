"""The blocking claim, built once from try_claim plus a backend's wake-up source."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .requests import ClaimRequest
from .types import Task
from .wakeups import QueueWakeups

DEFAULT_POLL_SECONDS = 30.0

# Returns seconds until the earliest known future arrival in the given queues, or None.
NextArrival = Callable[[tuple[str, ...]], Awaitable[float | None]]


async def claim_until_found(
    request: ClaimRequest,
    try_claim: Callable[[ClaimRequest], Awaitable[Task | None]],
    wakeups: QueueWakeups,
    poll: float = DEFAULT_POLL_SECONDS,
    next_arrival: NextArrival | None = None,
) -> Task:
    """Try to claim until a task is found.

    Waits between tries until a wake-up for one of the queues, the earliest known
    future arrival (if ``next_arrival`` is given), or ``poll`` seconds, whichever
    comes first. The caller's deadline and cancellation end it (``asyncio.timeout``
    raises TimeoutError; cancellation raises CancelledError).
    """
    poll = poll if poll > 0 else DEFAULT_POLL_SECONDS
    with wakeups.watch(request.queues) as waiter:
        while True:
            task = await try_claim(request)
            if task is not None:
                return task
            timeout = poll
            if next_arrival is not None:
                soonest = await next_arrival(request.queues)
                if soonest is not None:
                    # A few ms late rather than early, so the task is due when we look.
                    timeout = min(timeout, max(soonest, 0.0) + 0.002)
            await waiter.wait(timeout)
