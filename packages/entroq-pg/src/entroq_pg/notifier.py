"""Sending wake-up notifications off the commit path.

A NOTIFY inside a data transaction takes PostgreSQL's global notify lock at
commit and holds it until the commit record is flushed, so every notifying
commit waits for the previous one's fsync: write rates collapse to a few
hundred per second. Instead, a modification commits without NOTIFY and hands
its per-queue counts to this notifier, which sends them (coalesced: one
NOTIFY per queue per batch) on its own connection with
``synchronous_commit = off``: a notify-only transaction has nothing to lose in
a crash, so its commit need not wait for the disk, and the lock is held only
for moments. Notifications go out after the data is committed and visible,
and only for queues that some handle registered as waited on (``waiters``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import psycopg

from .listener import arrival_payload, payload

log = logging.getLogger("entroq_pg")


class Notifier:
    """Coalesces per-queue wake-up counts and NOTIFYs them from one connection."""

    def __init__(self, conninfo: str, channel: str, token: str, send_sql: str) -> None:
        self._conninfo = conninfo
        self._send_sql = send_sql  # waiters.notify_waited_sql for the schema
        self._channel = channel
        self._token = token
        self._pending: dict[str, int] = {}
        self._arrivals: dict[str, int] = {}  # queue -> earliest future at, ms
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def start(self) -> None:
        """Start the sending task in the running loop."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"entroq-pg notifier {self._channel}"
        )

    def send(self, counts: dict[str, int]) -> None:
        """Queue wake-ups (queue -> tasks made available); returns at once."""
        if not counts:
            return
        for queue, n in counts.items():
            self._pending[queue] = self._pending.get(queue, 0) + n
        self._idle.clear()
        self._ready.set()

    def send_arrivals(self, arrivals: dict[str, int]) -> None:
        """Queue future arrivals (queue -> earliest at, ms); returns at once."""
        if not arrivals:
            return
        for queue, at in arrivals.items():
            self._arrivals[queue] = min(at, self._arrivals.get(queue, at))
        self._idle.clear()
        self._ready.set()

    async def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for everything queued to be sent."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    async def aclose(self) -> None:
        """Send what is pending (briefly), then stop and close the connection."""
        await self.flush(1.0)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            await conn.execute("SET synchronous_commit = off")
            self._conn = conn
        return self._conn

    async def _run(self) -> None:
        delay = 0.05
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._pending = self._pending, {}
            arrivals, self._arrivals = self._arrivals, {}
            if not batch and not arrivals:
                self._idle.set()
                continue
            try:
                conn = await self._connect()
                queues = [*batch, *arrivals]
                payloads = [payload(self._token, n, q) for q, n in batch.items()]
                payloads += [arrival_payload(self._token, at, q) for q, at in arrivals.items()]
                await conn.execute(
                    self._send_sql,
                    {"chan": self._channel, "queues": queues, "payloads": payloads},
                )
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the wake-ups and try again on a new connection
                log.warning("entroq-pg notifier: %s", exc)
                for queue, n in batch.items():
                    self._pending[queue] = self._pending.get(queue, 0) + n
                self.send_arrivals(arrivals)
                broken, self._conn = self._conn, None
                if broken is not None:
                    with contextlib.suppress(Exception):
                        await broken.close()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
                self._ready.set()
                continue
            if not self._pending:
                self._idle.set()
