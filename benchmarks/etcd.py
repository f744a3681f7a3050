"""The etcd target: a throwaway single-member etcd, plus its raw Txn rate for reference."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from entroq_core import AsyncEntroQ, Modification

from .machine_cpu import Meter
from .measures import cleanup, drain_rate, fill, fresh_queue
from .record import Record, median_record

# etcd refuses a Txn of more than --max-txn-ops operations (the launcher allows
# 4096) or --max-request-bytes (1.5 MiB); an insert takes four operations.
MAX_BATCH = 500


# Raw Txn rates taken on a fresh server, right before the EntroQ measurements,
# and again at the end: after a run's fills etcd is slower. etcd 3.4 copies its
# buffer of not yet committed writes for every request, at the largest size that
# buffer ever reached (see etcd_state): a burst of writes makes every later
# request dearer, for as long as the server runs.
_FRESH_RAW: dict[str, list[float]] = {}
RAW_RUNS = 3

# The pid of each etcd that start() runs, by URL, so measurements can read its CPU.
_PIDS: dict[str, int] = {}


@asynccontextmanager
async def start(raw_runs: int = RAW_RUNS, flags: tuple[str, ...] = ()) -> AsyncIterator[str]:
    """Run a disk-backed single-member etcd like the test fixtures do (with more
    etcd ``flags``), and take its raw Txn rate ``raw_runs`` times while it is fresh."""
    from scripts.servers.etcd import EtcdCluster

    cluster = await asyncio.to_thread(lambda: EtcdCluster(1, flags=flags).start())
    url = cluster.url + "/bench/"
    proc = cluster.members[0].proc
    if proc is not None:
        _PIDS[url] = proc.pid
    try:
        if raw_runs:
            _FRESH_RAW[url] = [await raw_txn_per_second(url) for _ in range(raw_runs)]
        yield url
    finally:
        _PIDS.pop(url, None)
        await asyncio.to_thread(cluster.stop)


def etcd_pid(url: str) -> int | None:
    """The pid of the etcd that start() runs at ``url``, or None."""
    return _PIDS.get(url)


# The etcd URL behind each `entroq-svc` the etcd-svc target started.
_BEHIND_SVC: dict[str, str] = {}


@asynccontextmanager
async def start_svc() -> AsyncIterator[str]:
    """`entroq-svc --backend <a throwaway etcd>`, as users deploy it."""
    from scripts.servers.entroq_svc import svc_process

    async with start() as etcd_url:
        with svc_process(etcd_url) as url:
            _BEHIND_SVC[url] = etcd_url
            try:
                yield url
            finally:
                del _BEHIND_SVC[url]


async def raw_txn_per_second(
    url: str, callers: int = 8, seconds: float = 3.0, meter: Meter | None = None
) -> float:
    """Single-key Txns (one compare, one put) per second straight through grpc.aio.

    ``meter``, if given, counts the CPU spent over the timed part, per Txn.
    """
    import grpc.aio

    from entroq_etcd._etcdpb import rpc_pb2, rpc_pb2_grpc

    endpoint = urlsplit(url).netloc.split(",")[0]
    async with grpc.aio.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        done = 0
        deadline = time.perf_counter() + seconds

        async def caller(n: int) -> None:
            nonlocal done
            key = b"/bench-raw/%d" % n
            while time.perf_counter() < deadline:
                request = rpc_pb2.TxnRequest(
                    compare=[
                        rpc_pb2.Compare(
                            key=key,
                            target=rpc_pb2.Compare.VERSION,
                            result=rpc_pb2.Compare.GREATER,
                            version=-1,
                        )
                    ],
                    success=[
                        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"x" * 100))
                    ],
                )
                await kv.Txn(request)
                done += 1

        if meter is not None:
            meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(callers)))
        elapsed = time.perf_counter() - started
        if meter is not None:
            meter.stop(done)
        return done / elapsed


async def side_by_side_records(
    label: str, url: str, runs: int, preload: int = 5000
) -> list[Record]:
    """Cycles and the raw Txn rate measured back to back on the same keyspace.

    etcd's cost per Txn depends on the server's history (the largest burst of
    writes it has seen, see etcd_state), so each run loads a queue, takes the
    raw rate, then drains the queue with 8 workers: both see the same server.
    The drain is done twice: 8 workers with a handle each, and 8 workers
    sharing one handle (as the requests of many remote workers share one handle
    in entroq-svc), where writes queued behind the handle's calls in flight go
    to etcd as one Txn. Here the queues are loaded and emptied 500 tasks per
    Txn, on the server the rest of the run used.
    """
    return await _beside_raw(label, url, url, runs, preload, _DIRECT_DRAINS, MAX_BATCH)


async def steady_side_by_side_records(
    label: str, url: str, runs: int, preload: int = 5000
) -> list[Record]:
    """The same comparison on a fresh etcd that never sees a burst of writes.

    Queues are loaded and emptied one task per Txn, so etcd's write buffer
    stays the size this workload's own writes give it. ``url`` is not used: the
    server the rest of the run used has seen bursts.
    """
    async with start(raw_runs=0) as fresh:
        return await _beside_raw(label, fresh, fresh, runs, preload, _DIRECT_DRAINS, 1)


async def svc_side_by_side_records(
    label: str, url: str, runs: int, preload: int = 5000
) -> list[Record]:
    """Through entroq-svc: 8 remote workers' cycles beside etcd's raw Txn rate.

    The service holds one backend handle for all its clients, so their writes
    queue behind each other there and go to etcd in shared Txns. The raw rate
    is taken on the etcd behind the service.
    """
    via = {"workers": 8, "via": "entroq-svc"}
    return await _beside_raw(label, url, _BEHIND_SVC[url], runs, preload, [(via, False)], MAX_BATCH)


_DIRECT_DRAINS: list[tuple[dict[str, object], bool]] = [
    ({"workers": 8, "handles": 8}, False),
    ({"workers": 8, "handles": 1}, True),
]


async def _beside_raw(
    label: str,
    url: str,
    etcd_url: str,
    runs: int,
    preload: int,
    drains: list[tuple[dict[str, object], bool]],
    per_txn: int,
) -> list[Record]:
    """Per run: load a queue, take etcd's raw rate, drain it with 8 workers; per drain
    shape (its record params, and whether the workers share one handle) the cycle
    rate and its ratio to the raw rate of the same run. Queues are loaded and
    emptied ``per_txn`` tasks per Txn. If this benchmark runs the etcd, the CPU
    per raw Txn and per cycle is split into etcd's and this process's."""
    pid = etcd_pid(etcd_url)
    meters = {"etcd": pid, "client": os.getpid()} if pid is not None else None
    raws: list[float] = []
    raw_meters: list[Meter] = []
    rates: list[list[float]] = [[] for _ in drains]
    drain_meters: list[list[Meter]] = [[] for _ in drains]
    for _ in range(runs):
        for n, (_, shared) in enumerate(drains):
            setup = await AsyncEntroQ.open(url)
            queue = fresh_queue("side")
            await load(url, setup, queue, preload, per_txn)
            if n == 0:
                meter = Meter(meters)
                raws.append(await raw_txn_per_second(etcd_url, meter=meter))
                raw_meters.append(meter)
            if shared:
                clients = [await AsyncEntroQ.open(url)] * 8
            else:
                clients = [await AsyncEntroQ.open(url) for _ in range(8)]
            meter = Meter(meters)
            rates[n].append(await drain_rate(clients, queue, seconds=3.0, meter=meter))
            drain_meters[n].append(meter)
            await unload(url, setup, queue, list(set(clients)), per_txn)
    state = {"preload": preload, "tasks_per_txn": per_txn}
    out = [median_record(label, "side_raw_txn_per_s", "txn/s", raws, callers=8, **state)]
    out += _cpu_records(label, "side_cpu_per_raw_txn", raw_meters, callers=8, **state)
    for (params, _), samples, cycle_meters in zip(drains, rates, drain_meters, strict=True):
        out.append(
            median_record(label, "side_cycles_per_s", "cycles/s", samples, **params, **state)
        )
        ratios = [c / r for c, r in zip(samples, raws, strict=True)]
        out.append(median_record(label, "cycles_to_raw_txn", "ratio", ratios, **params, **state))
        out += _cpu_records(label, "side_cpu_per_cycle", cycle_meters, **params, **state)
    return out


def _cpu_records(label: str, metric: str, meters: list[Meter], **params: object) -> list[Record]:
    """Median CPU microseconds per unit of etcd's process and of this one, if measured."""
    out = []
    for process in ("etcd", "client"):
        samples = [m.us_per_unit(process) for m in meters]
        known = [s for s in samples if s is not None]
        if known and len(known) == len(samples):
            out.append(median_record(label, metric, "us", known, process=process, **params))
    return out


async def load(url: str, setup: AsyncEntroQ, queue: str, count: int, per_txn: int) -> None:
    """Insert ``count`` tasks, ``per_txn`` per Txn (one per Txn from 8 handles at once)."""
    if per_txn > 1:
        await fill(setup, queue, count, batch=per_txn)
        return

    async def insert(eq: AsyncEntroQ, n: int) -> None:
        for _ in range(n):
            await eq.modify(Modification().insert(queue, b"x" * 100))

    await _by_eight(url, insert, count)


async def unload(
    url: str, setup: AsyncEntroQ, queue: str, clients: list[AsyncEntroQ], per_txn: int
) -> None:
    """Delete what is left in ``queue``, ``per_txn`` tasks per Txn, then close the clients."""
    if per_txn == 1:
        left = await setup.tasks(queue, limit=5000, omit_values=True)

        async def delete(eq: AsyncEntroQ, n: int) -> None:
            for _ in range(n):
                await eq.modify(Modification().delete(left.pop()))

        await _by_eight(url, delete, len(left))
    await cleanup(setup, queue, clients, per_txn)


async def _by_eight(
    url: str, job: Callable[[AsyncEntroQ, int], Awaitable[None]], count: int
) -> None:
    """Run ``count`` one-Txn steps of ``job`` from 8 handles at once, as 8 producers would."""
    handles = [await AsyncEntroQ.open(url) for _ in range(8)]
    try:
        shares = [count // 8 + (1 if i < count % 8 else 0) for i in range(8)]
        await asyncio.gather(*(job(eq, n) for eq, n in zip(handles, shares, strict=True)))
    finally:
        for eq in handles:
            await eq.aclose()


async def raw_txn_records(label: str, url: str, runs: int) -> list[Record]:
    """The raw Txn rate with 8 concurrent callers on the same server: fresh and at the end."""
    url = _BEHIND_SVC.get(url, url)
    out = []
    fresh = _FRESH_RAW.pop(url, None)
    if fresh:
        out.append(median_record(label, "raw_txn_per_s", "txn/s", fresh, callers=8, when="start"))
    samples = [await raw_txn_per_second(url) for _ in range(runs)]
    out.append(median_record(label, "raw_txn_per_s", "txn/s", samples, callers=8, when="end"))
    return out
