"""Where a cycle's CPU goes when workers reach the backend through entroq-svc.

8 remote workers (a handle each, in this process) drain a queue through an
``entroq-svc`` started by ``svc_process``; the machine's busy CPU per
claim+delete cycle is split into the service process, the workers' process,
and the rest (the database server if there is one, the kernel's interrupt
work for loopback traffic, and anything else running). Each part is a median
over the runs, so the parts need not add up to the machine's median. On two
shared cores this says which process a faster design has to make cheaper,
which a rate alone cannot.
"""

from __future__ import annotations

import os

from entroq_core import AsyncEntroQ

from .machine_cpu import Meter
from .measures import cleanup, drain_rate, fill, fresh_queue
from .record import Record, median_record

WORKERS = 8
PRELOAD = 10_000  # more than 8 workers drain in SECONDS through any service here
SECONDS = 3.0
BATCH = 500  # fits every backend's Txn or statement limits (etcd's is the smallest)


async def svc_cpu_records(label: str, url: str, runs: int) -> list[Record]:
    """Cycles/s of 8 remote workers and the CPU per cycle of each process involved."""
    from scripts.servers.entroq_svc import svc_pid

    pid = svc_pid(url)
    if pid is None:
        return []  # not a service this benchmark started: its process is not ours to read
    rates: list[float] = []
    split: dict[str, list[float]] = {"machine": [], "service": [], "workers": [], "rest": []}
    for _ in range(runs):
        setup = await AsyncEntroQ.open(url)
        queue = fresh_queue("svc-cpu")
        clients: list[AsyncEntroQ] = []
        meter = Meter({"service": pid, "workers": os.getpid()})
        try:
            await fill(setup, queue, PRELOAD, batch=BATCH)
            clients = [await AsyncEntroQ.open(url) for _ in range(WORKERS)]
            rates.append(await drain_rate(clients, queue, SECONDS, meter))
        finally:
            await cleanup(setup, queue, clients, BATCH)
        machine = meter.us_per_unit()
        service = meter.us_per_unit("service")
        workers = meter.us_per_unit("workers")
        if machine is None or service is None or workers is None:
            continue  # no /proc here: rates only
        split["machine"].append(machine)
        split["service"].append(service)
        split["workers"].append(workers)
        split["rest"].append(max(0.0, machine - service - workers))
    params = {"workers": WORKERS, "via": "entroq-svc"}
    out = [median_record(label, "svc_split_cycles_per_s", "cycles/s", rates, **params)]
    for process, samples in split.items():
        if samples:
            out.append(
                median_record(
                    label, "svc_split_cpu_per_cycle", "us", samples, process=process, **params
                )
            )
    return out
