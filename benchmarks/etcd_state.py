"""How one burst of writes slows every later request of an etcd 3.4 server.

etcd keeps the writes of its current backend batch (up to
``--backend-batch-interval``, 100 ms by default) in a buffer, and every
request copies that buffer. In etcd 3.4 the copy is as long as the buffer ever
grew, not as long as what it holds, so the largest burst a server has seen (one
Txn inserting 500 tasks writes about 2,000 keys) sets a cost that later
requests keep paying.

The measurement: per run, per etcd configuration and per load shape, a fresh
single-member etcd; its raw Txn rate; the same 5,000 tasks inserted either one
per Txn (from 8 handles at once) or 500 per Txn; the raw rate again (with
etcd's CPU per raw Txn) and the claim+delete cycles of 8 workers with a
handle each on the loaded queue. The tasks stored are the same, so a
difference between the shapes is the burst; a difference between the
configurations is what an operator can do about it.
"""

from __future__ import annotations

from entroq_core import AsyncEntroQ

from . import etcd
from .machine_cpu import Meter
from .measures import cleanup, drain_rate, fresh_queue
from .record import Record, median_record

TASKS = 5000
SHAPES = (1, etcd.MAX_BATCH)  # tasks per Txn
CONFIGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "--backend-batch-interval=10ms": ("--backend-batch-interval", "10ms"),
}


async def burst_records(label: str, url: str, runs: int) -> list[Record]:
    """Per configuration and load shape: raw Txn rate before and after loading,
    etcd's CPU per raw Txn after, and 8 workers' cycles on the loaded queue.

    ``url`` is not used: every sample needs a server that has seen no burst.
    """
    samples: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(runs):
        for config, flags in CONFIGS.items():
            for per_txn in SHAPES:
                for metric, value in (await _one_server(flags, per_txn)).items():
                    samples.setdefault((metric, config, per_txn), []).append(value)
    out = []
    for (metric, config, per_txn), values in samples.items():
        params = {"etcd": config, "tasks_per_txn": per_txn, "tasks": TASKS}
        if metric == "cycles":
            params |= {"workers": 8, "handles": 8}
            out.append(median_record(label, "burst_cycles_per_s", "cycles/s", values, **params))
        elif metric == "etcd_cpu_after":
            out.append(median_record(label, "burst_etcd_cpu_per_raw_txn", "us", values, **params))
        else:
            when = "before" if metric == "raw_before" else "after"
            params |= {"callers": 8, "when": f"{when} loading"}
            out.append(median_record(label, "burst_raw_txn_per_s", "txn/s", values, **params))
    for config in CONFIGS:
        for per_txn in SHAPES:
            before = samples[("raw_before", config, per_txn)]
            after = samples[("raw_after", config, per_txn)]
            ratios = [a / b for a, b in zip(after, before, strict=True)]
            params = {"etcd": config, "tasks_per_txn": per_txn}
            out.append(median_record(label, "burst_raw_after_to_before", "ratio", ratios, **params))
    return out


async def _one_server(flags: tuple[str, ...], per_txn: int) -> dict[str, float]:
    """The measurements of one run on one fresh server started with ``flags``."""
    out: dict[str, float] = {}
    async with etcd.start(raw_runs=0, flags=flags) as url:
        out["raw_before"] = await etcd.raw_txn_per_second(url)
        setup = await AsyncEntroQ.open(url)
        queue = fresh_queue("burst")
        await etcd.load(url, setup, queue, TASKS, per_txn)
        pid = etcd.etcd_pid(url)
        meter = Meter({"etcd": pid} if pid is not None else None)
        out["raw_after"] = await etcd.raw_txn_per_second(url, meter=meter)
        cost = meter.us_per_unit("etcd")
        if cost is not None:
            out["etcd_cpu_after"] = cost
        workers = [await AsyncEntroQ.open(url) for _ in range(8)]
        out["cycles"] = await drain_rate(workers, queue, seconds=3.0)
        await cleanup(setup, queue, workers, etcd.MAX_BATCH)
    return out
