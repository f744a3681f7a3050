"""Cross-process wake-ups: one LISTEN connection feeding core's QueueWakeups.

A committing transaction that made tasks available sends one NOTIFY per queue
with payload ``<sender token>|<count>|<queue>``. Every backend handle listens on
its schema's channel and rings up to ``count`` local waiters of that queue; its
own notifications are skipped (it rang its waiters directly at commit). One
that put tasks off to a later time sends ``<sender token>|@<at ms>|<queue>``
with the earliest, and waiters that would sleep past it look again. If the
listening connection drops, the listener reconnects with backoff and then wakes
every waiter, because notifications sent meanwhile are lost; until then waiters
re-check at the short fallback interval the backend gives the claim loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from typing import Any

import psycopg

from entroq_core.wakeups import QueueWakeups

from .schema import quote_ident

log = logging.getLogger("entroq_pg")

MAX_BACKOFF = 2.0


def channel_name(schema: str) -> str:
    """The NOTIFY channel of a schema (identifiers are at most 63 bytes)."""
    name = f"entroq_{schema}"
    if len(name.encode("utf-8")) <= 63:
        return name
    return "entroq_" + hashlib.sha1(schema.encode("utf-8")).hexdigest()


def payload(token: str, count: int, queue: str) -> str:
    """Encode one wake-up notification: ``count`` tasks of ``queue`` available now."""
    return f"{token}|{count}|{queue}"


def arrival_payload(token: str, at_ms: int, queue: str) -> str:
    """Encode one future arrival: a task of ``queue`` comes due at ``at_ms``.

    The ``@`` keeps it apart from a count, and a reader that knows only counts
    ignores it (its count is not a number).
    """
    return f"{token}|@{at_ms}|{queue}"


def parse_payload(text: str) -> tuple[str, int, str] | None:
    """Decode a count notification, or None if it is not one of ours."""
    token, _, rest = text.partition("|")
    count, _, queue = rest.partition("|")
    if not queue or not count.isdigit():
        return None
    return token, int(count), queue


def parse_arrival(text: str) -> tuple[str, int, str] | None:
    """Decode an arrival notification (token, at_ms, queue), or None."""
    token, _, rest = text.partition("|")
    at, _, queue = rest.partition("|")
    if not queue or not at.startswith("@") or not at[1:].isdigit():
        return None
    return token, int(at[1:]), queue


class Listener:
    """Keeps one LISTEN connection up and turns notifications into wake-ups."""

    def __init__(
        self,
        conninfo: str,
        channel: str,
        token: str,
        wakeups: QueueWakeups,
        connect_kwargs: dict[str, Any],
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._token = token
        self._wakeups = wakeups
        self._kwargs = connect_kwargs
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._listening = asyncio.Event()
        self.reconnects = 0

    @property
    def listening(self) -> bool:
        """True while notifications can arrive (waiters need not poll fast)."""
        return self._listening.is_set()

    async def start(self, wait: float) -> None:
        """Start listening; wait up to ``wait`` seconds for the first LISTEN to succeed."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"entroq-pg listener {self._channel}"
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._listening.wait()

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_conn()

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, **self._kwargs
                )
                self._conn = conn
                await conn.execute(f"LISTEN {quote_ident(self._channel)}")
                self._listening.set()
                if not first:
                    self.reconnects += 1
                    log.info("entroq-pg listener reconnected to channel %s", self._channel)
                    # Whatever was notified while we were away is lost: re-check all.
                    self._wakeups.notify_all()
                first = False
                delay = 0.05
                async for note in conn.notifies():
                    self._deliver(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: drop the connection and retry
                if self._listening.is_set():
                    log.warning("entroq-pg listener lost its connection: %s", exc)
                self._listening.clear()
                await self._close_conn()
                # Waiters fall back to fast polling now; wake them so they start.
                self._wakeups.notify_all()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF)

    def _deliver(self, text: str) -> None:
        parsed = parse_payload(text)
        if parsed is not None:
            token, count, queue = parsed
            if token != self._token:
                self._wakeups.notify(queue, max(count, 1))
            return
        arrival = parse_arrival(text)
        if arrival is not None:
            token, at_ms, queue = arrival
            if token != self._token:
                self._wakeups.arrival(queue, at_ms)
