"""PostgreSQL-only measurements: claim regimes, cross-process wake-ups, NOTIFY cost, HOT.

Claim latency is measured in three regimes at each depth: all tasks available;
all but 100 leased; all but 100 scheduled an hour ahead. The bulk is written
with one SQL statement (an API fill of a million tasks per regime would take
longer than everything else), then VACUUM ANALYZE, as autovacuum would have.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import psycopg

from entroq_core import AsyncEntroQ, Modification, TaskData

from .measures import fresh_queue
from .record import Record, median_record, percentile

REGIMES = ("available", "leased", "future")
AVAILABLE_IN_SPARSE_REGIMES = 100

_FILL = """
INSERT INTO entroq.tasks (id, queue, version, at, rnd, claims, attempt, created, modified,
                          claimant, err, value)
SELECT gen_random_uuid()::text, %(q)s, %(claims)s,
       CASE WHEN g <= %(bulk)s THEN now() + %(ahead)s * interval '1 second' ELSE now() END,
       (floor(random() * 4294967296) - 2147483648)::int4, %(claims)s, 0, now(), now(),
       'bench', '', convert_to(repeat('x', 100), 'UTF8')
FROM generate_series(1, %(n)s) AS g
"""


def sql_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1].split("?", 1)[0]


async def fill_sql(url: str, queue: str, depth: int, regime: str) -> None:
    sparse = regime != "available"
    bulk = depth - AVAILABLE_IN_SPARSE_REGIMES if sparse else 0
    async with await psycopg.AsyncConnection.connect(sql_url(url), autocommit=True) as conn:
        await conn.execute(
            _FILL,
            {
                "q": queue,
                "n": depth,
                "bulk": bulk,
                "ahead": 3600 if sparse else 0,
                "claims": 1 if regime == "leased" else 0,
            },
        )
        await conn.execute("VACUUM ANALYZE entroq.tasks")


async def drop_queue(url: str, queue: str) -> None:
    async with await psycopg.AsyncConnection.connect(sql_url(url), autocommit=True) as conn:
        await conn.execute("DELETE FROM entroq.tasks WHERE queue = %s", (queue,))
        await conn.execute("VACUUM entroq.tasks")


async def claim_regime_ms(url: str, depth: int, regime: str, runs: int) -> list[Record]:
    """p50/p99 TryClaim latency at ``depth`` in ``regime``; one fill, ``runs`` sample sets."""
    queue = fresh_queue(f"{regime}{depth}")
    eq = await AsyncEntroQ.open(url)  # creates the schema on a fresh server
    await fill_sql(url, queue, depth, regime)
    p50s, p99s = [], []
    try:
        for _ in range(runs):
            timings = []
            for _ in range(300):
                started = time.perf_counter()
                task = await eq.try_claim(queue, 30)
                timings.append((time.perf_counter() - started) * 1000)
                assert task is not None
                await eq.modify(Modification().change(task))  # available again
            p50s.append(percentile(timings, 50))
            p99s.append(percentile(timings, 99))
    finally:
        await eq.aclose()
        await drop_queue(url, queue)
    params = {"depth": depth, "regime": regime}
    return [
        median_record("pg", "claim_regime_ms_p50", "ms", p50s, **params),
        median_record("pg", "claim_regime_ms_p99", "ms", p99s, **params),
    ]


_WAITER = """
import asyncio, sys, time
from entroq_core import AsyncEntroQ, Modification
async def main(url, queue, n):
    async with await AsyncEntroQ.open(url) as eq:
        for _ in range(n):
            print("waiting", flush=True)
            task = await eq.claim(queue, 30, poll=600)
            print(time.time(), flush=True)
            await eq.modify(Modification().delete(task))
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def cross_process_wake_ms(url: str, samples: int = 30) -> tuple[float, float]:
    """p50/p99 from an insert's commit here to a Claim returning in another process."""
    queue = fresh_queue("xwake")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WAITER, url, queue, str(samples), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    timings = []
    async with await AsyncEntroQ.open(url) as eq:
        for _ in range(samples):
            assert (await proc.stdout.readline()).strip() == b"waiting"
            await asyncio.sleep(0.05)  # let the claim find nothing and start waiting
            started = time.time()
            await eq.modify(Modification().insert(queue, b"wake"))
            woke = float((await proc.stdout.readline()).decode())
            timings.append((woke - started) * 1000)
    await proc.wait()
    return percentile(timings, 50), percentile(timings, 99)


async def concurrent_single_inserts_per_s(url: str, producers: int, seconds: float = 3.0) -> float:
    """One-task inserts per second from ``producers`` concurrent clients (commit-bound)."""
    queue = fresh_queue("notify")
    clients = [await AsyncEntroQ.open(url) for _ in range(producers)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def produce(eq: AsyncEntroQ) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await eq.modify(Modification(inserts=[TaskData(queue, value=b"n")]))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(produce(c) for c in clients))
    rate = done / (time.perf_counter() - started)
    for c in clients:
        await c.aclose()
    await drop_queue(url, queue)
    return rate


async def hot_and_bloat(url: str, claims: int = 20_000, depth: int = 10_000) -> list[Record]:
    """Share of HOT updates and relation growth under sustained claim + release."""
    queue = fresh_queue("hot")
    plain_url = sql_url(url)
    await (await AsyncEntroQ.open(url)).aclose()  # creates the schema on a fresh server
    await fill_sql(url, queue, depth, "available")
    async with await psycopg.AsyncConnection.connect(plain_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_stat_reset_single_table_counters('entroq.tasks'::regclass)")

        async def sizes() -> tuple[float, float]:
            cur = await conn.execute(
                "SELECT pg_relation_size('entroq.tasks'), pg_indexes_size('entroq.tasks')"
            )
            row = await cur.fetchone()
            assert row is not None
            return row[0] / 2**20, row[1] / 2**20

        table0, index0 = await sizes()
        clients = [await AsyncEntroQ.open(url) for _ in range(8)]
        per = claims // len(clients)

        async def churn(eq: AsyncEntroQ) -> None:
            for _ in range(per):
                task = await eq.try_claim(queue, 30)
                assert task is not None
                await eq.modify(Modification().change(task))

        await asyncio.gather(*(churn(c) for c in clients))
        for c in clients:
            await c.aclose()
        await asyncio.sleep(1)  # statistics are flushed asynchronously
        cur = await conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
            " WHERE relid = 'entroq.tasks'::regclass"
        )
        row = await cur.fetchone()
        assert row is not None
        table1, index1 = await sizes()
    await drop_queue(url, queue)
    upd, hot = row
    params = {"claims": per * 8, "depth": depth, "updates": upd}
    return [
        Record("pg", "hot_update_share", round(hot / upd, 3) if upd else 0.0, "ratio", params),
        Record("pg", "table_growth_mib", round(table1 - table0, 2), "MiB", params),
        Record("pg", "index_growth_mib", round(index1 - index0, 2), "MiB", params),
    ]


async def pg_extras(label: str, url: str, runs: int) -> list[Record]:
    """Everything pg-specific, each repeated ``runs`` times where it is cheap enough."""
    out: list[Record] = []
    for depth in (1_000, 100_000, 1_000_000):
        for regime in REGIMES:
            out.extend(await claim_regime_ms(url, depth, regime, runs))
            print(out[-2].metric, depth, regime, out[-2].value, file=sys.stderr)
    p50s, p99s = [], []
    for _ in range(runs):
        p50, p99 = await cross_process_wake_ms(url)
        p50s.append(p50)
        p99s.append(p99)
    out.append(median_record(label, "wake_latency_ms_p50", "ms", p50s, processes=2))
    out.append(median_record(label, "wake_latency_ms_p99", "ms", p99s, processes=2))
    quiet = url + ("&" if "?" in url else "?") + "notify=false"
    for notify, target in (("on", url), ("off", quiet)):
        rates = [await concurrent_single_inserts_per_s(target, 8) for _ in range(runs)]
        out.append(
            median_record(
                label, "insert_per_s", "tasks/s", rates, batch=1, producers=8, notify=notify
            )
        )
        from .measures import cycles_per_second

        rates = [await cycles_per_second(target, 8) for _ in range(runs)]
        out.append(
            median_record(label, "cycles_per_s", "cycles/s", rates, workers=8, notify=notify)
        )
    out.extend(await hot_and_bloat(url))
    return out


def unique_schema() -> str:
    """A schema name for a benchmark run against a shared server."""
    return f"bench_{uuid.uuid4().hex[:8]}"
