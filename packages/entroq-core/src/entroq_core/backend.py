"""The narrow async interface every storage backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from .requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from .types import ModifyResult, QueueStats, Task


@runtime_checkable
class Backend(Protocol):
    """Storage for tasks. Requests arrive already validated (see ``requests``).

    ``claim`` blocks until a task is claimed; most backends build it with
    :func:`entroq_core.claiming.claim_until_found` from ``try_claim`` and their
    wake-up source. Deadlines and cancellation come from the caller's task
    (``asyncio.timeout`` / ``Task.cancel``).
    """

    async def try_claim(self, request: ClaimRequest) -> Task | None:
        """Claim a random available task from the listed queues, or return None."""
        ...

    async def claim(self, request: ClaimRequest, poll: float) -> Task:
        """Claim a task, waiting for one; retry at least every ``poll`` seconds."""
        ...

    async def modify(self, request: ModifyRequest) -> ModifyResult:
        """Apply the modification atomically or raise DependencyError."""
        ...

    def tasks(self, request: TasksRequest) -> AsyncIterator[Task]:
        """Yield the matching tasks (a best-effort read)."""
        ...

    async def queue_stats(self, request: QueuesRequest) -> dict[str, QueueStats]:
        """Return stats for the matching queues."""
        ...

    async def time(self) -> datetime:
        """Return the backend's clock."""
        ...

    async def aclose(self) -> None:
        """Release connections and wake nothing further."""
        ...
