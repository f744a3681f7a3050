"""Running core Workers in a test and always shutting them down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from entroq_core import AsyncEntroQ
from entroq_core.worker import Worker


@asynccontextmanager
async def running(
    workers: list[Worker], clients: list[AsyncEntroQ]
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run ``workers`` (yielding their tasks); on the way out, however it goes,
    stop them, wait for them to end and close ``clients``."""
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield runs
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*runs, return_exceptions=True)
        for c in clients:
            await c.aclose()
