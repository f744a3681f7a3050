"""How one burst of writes slows every later request of an etcd 3.4 server.

etcd keeps the writes of its current backend batch (up to 100 ms of them) in
a buffer, and each request copies that buffer. In etcd 3.4 the copy is as long
as the buffer ever grew, not as long as what it holds, and the buffer never
shrinks while writes keep coming. So the largest burst a server has seen (say
one Txn inserting 500 tasks, about 2,000 keys) sets a cost that every later
request pays, for as long as the server runs.

The measurement: per run and per load shape, a fresh single-member etcd; its
raw Txn rate and etcd's CPU per raw Txn; the same 5,000 tasks inserted either
one per Txn (from 8 handles at once) or 500 per Txn; the raw rate again. The
tasks stored are the same, so a difference between the shapes is the burst.
"""

from __future__ import annotations

import asyncio

from entroq_core import AsyncEntroQ

from . import etcd
from .machine_cpu import Meter
from .measures import fresh_queue
from .record import Record, median_record

TASKS = 5000
SHAPES = (1, etcd.MAX_BATCH)  # tasks per Txn


async def burst_records(label: str, url: str, runs: int) -> list[Record]:
    """Raw Txn rate (and etcd's CPU per Txn) before and after loading, per load shape.

    ``url`` is not used: every sample needs a server that has seen no burst.
    """
    from scripts.servers.etcd import EtcdCluster

    rates: dict[tuple[int, str], list[float]] = {}
    costs: dict[tuple[int, str], list[float]] = {}
    for _ in range(runs):
        for per_txn in SHAPES:
            cluster = await asyncio.to_thread(lambda: EtcdCluster(1).start())
            member = cluster.members[0].proc
            assert member is not None
            fresh = cluster.url + "/bench/"
            try:
                for when in ("before", "after"):
                    if when == "after":
                        setup = await AsyncEntroQ.open(fresh)
                        await etcd.load(fresh, setup, fresh_queue("burst"), TASKS, per_txn)
                        await setup.aclose()
                    meter = Meter({"etcd": member.pid})
                    rates.setdefault((per_txn, when), []).append(
                        await etcd.raw_txn_per_second(fresh, meter=meter)
                    )
                    cost = meter.us_per_unit("etcd")
                    if cost is not None:
                        costs.setdefault((per_txn, when), []).append(cost)
            finally:
                await asyncio.to_thread(cluster.stop)
    out = []
    for (per_txn, when), samples in rates.items():
        params = {"callers": 8, "tasks_per_txn": per_txn, "when": f"{when} loading {TASKS:,} tasks"}
        out.append(median_record(label, "burst_raw_txn_per_s", "txn/s", samples, **params))
        if len(costs.get((per_txn, when), [])) == len(samples):
            cpu = costs[(per_txn, when)]
            out.append(median_record(label, "burst_etcd_cpu_per_raw_txn", "us", cpu, **params))
    for per_txn in SHAPES:
        after, before = rates[(per_txn, "after")], rates[(per_txn, "before")]
        ratios = [a / b for a, b in zip(after, before, strict=True)]
        out.append(
            median_record(label, "burst_raw_after_to_fresh", "ratio", ratios, tasks_per_txn=per_txn)
        )
    return out
