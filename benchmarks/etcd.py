"""The etcd target: a throwaway single-member etcd, plus its raw Txn rate for reference."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from .measures import cleanup, drain_rate, fill, fresh_queue
from .record import Record, median_record

# etcd refuses a Txn of more than --max-txn-ops operations (the launcher allows
# 4096) or --max-request-bytes (1.5 MiB); an insert takes four operations.
MAX_BATCH = 500


# Raw Txn rates taken on a fresh server, right before the EntroQ measurements,
# and again at the end: after a run's 1e5-task fills and cleanups etcd is slower
# (its index holds deleted keys until compaction, its db file is not defragmented).
_FRESH_RAW: dict[str, list[float]] = {}
RAW_RUNS = 3


@asynccontextmanager
async def start() -> AsyncIterator[str]:
    """Run a disk-backed single-member etcd like the test fixtures do."""
    from scripts.servers.etcd import EtcdCluster

    cluster = await asyncio.to_thread(lambda: EtcdCluster(1).start())
    url = cluster.url + "/bench/"
    try:
        _FRESH_RAW[url] = [await raw_txn_per_second(url) for _ in range(RAW_RUNS)]
        yield url
    finally:
        await asyncio.to_thread(cluster.stop)


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


async def raw_txn_per_second(url: str, callers: int = 8, seconds: float = 3.0) -> float:
    """Single-key Txns (one compare, one put) per second straight through grpc.aio."""
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

        started = time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(callers)))
        return done / (time.perf_counter() - started)


async def side_by_side_records(
    label: str, url: str, runs: int, preload: int = 5000
) -> list[Record]:
    """Cycles and the raw Txn rate measured back to back on the same keyspace.

    etcd's cost per Txn grows with the keys it holds (live keys and the
    tombstones of deleted ones until compaction): on this machine a bare
    single-key Txn costs etcd about twice the CPU with 100,000 keys stored as on
    an empty server. So each run loads a queue, takes the raw rate, then drains
    the queue with 8 workers: both see the same server state. The drain is done
    twice: 8 workers with a handle each, and 8 workers sharing one handle (as
    the requests of many remote workers share one handle in entroq-svc), where
    writes queued behind the handle's calls in flight go to etcd as one Txn.
    """
    own = {"workers": 8, "handles": 8, "preload": preload}
    shared = {"workers": 8, "handles": 1, "preload": preload}
    return await _beside_raw(label, url, url, runs, preload, [(own, False), (shared, True)])


async def svc_side_by_side_records(
    label: str, url: str, runs: int, preload: int = 5000
) -> list[Record]:
    """Through entroq-svc: 8 remote workers' cycles beside etcd's raw Txn rate.

    The service holds one backend handle for all its clients, so their writes
    queue behind each other there and go to etcd in shared Txns. The raw rate
    is taken on the etcd behind the service.
    """
    via = {"workers": 8, "via": "entroq-svc", "preload": preload}
    return await _beside_raw(label, url, _BEHIND_SVC[url], runs, preload, [(via, False)])


async def _beside_raw(
    label: str,
    url: str,
    etcd_url: str,
    runs: int,
    preload: int,
    drains: list[tuple[dict[str, object], bool]],
) -> list[Record]:
    """Per run: load a queue, take etcd's raw rate, drain it with 8 workers; per drain
    shape (its record params, and whether the workers share one handle) the cycle
    rate and its ratio to the raw rate of the same run."""
    from entroq_core import AsyncEntroQ

    raws: list[float] = []
    rates: list[list[float]] = [[] for _ in drains]
    for _ in range(runs):
        for n, (_, shared) in enumerate(drains):
            setup = await AsyncEntroQ.open(url)
            queue = fresh_queue("side")
            await fill(setup, queue, preload, batch=MAX_BATCH)
            if n == 0:
                raws.append(await raw_txn_per_second(etcd_url))
            if shared:
                clients = [await AsyncEntroQ.open(url)] * 8
            else:
                clients = [await AsyncEntroQ.open(url) for _ in range(8)]
            rates[n].append(await drain_rate(clients, queue, seconds=3.0))
            await cleanup(setup, queue, list(set(clients)), MAX_BATCH)
    out = [median_record(label, "side_raw_txn_per_s", "txn/s", raws, callers=8, preload=preload)]
    for (params, _), samples in zip(drains, rates, strict=True):
        out.append(median_record(label, "side_cycles_per_s", "cycles/s", samples, **params))
        ratios = [c / r for c, r in zip(samples, raws, strict=True)]
        out.append(median_record(label, "cycles_to_raw_txn", "ratio", ratios, **params))
    return out


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
