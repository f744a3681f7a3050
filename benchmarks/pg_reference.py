"""The issue's yardstick, measured side by side: the simplest correct SKIP LOCKED loop.

The simplest READ COMMITTED claim-then-delete loop claims the oldest available
row with ``FOR UPDATE SKIP LOCKED`` in one autocommit UPDATE, then deletes it by
id and version in a second: the same two commits an EntroQ cycle makes, with
none of EntroQ's random choice, lease bookkeeping or dependency checks. Each run
fills one queue, drains it with that loop from Python (psycopg, 8 async workers,
one connection each) and with the backend twice: 8 AsyncEntroQ workers with a
handle each, and 8 sharing one handle (whose queued calls are batched). The
order rotates from run to run, so all see the same server and table. The ratios
are the figures to compare across machines.

If ``pgbench`` is installed next to ``postgres``, the same two loops also run
from it (a C client, 8 connections): that is what the server alone can do, and
shows what the backend's SQL costs the server against the simplest SQL.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

from entroq_core import AsyncEntroQ

from .machine_cpu import Meter
from .measures import drain_rate, fresh_queue
from .pg_measures import drop_queue, fill_sql, sql_url
from .record import Record, median_record

WORKERS = 8
PRELOAD = 20_000
SECONDS = 3.0
PGBENCH_SECONDS = 5
PGBENCH_PRELOAD = 40_000  # more than pgbench drains in PGBENCH_SECONDS on this machine

_CLAIM_OLDEST = (
    "UPDATE entroq.tasks SET at = now() + interval '30 seconds', claimant = %(c)s,"
    " version = version + 1, claims = claims + 1"
    " WHERE id = (SELECT id FROM entroq.tasks WHERE queue = %(q)s AND at <= now()"
    " ORDER BY at LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, version, value"
)
_DELETE = "DELETE FROM entroq.tasks WHERE id = %(id)s AND version = %(v)s"


async def simplest_loop_per_s(
    url: str, queue: str, meter: Meter | None = None, seconds: float = SECONDS
) -> float:
    """Cycles per second of the simplest claim-then-delete loop, 8 workers, psycopg."""
    conns = [
        await psycopg.AsyncConnection.connect(sql_url(url), autocommit=True) for _ in range(WORKERS)
    ]
    done = 0
    deadline = time.perf_counter() + seconds

    async def work(conn: psycopg.AsyncConnection[tuple[object, ...]], n: int) -> None:
        nonlocal done
        cur = conn.cursor(binary=True)
        while time.perf_counter() < deadline:
            await cur.execute(_CLAIM_OLDEST, {"c": f"w{n}", "q": queue})
            row = await cur.fetchone()
            if row is None:
                return
            await cur.execute(_DELETE, {"id": row[0], "v": row[1]})
            done += 1

    if meter is not None:
        meter.start()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(work(c, n) for n, c in enumerate(conns)))
        elapsed = time.perf_counter() - started
        if meter is not None:
            meter.stop(done)
    finally:
        for conn in conns:
            await conn.close()
    return done / elapsed


async def _backend_loop_per_s(url: str, queue: str, meter: Meter) -> float:
    """8 workers, each with its own handle (own pool): nothing to batch."""
    clients = [await AsyncEntroQ.open(url) for _ in range(WORKERS)]
    try:
        return await drain_rate(clients, queue, SECONDS, meter)
    finally:
        for c in clients:
            await c.aclose()


async def _shared_handle_loop_per_s(url: str, queue: str, meter: Meter) -> float:
    """8 workers sharing one handle, as a worker with concurrency 8 or an
    entroq-svc runs them: their queued claims and deletes go out in batches."""
    eq = await AsyncEntroQ.open(url)
    try:
        return await drain_rate([eq] * WORKERS, queue, SECONDS, meter)
    finally:
        await eq.aclose()


LOOPS: dict[str, Callable[[str, str, Meter], Awaitable[float]]] = {
    "simplest": simplest_loop_per_s,
    "backend": _backend_loop_per_s,
    "shared_handle": _shared_handle_loop_per_s,
}


async def _filled(url: str, count: int) -> str:
    queue = fresh_queue("reference")
    await fill_sql(url, queue, count, "available")
    return queue


async def side_by_side(
    url: str, runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per loop, its rate and machine CPU us per cycle in each run; each run rotates
    which loop goes first."""
    names = list(LOOPS)
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    await (await AsyncEntroQ.open(url)).aclose()  # the schema, before raw SQL fills it
    for run in range(runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            queue = await _filled(url, PRELOAD)
            meter = Meter()
            rates[name].append(await LOOPS[name](url, queue, meter))
            if (per_cycle := meter.us_per_unit()) is not None:
                cpu[name].append(per_cycle)
            await drop_queue(url, queue)
    return rates, cpu


def _pgbench() -> Path | None:
    from scripts.servers.postgres import find_bindir

    bindir = find_bindir()
    path = bindir / "pgbench" if bindir else None
    return path if path is not None and os.access(path, os.X_OK) else None


def _pgbench_scripts(queue: str) -> dict[str, str]:
    """The two loops as pgbench scripts: the simplest SQL and the backend's own."""
    from entroq_pg.statements import render

    sql = render("entroq")
    literal = "'" + queue.replace("'", "''") + "'"
    simplest = (
        _CLAIM_OLDEST.replace("%(c)s", "'w'")
        .replace("%(q)s", literal)
        .replace("RETURNING id, version, value", "RETURNING id AS cid, version AS cv \\gset")
        + "\n"
        + _DELETE.replace("%(id)s", ":cid").replace("%(v)s", ":cv")
        + ";\n"
    )
    claim = sql.claim.replace("%(q)s", literal).replace("%(c)s", "'w'").replace("%(ms)s", "30000")
    claim = claim[: claim.rindex("RETURNING")] + "RETURNING id AS cid, version AS cv \\gset"
    delete = sql.delete_one.replace("%(id)s", ":cid").replace("%(v)s", ":cv")
    delete = delete.replace("%(c)s", "'w'")
    return {"simplest": simplest, "backend_sql": f"{claim}\n{delete};\n"}


def _pgbench_tps(binary: Path, url: str, script: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(script)
        f.flush()
        out = subprocess.run(
            [
                str(binary),
                sql_url(url),
                *("-n", "-M", "prepared", "-c", str(WORKERS), "-j", "2"),
                *("-T", str(PGBENCH_SECONDS), "-f", f.name),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    found = re.search(r"tps = ([0-9.]+)", out)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps:\n{out}")
    return float(found.group(1))


async def pgbench_rates(url: str, runs: int) -> dict[str, list[float]] | None:
    """tps of both loops from pgbench, per run, or None without pgbench."""
    binary = _pgbench()
    if binary is None:
        return None
    rates: dict[str, list[float]] = {"simplest": [], "backend_sql": []}
    for _ in range(runs):
        for name in rates:
            queue = await _filled(url, PGBENCH_PRELOAD)
            script = _pgbench_scripts(queue)[name]
            rates[name].append(await asyncio.to_thread(_pgbench_tps, binary, url, script))
            await drop_queue(url, queue)
    return rates


async def reference_records(label: str, url: str, runs: int) -> list[Record]:
    """The side-by-side records: rates, and the backend's ratio to the simplest loop."""
    rates, cpu = await side_by_side(url, runs)
    simplest = rates["simplest"]
    params = {"workers": WORKERS, "preload": PRELOAD}
    out = [median_record(label, "simplest_loop_cycles_per_s", "cycles/s", simplest, **params)]
    for name in ("backend", "shared_handle"):
        out.append(median_record(label, f"{name}_cycles_per_s", "cycles/s", rates[name], **params))
        ratios = [b / s for s, b in zip(simplest, rates[name], strict=True)]
        out.append(median_record(label, f"{name}_to_simplest", "ratio", ratios, **params))
    for name, samples in cpu.items():
        if samples:  # machine CPU (all processes) per cycle: steadier than rates here
            out.append(median_record(label, f"{name}_cpu_per_cycle", "us", samples, **params))
    bench = await pgbench_rates(url, runs)
    if bench is not None:
        client = {"client": "pgbench", "connections": WORKERS}
        out.append(
            median_record(label, "pgbench_simplest_tps", "cycles/s", bench["simplest"], **client)
        )
        out.append(
            median_record(
                label, "pgbench_backend_sql_tps", "cycles/s", bench["backend_sql"], **client
            )
        )
        out.append(
            median_record(
                label,
                "backend_sql_to_simplest",
                "ratio",
                [b / s for s, b in zip(bench["simplest"], bench["backend_sql"], strict=True)],
                **client,
            )
        )
    return out
