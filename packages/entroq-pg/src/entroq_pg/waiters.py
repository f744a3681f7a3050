"""Which queues somebody waits on, so that producers NOTIFY only those.

Every NOTIFY takes PostgreSQL's notify lock at commit and signals every
listening connection, and every handle's listener reads every notification:
with many small writers that costs more than the writes (8 one-task producers:
940 inserts/s with notifications, 3,349 without). Most writes have nobody
waiting: busy workers find tasks without waiting. So a handle whose claim is
about to wait first registers the claim's queues in the ``waiters`` table
(one row per queue and handle, valid for ``TTL_SECONDS``), and a notifier
sends a notification for a queue only if it has a live row there.

Why no wake-up is lost: a claim registers (committed) before its first try,
and a producer's notifier looks for rows after its data committed. If the
producer's commit came after the claim's try started, the notifier's look
came after the registration committed, so it sees it and notifies; if it
came before, the try saw the task. A waiting claim re-registers at least
every ``REFRESH_SECONDS`` (it never waits longer than that between checks),
so its row never lapses while it waits. The table is UNLOGGED (a crash
empties it); the listener reconnects after any outage, and a reconnect
forgets what was registered, so waiters register again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

TTL_SECONDS = 60
REFRESH_SECONDS = 20.0
_MAX_REMEMBERED = 4096  # queues whose registration this handle remembers


def register_sql(s: str) -> str:
    """Upsert this handle's rows for some queues; drop other handles' long-dead ones."""
    return (
        f"WITH gone AS (DELETE FROM {s}.waiters WHERE queue = ANY(%(qs)s::text[])"
        f" AND token <> %(t)s AND until < now() - interval '{TTL_SECONDS} seconds')"
        f" INSERT INTO {s}.waiters (queue, token, until)"
        f" SELECT q, %(t)s, now() + interval '{TTL_SECONDS} seconds'"
        f" FROM unnest(%(qs)s::text[]) AS q"
        f" ON CONFLICT (queue, token) DO UPDATE SET until = EXCLUDED.until"
    )


def unregister_sql(s: str) -> str:
    """Remove every row of this handle (on close)."""
    return f"DELETE FROM {s}.waiters WHERE token = %(t)s"


def notify_waited_sql(s: str) -> str:
    """NOTIFY the payloads of the queues that have a live waiter row, and no others."""
    return (
        "SELECT pg_notify(%(chan)s, p.payload)"
        " FROM unnest(%(queues)s::text[], %(payloads)s::text[]) AS p(queue, payload)"
        f" WHERE EXISTS (SELECT 1 FROM {s}.waiters w"
        " WHERE w.queue = p.queue AND w.until > now())"
    )


class WaiterRegistry:
    """Registers this handle's waited queues, at most once per REFRESH_SECONDS each."""

    def __init__(
        self,
        write: Callable[[list[str]], Awaitable[None]],
        generation: Callable[[], int],
    ) -> None:
        self._write = write  # upserts the rows of these queues
        self._generation = generation  # changes when registrations may have been lost
        self._seen_generation = generation()
        self._fresh_until: dict[str, float] = {}  # queue -> loop time its row is surely live
        self.writes = 0

    async def register(self, queues: Iterable[str]) -> None:
        """Make sure each queue has this handle's live row (a round trip only if stale)."""
        loop_now = asyncio.get_running_loop().time()
        generation = self._generation()
        if generation != self._seen_generation:
            self._fresh_until.clear()
            self._seen_generation = generation
        stale = sorted({q for q in queues if self._fresh_until.get(q, 0.0) <= loop_now})
        if not stale:
            return
        await self._write(stale)
        self.writes += 1
        if len(self._fresh_until) + len(stale) > _MAX_REMEMBERED:
            self._fresh_until.clear()
        # Our clock may run ahead of the database's a little: refresh well before the TTL.
        for queue in stale:
            self._fresh_until[queue] = loop_now + REFRESH_SECONDS
