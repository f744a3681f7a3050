"""Runs one async conformance case in a fresh event loop with its own clients."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..backend import Backend
from ..client import AsyncEntroQ

BackendOpener = Callable[[], Awaitable[Backend]]
Case = TypeVar("Case", bound=Callable[..., Awaitable[None]])

# A case that hangs fails instead of stalling the whole run.
CASE_TIMEOUT_SECONDS = 120.0


class Harness:
    """What a conformance case gets: clients on one store and unique queue names."""

    def __init__(self, opener: BackendOpener) -> None:
        self._opener = opener
        self._clients: list[AsyncEntroQ] = []
        self.prefix = f"conf-{uuid.uuid4().hex[:12]}/"
        self.eq: AsyncEntroQ = None  # type: ignore[assignment]  # set by start()

    async def start(self) -> None:
        """Open the default client."""
        self.eq = await self.client()

    async def client(self, claimant: str | None = None) -> AsyncEntroQ:
        """Open another client (its own backend handle) onto the same store."""
        client = AsyncEntroQ(await self._opener(), claimant=claimant)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        """Close every client this harness opened."""
        for client in reversed(self._clients):
            await client.aclose()

    def q(self, name: str = "q") -> str:
        """A queue name unique to this case."""
        return self.prefix + name

    async def wait_past(self, when: datetime) -> None:
        """Sleep until the backend's clock is past ``when``."""
        while True:
            now = await self.eq.time()
            if now > when:
                return
            remaining = (when - now).total_seconds()
            await asyncio.sleep(min(max(remaining, 0.005) + 0.005, 0.5))

    async def in_ms(self, ms: int) -> datetime:
        """The backend's now plus ``ms`` milliseconds."""
        return await self.eq.time() + timedelta(milliseconds=ms)


def conformance(case: Case) -> Callable[[Any, BackendOpener], None]:
    """Turn ``async def case(self, h: Harness)`` into a sync pytest test.

    Each case runs in its own event loop (``asyncio.run``) so that backends bound to a
    loop are opened and closed inside it.
    """

    @functools.wraps(case)
    def test(self: Any, backend_opener: BackendOpener) -> None:
        async def run() -> None:
            harness = Harness(backend_opener)
            try:
                await harness.start()
                async with asyncio.timeout(CASE_TIMEOUT_SECONDS):
                    await case(self, harness)
            finally:
                await harness.close()

        asyncio.run(run())

    # pytest must see the fixture argument, not the case's (self, h) signature.
    del test.__wrapped__
    return test
