"""The PostgreSQL backend, ``pg://`` and ``postgresql://``, over psycopg 3's async pool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed

from entroq_core.claiming import claim_until_found
from entroq_core.coalescing import Coalescer
from entroq_core.dependencies import Holding, check_dependencies
from entroq_core.errors import (
    BackendUnavailable,
    DependencyError,
    EntroQError,
    InvalidArgument,
    PermissionDenied,
    RetryableConflict,
)
from entroq_core.ids import new_task_id
from entroq_core.requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from entroq_core.timeutil import utcnow
from entroq_core.types import ModifyResult, QueueStats, Task, TaskData, TaskID
from entroq_core.wakeups import QueueWakeups, future_arrivals

from .config import PgConfig, parse_url
from .errors import (
    is_connection_error,
    is_retryable,
    server_never_ran_it,
    translate,
    translate_connect,
)
from .listener import Listener, channel_name
from .modify_sql import Shape
from .modify_sql import build as build_modify
from .notifier import Notifier
from .schema import check_current, current_version, migrate, quote_ident
from .statements import MAX_CLAIM_BATCH, Statements, render
from .waiters import (
    REFRESH_SECONDS,
    WaiterRegistry,
    notify_waited_sql,
    register_sql,
    unregister_sql,
)

log = logging.getLogger("entroq_pg")

T = TypeVar("T")
ZERO = timedelta(0)
_NOT_SIMPLE = object()
# Batches of plain inserts at least this big go through COPY.
COPY_THRESHOLD = 64
COPY_TYPES = [
    "text",
    "text",
    "int8",
    "timestamptz",
    "int4",
    "int8",
    "int4",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "bytea",
]
NOW_QUERY = "SELECT date_trunc('milliseconds', now())"
BEGIN_AND_NOW_QUERY = "BEGIN; " + NOW_QUERY
Conn = psycopg.AsyncConnection[Any]
Row = Sequence[Any]

# Group commit: statements of one lane in flight at once, and calls per batch.
# One in flight makes the biggest batches: with 8 workers on one handle it took
# 720 us of machine CPU per claim+delete cycle, against 1,000 with two in flight
# and 1,230 with a handle per worker (benchmarks/pg_reference.py).
IN_FLIGHT = 1
MAX_BATCH = MAX_CLAIM_BATCH
# Claim lanes kept for queues no call is using, before idle ones are dropped.
MAX_IDLE_LANES = 256
# While the LISTEN connection is down, waiting claims re-check this often.
FALLBACK_POLL_SECONDS = 1.0
# A queue listing reads this many tasks per query (see _pages).
PAGE_SIZE = 1000
# A listing reads values by id in groups of about this many bytes, so a page of
# large values is never in memory at once.
_VALUE_BYTES_PER_READ = 4 * 1024 * 1024
# Before every arrival time a task can have (the claim index's order starts here).
_LISTING_START = datetime(1, 1, 2, tzinfo=UTC)
# Columns of a statements.tasks_page row after the task's own: at and rnd as
# stored (where the next page starts), the value's size, and whether the
# claimant filter shows the task.
_PAGE_AT, _PAGE_RND, _PAGE_VALUE_SIZE, _PAGE_SHOWN = 11, 12, 13, 14
# Python cannot represent later instants; a lease ending after this is refused.
LATEST_LEASE_END = datetime(9999, 12, 1, tzinfo=UTC)
# Leases this long end before LATEST_LEASE_END for any clock before the year 9000.
_SURELY_REPRESENTABLE_MS = 900 * 365 * 86_400_000


def _utc(when: datetime) -> datetime:
    if when.tzinfo is UTC:
        return when
    if when.utcoffset() == ZERO:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _by_size(rows: list[Row], budget: int) -> Iterator[list[Row]]:
    """Consecutive groups of listing rows whose values add up to at most
    ``budget`` bytes, each with at least one row."""
    group: list[Row] = []
    size = 0
    for row in rows:
        if group and size + row[_PAGE_VALUE_SIZE] > budget:
            yield group
            group, size = [], 0
        group.append(row)
        size += row[_PAGE_VALUE_SIZE]
    if group:
        yield group


def row_to_task(row: Row) -> Task:
    """Build a Task from a row in ``statements.TASK_COLUMNS`` order."""
    return Task(
        queue=row[0],
        id=row[1],
        version=row[2],
        at=_utc(row[3]),
        claimant=row[4],
        value=bytes(row[5]),
        created=_utc(row[6]),
        modified=_utc(row[7]),
        claims=row[8],
        attempt=row[9],
        err=row[10],
    )


# One reusable binary cursor per pooled connection: creating a cursor per call
# costs about a third of a trivial statement's client time.
_cursors: weakref.WeakKeyDictionary[Conn, psycopg.AsyncCursor[Any]] = weakref.WeakKeyDictionary()


def _cursor(conn: Conn) -> psycopg.AsyncCursor[Any]:
    cur = _cursors.get(conn)
    if cur is None or cur.closed:
        cur = _cursors[conn] = conn.cursor(binary=True)
    return cur


async def _configure(conn: Conn) -> None:
    # Times come back as UTC; nothing depends on it but it saves conversions.
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.execute("SET plan_cache_mode = force_generic_plan")


class PgBackend:
    """Tasks in PostgreSQL; every decision on the database clock."""

    def __init__(self, config: PgConfig) -> None:
        self._config = config
        self._sql: Statements = render(config.schema)
        self._register_sql = register_sql(quote_ident(config.schema))
        self._unregister_sql = unregister_sql(quote_ident(config.schema))
        self._channel = channel_name(config.schema)
        self._token = uuid.uuid4().hex[:12]
        self._wakeups = QueueWakeups()
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener: Listener | None = None
        self._notifier: Notifier | None = None
        self._waiters: WaiterRegistry | None = None
        self._probe: asyncio.Task[None] | None = None
        self._probe_result: asyncio.Event | None = None
        self._down_reason = ""
        self._closed = False
        # Group commit (config.batch_writes): one lane of claims per queue, so
        # claims on different queues never wait for each other; one for deletes.
        self._claim_lanes: dict[str, Coalescer[_ClaimArgs, Task | None]] = {}
        self._deletes: Coalescer[_Delete, bool] = Coalescer(
            self._delete_one, self._delete_many, max_in_flight=IN_FLIGHT, max_batch=MAX_BATCH
        )

    # --- lifecycle -------------------------------------------------------

    @property
    def config(self) -> PgConfig:
        """The settings this backend was opened with."""
        return self._config

    @property
    def wakeups(self) -> QueueWakeups:
        """The local registry of waiting claims (fed by this process and by NOTIFY)."""
        return self._wakeups

    @property
    def listening(self) -> bool:
        """True while cross-process notifications are being received."""
        return self._listener is not None and self._listener.listening

    def _new_pool(self) -> AsyncConnectionPool[Conn]:
        return AsyncConnectionPool(
            self._config.conninfo,
            kwargs={"autocommit": True},
            min_size=self._config.pool_min,
            max_size=self._config.pool_max,
            timeout=self._config.pool_timeout,
            # Give up reconnecting quickly: our own probe notices the server
            # coming back and replaces the whole pool then.
            reconnect_timeout=2.0,
            configure=_configure,
            open=False,
            name=f"entroq-pg-{self._token}",
        )

    async def _open(self) -> None:
        config = self._config
        await _prepare_schema(config)
        self._pool = self._new_pool()
        try:
            await self._pool.open(wait=True, timeout=config.pool_timeout)
        except Exception as exc:
            await self._pool.close()
            raise translate(exc, f"connecting to {config.display}") from None
        if config.notify:
            schema = quote_ident(config.schema)
            self._notifier = Notifier(
                config.conninfo, self._channel, self._token, notify_waited_sql(schema)
            )
            self._notifier.start()
            listener = Listener(config.conninfo, self._channel, self._token, self._wakeups, {})
            self._listener = listener
            await listener.start(wait=config.pool_timeout)
            self._waiters = WaiterRegistry(self._register_waiting, lambda: listener.reconnects)

    async def aclose(self) -> None:
        """Close the pool and the listener; waiting claims stop waking."""
        if self._closed:
            return
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._probe
        if self._waiters is not None and self._waiters.writes and self._pool is not None:
            # Producers stop notifying for us now rather than when our rows lapse.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0), self._pool.connection() as conn:
                    await conn.execute(self._unregister_sql, {"t": self._token})
        if self._notifier is not None:
            await self._notifier.aclose()
        if self._listener is not None:
            await self._listener.aclose()
        if self._pool is not None:
            await self._pool.close()
        self._wakeups.notify_all()

    # --- connection handling ---------------------------------------------

    async def _call(
        self, where: str, fn: Callable[[Conn], Awaitable[T]], *, replay_safe: bool
    ) -> T:
        """Run ``fn`` on a pooled connection, mapping and retrying errors.

        Transient conflicts are retried with jittered backoff. A broken
        connection is retried once on a fresh pool when running ``fn`` again
        cannot apply anything twice.
        """
        if self._closed or self._pool is None:
            raise BackendUnavailable(f"{where}: the pg backend is closed")
        conflicts = 0
        reconnected = False
        while True:
            if self._down_reason:
                raise BackendUnavailable(f"{where}: {self._down_reason}")
            pool = self._pool
            try:
                # getconn/putconn, not pool.connection(): same checks on return
                # (a broken or mid-transaction connection is discarded or reset),
                # a good deal less overhead on every call.
                try:
                    conn = await pool.getconn()
                except PoolClosed:
                    if self._closed or self._pool is pool:
                        raise BackendUnavailable(f"{where}: the pg backend is closed") from None
                    if reconnected:
                        raise BackendUnavailable(
                            f"{where}: the connection pool was replaced twice during this "
                            "call (PostgreSQL restarting?)"
                        ) from None
                    reconnected = True
                    continue  # the pool was replaced while this call waited: nothing ran
                try:
                    return await fn(conn)
                finally:
                    await pool.putconn(conn)
            except EntroQError:
                raise
            except Exception as exc:
                if is_retryable(exc):
                    if conflicts >= self._config.max_retries:
                        raise RetryableConflict(
                            f"{where}: still conflicting after {conflicts} retries: {exc}"
                        ) from None
                    await asyncio.sleep(0.005 * (2 ** min(conflicts, 7)) * random.random())
                    conflicts += 1
                    continue
                error = translate(exc, where)
                if is_connection_error(exc) and not self._closed:
                    never_ran = server_never_ran_it(exc)
                    up = await self._connection_lost(pool)
                    if up and not reconnected and (replay_safe or never_ran):
                        reconnected = True
                        continue
                    if not replay_safe and not never_ran:
                        error = BackendUnavailable(
                            f"{error}; the connection broke with the {where} sent or about to "
                            "be, so whether it was applied is unknown"
                        )
                raise error from None

    async def _connection_lost(self, pool: AsyncConnectionPool[Conn]) -> bool:
        """Start (or join) the probe after a connection failure; True if the server is up."""
        if self._probe is None or self._probe.done():
            if self._pool is not pool:
                return True  # someone already replaced the broken pool
            self._probe_result = asyncio.Event()
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())
        assert self._probe_result is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._config.pool_timeout):
                await self._probe_result.wait()
        return not self._down_reason

    async def _probe_until_up(self) -> None:
        """Connect directly until the server answers, then swap in a fresh pool."""
        delay = 0.05
        while not self._closed:
            try:
                conn = await psycopg.AsyncConnection.connect(self._config.conninfo)
                await conn.close()
            except Exception as exc:
                self._down_reason = (
                    f"PostgreSQL at {self._config.display} is unreachable: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                )
                if self._probe_result is not None:
                    self._probe_result.set()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            old, self._pool = self._pool, self._new_pool()
            await self._pool.open(wait=False)
            self._down_reason = ""
            if self._probe_result is not None:
                self._probe_result.set()
            if old is not None:
                # Connections still in use return to the closed pool and are closed.
                await old.close(timeout=0)
            log.info("entroq-pg: PostgreSQL at %s is reachable again", self._config.display)
            return

    # --- claiming --------------------------------------------------------

    async def try_claim(self, request: ClaimRequest) -> Task | None:
        """Claim a random available task from the listed queues, or return None."""
        _check_lease(request.duration_ms)
        queues = list(request.queues)
        if len(queues) == 1 and self._config.batch_writes:
            return await self._claim_lane(queues[0]).call(
                _ClaimArgs(request.claimant, request.duration_ms)
            )
        if len(queues) > 1:
            random.shuffle(queues)

        async def run(conn: Conn) -> Task | None:
            cur = _cursor(conn)
            for queue in queues:
                await cur.execute(
                    self._sql.claim, {"q": queue, "c": request.claimant, "ms": request.duration_ms}
                )
                row = await cur.fetchone()
                if row is not None:
                    return row_to_task(row)
            return None

        return await self._call("claim", run, replay_safe=True)

    def _claim_lane(self, queue: str) -> Coalescer[_ClaimArgs, Task | None]:
        lane = self._claim_lanes.get(queue)
        if lane is None:
            lane = self._claim_lanes[queue] = Coalescer(
                lambda args: self._claim_one(queue, args),
                lambda batch: self._claim_many(queue, batch),
                max_in_flight=IN_FLIGHT,
                max_batch=MAX_BATCH,
            )
            if len(self._claim_lanes) > MAX_IDLE_LANES:
                # Forget idle lanes (they hold no state) so distinct queue names
                # claimed over time do not pile up.
                for name, old in list(self._claim_lanes.items()):
                    if old.idle and old is not lane:
                        del self._claim_lanes[name]
        return lane

    async def _claim_one(self, queue: str, args: _ClaimArgs) -> Task | None:
        async def run(conn: Conn) -> Task | None:
            cur = _cursor(conn)
            await cur.execute(self._sql.claim, {"q": queue, "c": args.claimant, "ms": args.ms})
            row = await cur.fetchone()
            return None if row is None else row_to_task(row)

        return await self._call("claim", run, replay_safe=True)

    async def _claim_many(self, queue: str, batch: list[_ClaimArgs]) -> list[Task | None]:
        async def run(conn: Conn) -> list[Task | None]:
            cur = _cursor(conn)
            params = {
                "q": queue,
                "k": len(batch),
                "cs": [a.claimant for a in batch],
                "mss": [a.ms for a in batch],
            }
            await cur.execute(self._sql.claim_many, params)
            got: list[Task | None] = [None] * len(batch)
            for row in await cur.fetchall():
                got[row[0] - 1] = row_to_task(row[1:])
            return got

        return await self._call("claim", run, replay_safe=True)

    async def claim(self, request: ClaimRequest, poll: float) -> Task:
        """Claim a task, waiting for wake-ups (local and NOTIFY) and the next arrival."""
        if self._waiters is not None:
            # Before the first try, so no producer's commit can fall between
            # that try and other processes learning that we wait (waiters.py).
            await self._waiters.register(request.queues)
        return await claim_until_found(
            request, self.try_claim, self._wakeups, poll, self._next_arrival
        )

    async def _register_waiting(self, queues: list[str]) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(self._register_sql, {"qs": queues, "t": self._token})

        await self._call("claim", run, replay_safe=True)

    async def _next_arrival(self, queues: tuple[str, ...]) -> float | None:
        async def run(conn: Conn) -> float | None:
            cur = await conn.execute(self._sql.next_arrival, {"qs": list(queues)})
            row = await cur.fetchone()
            return None if row is None or row[0] is None else max(float(row[0]), 0.0)

        soonest = await self._call("claim", run, replay_safe=True)
        if self._waiters is not None:
            # About to wait: keep our waiter rows live, and come back before they lapse.
            await self._waiters.register(queues)
            soonest = REFRESH_SECONDS if soonest is None else min(soonest, REFRESH_SECONDS)
        if self._config.notify and not self.listening:
            soonest = (
                FALLBACK_POLL_SECONDS if soonest is None else min(soonest, FALLBACK_POLL_SECONDS)
            )
        return soonest

    # --- modifying -------------------------------------------------------

    async def modify(self, request: ModifyRequest) -> ModifyResult:
        """Apply the modification in one transaction, or raise DependencyError."""
        if request.is_empty():
            return ModifyResult()
        refused = False
        if self._config.batch_writes and _only_one_delete(request):
            gone = request.deletes[0]
            if await self._deletes.call(_Delete(gone.id, gone.version, request.claimant)):
                return ModifyResult()
            refused = True  # the checked path below names the offending task
        prepared = _Prepared(request)
        ready: dict[str, int] = {}

        async def fast(conn: Conn) -> ModifyResult | None:
            ready.clear()
            return await self._modify_fast(conn, prepared, ready)

        async def checked(conn: Conn) -> ModifyResult:
            ready.clear()
            async with conn.transaction():
                return await self._modify_in(conn, prepared, ready)

        # A modification is one transaction: if the connection broke before the
        # server ran it, it is safe to send again; otherwise it may have committed.
        result = None if refused else await self._call("modify", fast, replay_safe=False)
        if result is None:
            # Something failed (nothing was applied): redo it step by step, which
            # names every offending task, or succeeds if the obstacle went away.
            result = await self._call("modify", checked, replay_safe=False)
        for queue, count in ready.items():
            self._wakeups.notify(queue, count)
        arrivals = future_arrivals((*result.inserted, *result.changed))
        for queue, at in arrivals.items():
            self._wakeups.arrival(queue, at)
        if self._notifier is not None:
            self._notifier.send(ready)
            self._notifier.send_arrivals(arrivals)
        return result

    async def _delete_one(self, gone: _Delete) -> bool:
        """Delete one task as its own statement; False if refused (nothing deleted)."""

        async def run(conn: Conn) -> bool:
            return await _delete_row(_cursor(conn), self._sql, gone)

        return await self._call("modify", run, replay_safe=False)

    async def _delete_many(self, batch: list[_Delete]) -> list[bool]:
        async def run(conn: Conn) -> list[bool]:
            cur = _cursor(conn)
            params = {
                "ids": [g.id for g in batch],
                "vs": [g.version for g in batch],
                "cs": [g.claimant for g in batch],
            }
            await cur.execute(self._sql.delete_many, params)
            deleted = {row[0] for row in await cur.fetchall()}
            return [n in deleted for n in range(1, len(batch) + 1)]

        return await self._call("modify", run, replay_safe=False)

    async def _modify_fast(
        self, conn: Conn, p: _Prepared, ready: dict[str, int]
    ) -> ModifyResult | None:
        """Check and apply in one statement; None if some check failed (nothing applied)."""
        req = p.request
        simple = await self._modify_simple(conn, p, ready)
        if simple is not _NOT_SIMPLE:
            return simple  # type: ignore[return-value]
        soft = [d for i, d in enumerate(p.inserts) if p.explicit[i] and d.skip_colliding]
        hard = [d for i, d in enumerate(p.inserts) if not (p.explicit[i] and d.skip_colliding)]
        check_ids = [
            d.id for i, d in enumerate(p.inserts) if p.explicit[i] and not d.skip_colliding
        ]
        news = [c.new for c in req.changes]
        shape = Shape(
            mutates=bool(p.mutated_ids),
            depends=bool(req.depends),
            checks_ids=bool(check_ids),
            deletes=bool(req.deletes),
            changes=bool(req.changes),
            hard_inserts=bool(hard),
            soft_inserts=bool(soft),
        )
        params: dict[str, Any] = {"c": req.claimant}
        if shape.mutates:
            params["mut_ids"] = [d.id for d in req.deletes] + [c.old.id for c in req.changes]
            params["mut_versions"] = [d.version for d in req.deletes] + [
                c.old.version for c in req.changes
            ]
        if shape.depends:
            params["dep_ids"] = [d.id for d in req.depends]
            params["dep_versions"] = [d.version for d in req.depends]
        if check_ids:
            params["check_ids"] = check_ids
        if req.deletes:
            params["del_ids"] = [d.id for d in req.deletes]
        if req.changes:
            params["chg_ids"] = [c.old.id for c in req.changes]
            params.update(_columns(news, "chg_"))
        if hard:
            params["hard_ids"] = [d.id for d in hard]
            params.update(_columns(hard, "hard_"))
        if soft:
            params["soft_ids"] = [d.id for d in soft]
            params.update(_columns(soft, "soft_"))
        statement = build_modify(self._config.schema, shape)
        try:
            cur = await _cursor(conn).execute(statement, params)
        except psycopg.errors.UniqueViolation:
            return None  # an explicit id was inserted concurrently: let the checked path say so
        row = await cur.fetchone()
        assert row is not None
        passed, now, soft_done, chg_ids, chg_created, chg_claims = row[:6]
        if not passed:
            return None
        now = _utc(now)
        kept = set(soft_done or ())
        modifier = req.claimant
        inserted = []
        for i, d in enumerate(p.inserts):
            if p.explicit[i] and d.skip_colliding and d.id not in kept:
                continue
            at = d.at or now
            inserted.append(
                Task(d.queue, d.id, 0, at, modifier, d.value, now, now, 0, d.attempt, d.err)
            )
            if at <= now:
                ready[d.queue] = ready.get(d.queue, 0) + 1
        changed = []
        if req.changes:
            kept_rows = {
                i: (_utc(created), claims)
                for i, created, claims in zip(chg_ids, chg_created, chg_claims, strict=True)
            }
            for c in req.changes:
                created, claims = kept_rows[c.old.id]
                n = c.new
                at = n.at or now
                changed.append(
                    Task(
                        n.queue,
                        c.old.id,
                        c.old.version + 1,
                        at,
                        modifier,
                        n.value,
                        created,
                        now,
                        claims,
                        n.attempt,
                        n.err,
                    )
                )
                if at <= now:
                    ready[n.queue] = ready.get(n.queue, 0) + 1
        return ModifyResult(inserted=tuple(inserted), changed=tuple(changed))

    async def _modify_simple(
        self, conn: Conn, p: _Prepared, ready: dict[str, int]
    ) -> ModifyResult | object | None:
        """One delete, one change, or only plain inserts: the commonest shapes, in the
        simplest statement each. Returns None if a check failed (nothing applied), or
        _NOT_SIMPLE for other shapes."""
        req = p.request
        sql = self._sql
        cur = _cursor(conn)
        if req.depends or (req.inserts and (req.deletes or req.changes)):
            return _NOT_SIMPLE
        if _only_one_delete(req):
            gone = req.deletes[0]
            deleted = await _delete_row(cur, sql, _Delete(gone.id, gone.version, req.claimant))
            return ModifyResult() if deleted else None
        if req.changes and not req.deletes and len(req.changes) == 1:
            c = req.changes[0]
            n = c.new
            await cur.execute(
                sql.change_one,
                {
                    "id": c.old.id,
                    "v": c.old.version,
                    "c": req.claimant,
                    "queue": n.queue,
                    "at": n.at,
                    "value": n.value,
                    "attempt": n.attempt,
                    "err": n.err,
                },
            )
            row = await cur.fetchone()
            if row is None:
                return None
            now = _utc(row[0])
            at = n.at or now
            task = Task(
                n.queue,
                c.old.id,
                c.old.version + 1,
                at,
                req.claimant,
                n.value,
                _utc(row[1]),
                now,
                row[2],
                n.attempt,
                n.err,
            )
            if at <= now:
                ready[n.queue] = 1
            return ModifyResult(changed=(task,))
        if req.inserts and not (req.deletes or req.changes):
            if any(d.id and d.skip_colliding for d in req.inserts):
                return _NOT_SIMPLE
            if len(req.inserts) >= COPY_THRESHOLD:
                return await self._insert_by_copy(conn, p, ready)
            try:
                await cur.execute(
                    sql.insert_many,
                    {"c": req.claimant, "hard_ids": p.ids, **_columns(req.inserts, "hard_")},
                )
            except psycopg.errors.UniqueViolation:
                return None
            row = await cur.fetchone()
            assert row is not None
            return _plain_inserted(p, _utc(row[0]), ready)
        return _NOT_SIMPLE

    async def _insert_by_copy(
        self, conn: Conn, p: _Prepared, ready: dict[str, int]
    ) -> ModifyResult | None:
        """Plain inserts of a big batch through binary COPY, in one transaction.

        Parameter arrays cost several microseconds per task to build in Python;
        COPY rows are formatted in C. The database's now is read first in the
        same transaction, so times are still the database clock.
        """
        req = p.request
        claimant = req.claimant
        rnd = random.getrandbits
        cur = conn.cursor()
        # BEGIN and the clock read in one round trip (no parameters: psycopg
        # sends it as one simple query); the transaction is then ours to end.
        await cur.execute(BEGIN_AND_NOW_QUERY)
        while cur.description is None and cur.nextset():
            pass  # skip BEGIN's result to the clock's
        row = await cur.fetchone()
        assert row is not None
        now = _utc(row[0])
        try:
            async with cur.copy(self._sql.copy_in) as copy:
                copy.set_types(COPY_TYPES)
                for d, task_id in zip(req.inserts, p.ids, strict=True):
                    await copy.write_row(
                        (
                            task_id,
                            d.queue,
                            0,
                            d.at or now,
                            rnd(32) - 2**31,
                            0,
                            d.attempt,
                            now,
                            now,
                            claimant,
                            d.err,
                            d.value,
                        )
                    )
            await cur.execute("COMMIT")
        except psycopg.errors.UniqueViolation:
            await conn.rollback()
            return None
        except BaseException:
            # No transaction left open on a connection going back to the pool
            # (a broken one is discarded by the pool anyway).
            with contextlib.suppress(Exception):
                await conn.rollback()
            raise
        return _plain_inserted(p, now, ready)

    async def _modify_in(self, conn: Conn, p: _Prepared, ready: dict[str, int]) -> ModifyResult:
        sql = self._sql
        req = p.request
        modifier = req.claimant
        cur = conn.cursor(binary=True)
        found: dict[str, Holding] = {}
        if p.mutated_ids:
            await cur.execute(sql.lock_for_update, {"ids": p.mutated_ids})
            for task_id, version, queue, claimant, leased in await cur.fetchall():
                found[task_id] = Holding(task_id, version, queue, claimant, leased)
        if p.depend_ids:
            await cur.execute(sql.lock_for_share, {"ids": p.depend_ids})
            for task_id, version, queue, claimant, leased in await cur.fetchall():
                found[task_id] = Holding(task_id, version, queue, claimant, leased)
        if p.explicit_ids:
            await cur.execute(sql.existing, {"ids": p.explicit_ids})
            for task_id, version, queue in await cur.fetchall():
                # Only the version and queue of a colliding insert are reported.
                found[task_id] = Holding(task_id, version, queue, "", False)
        skipped = check_dependencies(req, found.get)

        if req.deletes:
            await cur.execute(sql.delete, {"ids": [d.id for d in req.deletes]})
        changed: list[Task] = []
        if req.changes:
            news = [c.new for c in req.changes]
            await cur.execute(
                sql.change,
                {"c": modifier, "ids": [c.old.id for c in req.changes], **_columns(news)},
            )
            by_id = {}
            for row in await cur.fetchall():
                by_id[row[1]] = row
            for c in req.changes:
                row = by_id[c.old.id]
                changed.append(row_to_task(row))
                if row[11]:
                    ready[row[0]] = ready.get(row[0], 0) + 1
        inserted: list[Task] = []
        wanted = [(i, d) for i, d in enumerate(p.inserts) if i not in skipped]
        if wanted:
            datas = [d for _, d in wanted]
            await cur.execute(
                sql.insert, {"c": modifier, "ids": [d.id for d in datas], **_columns(datas)}
            )
            by_id = {}
            for row in await cur.fetchall():
                by_id[row[1]] = row
            raced = [(i, d) for i, d in wanted if d.id not in by_id]
            if raced:
                await self._raced_inserts(cur, raced, by_id)
            for _, data in wanted:
                row = by_id.get(data.id)
                if row is None:
                    continue  # a skippable insert that lost a race: dropped
                inserted.append(row_to_task(row))
                if row[11]:
                    ready[row[0]] = ready.get(row[0], 0) + 1
        return ModifyResult(inserted=tuple(inserted), changed=tuple(changed))

    async def _raced_inserts(
        self,
        cur: psycopg.AsyncCursor[Any],
        raced: list[tuple[int, TaskData]],
        by_id: dict[str, Row],
    ) -> None:
        """Handle explicit ids that another transaction inserted after our check."""
        hard = [d for _, d in raced if not d.skip_colliding]
        if not hard:
            return
        await cur.execute(self._sql.existing, {"ids": [d.id for _, d in raced]})
        now_there = {r[0]: TaskID(r[0], r[1], r[2]) for r in await cur.fetchall()}
        if len(now_there) < len(raced):
            # The competitor came and went already: run the whole thing again.
            raise psycopg.errors.SerializationFailure("concurrent insert of the same id")
        raise DependencyError(inserts=[now_there[d.id] for _, d in raced])

    # --- reading ---------------------------------------------------------

    async def tasks(self, request: TasksRequest) -> AsyncIterator[Task]:
        """Yield the matching tasks: by ids in one query, a queue a page at a time."""
        if request.ids:
            statement = (
                self._sql.tasks_by_ids_no_value if request.omit_values else self._sql.tasks_by_ids
            )
            params = {
                "ids": list(request.ids),
                "q": request.queue or None,
                "claimant": request.claimant or None,
                "limit": request.limit or None,
            }

            async def fetch_all(conn: Conn) -> list[Task]:
                cur = await conn.cursor(binary=True).execute(statement, params)
                return [row_to_task(r) for r in await cur.fetchall()]

            for task in await self._call("tasks", fetch_all, replay_safe=True):
                yield task
            return
        left = request.limit or -1
        async for task in self._pages(request):
            yield task
            left -= 1
            if left == 0:
                return

    async def _pages(self, request: TasksRequest) -> AsyncIterator[Task]:
        """A queue's tasks a page at a time, no connection held between pages.

        Best-effort, as listings are: a task whose arrival time changes while
        the listing runs may be listed twice or not at all.
        """
        params: dict[str, Any] = {
            "q": request.queue,
            "claimant": request.claimant or None,
            "page": min(PAGE_SIZE, request.limit) if request.limit else PAGE_SIZE,
            "at": _LISTING_START,
            "rnd": -(2**31),
            "id": "",
        }

        async def page(conn: Conn) -> list[Row]:
            cur = await conn.cursor(binary=True).execute(self._sql.tasks_page, params)
            return await cur.fetchall()

        while True:
            rows = await self._call("tasks", page, replay_safe=True)
            if not rows:
                return
            last = rows[-1]
            params.update(at=last[_PAGE_AT], rnd=last[_PAGE_RND], id=last[1])
            shown = [row for row in rows if row[_PAGE_SHOWN]]
            if request.omit_values:
                for row in shown:
                    yield row_to_task(row)
            else:
                for group in _by_size(shown, _VALUE_BYTES_PER_READ):
                    for task in await self._with_values(request, [row[1] for row in group]):
                        yield task
            if len(rows) < params["page"]:
                return

    async def _with_values(self, request: TasksRequest, ids: list[str]) -> list[Task]:
        """The tasks ``ids`` (as they are now, values included) that still match."""
        params = {
            "ids": ids,
            "q": request.queue,
            "claimant": request.claimant or None,
            "limit": None,
        }

        async def fetch(conn: Conn) -> list[Task]:
            cur = await conn.cursor(binary=True).execute(self._sql.tasks_by_ids, params)
            return [row_to_task(r) for r in await cur.fetchall()]

        return await self._call("tasks", fetch, replay_safe=True)

    async def queue_stats(self, request: QueuesRequest) -> dict[str, QueueStats]:
        """Return stats for the matching queues, in name order."""

        async def run(conn: Conn) -> dict[str, QueueStats]:
            cur = await conn.execute(
                self._sql.stats,
                {
                    "prefixes": list(request.prefixes),
                    "exact": list(request.exact),
                    "limit": request.limit or None,
                },
            )
            stats = {}
            for name, total, available, claimed, future, max_claims in await cur.fetchall():
                stats[name] = QueueStats(
                    name=name,
                    num_tasks=total,
                    num_available=available,
                    num_claimed=claimed,
                    num_future=future,
                    max_claims=max_claims,
                )
            return stats

        return await self._call("queue_stats", run, replay_safe=True)

    async def time(self) -> datetime:
        """Return the database clock, truncated to milliseconds."""

        async def run(conn: Conn) -> datetime:
            cur = await _cursor(conn).execute(self._sql.time)
            row = await cur.fetchone()
            assert row is not None
            return _utc(row[0])

        return await self._call("time", run, replay_safe=True)


@dataclass(frozen=True, slots=True)
class _ClaimArgs:
    """What differs between claims that share a queue's batch."""

    claimant: str
    ms: int


@dataclass(frozen=True, slots=True)
class _Delete:
    """A modification that only deletes one task: the commonest worker commit."""

    id: str
    version: int
    claimant: str


async def _delete_row(cur: psycopg.AsyncCursor[Any], sql: Statements, gone: _Delete) -> bool:
    """The single-delete statement; True if the task was deleted."""
    await cur.execute(sql.delete_one, {"id": gone.id, "v": gone.version, "c": gone.claimant})
    return await cur.fetchone() is not None


def _only_one_delete(request: ModifyRequest) -> bool:
    return (
        len(request.deletes) == 1
        and not request.changes
        and not request.inserts
        and not request.depends
    )


class _Prepared:
    """A modification with generated ids filled in and lock orders computed.

    Built once per request so that retries reuse the same generated ids.
    """

    __slots__ = (
        "_inserts",
        "depend_ids",
        "explicit",
        "explicit_ids",
        "ids",
        "mutated_ids",
        "request",
    )

    def __init__(self, request: ModifyRequest) -> None:
        self.request = request
        self.explicit = [bool(d.id) for d in request.inserts]
        # Final insert ids, in request order: plain-insert paths use these with
        # request.inserts and never copy a TaskData just to set its id.
        self.ids = [d.id or new_task_id() for d in request.inserts]
        self._inserts: list[TaskData] | None = None
        self.explicit_ids = [d.id for d in request.inserts if d.id]
        # One global lock order (by id) so that concurrent modifications never deadlock
        # on the rows they change or delete.
        self.mutated_ids = sorted(
            [d.id for d in request.deletes] + [c.old.id for c in request.changes]
        )
        self.depend_ids = sorted(d.id for d in request.depends)

    @property
    def inserts(self) -> list[TaskData]:
        """The inserts with their final ids (copies made once, on first use)."""
        if self._inserts is None:
            self._inserts = [
                d if d.id else _with_id(d, task_id)
                for d, task_id in zip(self.request.inserts, self.ids, strict=True)
            ]
        return self._inserts


def _plain_inserted(p: _Prepared, now: datetime, ready: dict[str, int]) -> ModifyResult:
    """The result of a request of plain inserts, all applied at the database's ``now``."""
    claimant = p.request.claimant
    inserted = []
    for d, task_id in zip(p.request.inserts, p.ids, strict=True):
        at = d.at or now
        inserted.append(
            Task(d.queue, task_id, 0, at, claimant, d.value, now, now, 0, d.attempt, d.err)
        )
        if at <= now:
            ready[d.queue] = ready.get(d.queue, 0) + 1
    return ModifyResult(inserted=tuple(inserted))


def _with_id(data: TaskData, task_id: str) -> TaskData:
    return TaskData(
        queue=data.queue,
        at=data.at,
        value=data.value,
        id=task_id,
        attempt=data.attempt,
        err=data.err,
        skip_colliding=data.skip_colliding,
    )


def _columns(datas: Sequence[TaskData], prefix: str = "") -> dict[str, list[Any]]:
    return {
        f"{prefix}queues": [d.queue for d in datas],
        f"{prefix}ats": [d.at for d in datas],
        f"{prefix}values": [d.value for d in datas],
        f"{prefix}attempts": [d.attempt for d in datas],
        f"{prefix}errs": [d.err for d in datas],
    }


def _check_lease(duration_ms: int) -> None:
    if duration_ms <= _SURELY_REPRESENTABLE_MS:
        return  # every claim of a sane length: no clock read, no datetime arithmetic
    try:
        if utcnow() + timedelta(milliseconds=duration_ms) + timedelta(days=1) < LATEST_LEASE_END:
            return
    except OverflowError:
        pass
    raise InvalidArgument("duration", duration_ms, "ends after the year 9999")


async def _prepare_schema(config: PgConfig) -> None:
    """Connect once directly (for a clear error) and migrate or check the schema."""
    where = f"connecting to {config.display}"
    try:
        conn = await psycopg.AsyncConnection.connect(config.conninfo, autocommit=True)
    except Exception as exc:
        raise translate_connect(exc, where) from None
    try:
        if config.migrate:
            await migrate(conn, config.schema)
        else:
            check_current(await current_version(conn, config.schema), config.schema)
    except EntroQError:
        raise
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PermissionDenied(
            f"preparing schema {config.schema!r}: this user may not create or migrate it "
            f"({str(exc).strip().splitlines()[0]}); run `python -m entroq_pg migrate URL` "
            "as its owner, then open it here"
        ) from None
    except Exception as exc:
        raise translate(exc, f"preparing schema {config.schema!r}") from None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def open_backend(url: str = "pg://", **options: Any) -> PgBackend:
    """Open a PostgreSQL backend.

    Args:
        url: ``pg://`` or ``postgresql://`` followed by a libpq URL (empty parts
            come from the PG* environment variables). Query options of this
            backend: ``schema`` (default ``entroq``), ``pool_min``, ``pool_max``,
            ``pool_timeout`` (seconds), ``migrate`` (default true), ``notify``
            (LISTEN/NOTIFY wake-ups, default true), ``max_retries``; every other
            query parameter goes to libpq.
        **options: the same options as keywords; they win over the URL.

    Returns:
        An open backend; close it with ``await backend.aclose()``.

    Raises:
        InvalidArgument: a malformed URL or option.
        AuthenticationError: PostgreSQL refused the credentials.
        BackendUnavailable: PostgreSQL cannot be reached.
        SchemaError: the schema is newer than this code, or missing with migrate=false.
    """
    backend = PgBackend(parse_url(url, **options))
    try:
        await backend._open()
    except BaseException:
        await backend.aclose()
        raise
    return backend
