"""What `--backend` names: a throwaway server started like the test fixtures, or a URL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from .record import Record


@asynccontextmanager
async def _mem() -> AsyncIterator[str]:
    # A named store so that every client of one measurement shares the tasks.
    yield f"mem://bench-{uuid.uuid4().hex}"


@asynccontextmanager
async def _grpc() -> AsyncIterator[str]:
    # A separate `entroq-svc --backend mem` process, as users deploy it.
    from scripts.servers.entroq_svc import svc_process

    with svc_process("mem") as url:
        yield url


@asynccontextmanager
async def _pg() -> AsyncIterator[str]:
    # A throwaway PostgreSQL 15 with default settings, started like the test fixtures.
    from scripts.servers.postgres import running

    with running() as server:
        yield "pg://" + server.url.split("://", 1)[1] + "?pool_max=4"


@asynccontextmanager
async def _pg_svc() -> AsyncIterator[str]:
    # `entroq-svc --backend <that PostgreSQL>`, as users deploy it.
    from scripts.servers.entroq_svc import svc_process
    from scripts.servers.postgres import running

    with running() as server:
        backend = "pg://" + server.url.split("://", 1)[1] + "?pool_max=32"
        with svc_process(backend) as url:
            yield url


def _pg_target() -> Target:
    from .pg_measures import pg_extras
    from .pg_reference import reference_records

    return Target(
        "pg",
        _pg,
        workers=(1, 8, 32),
        batches=(1, 100, 1000),
        extras=[reference_records, pg_extras],
    )


# Extra, backend-specific measurements: (label, url, runs) -> records.
ExtraMeasure = Callable[[str, str, int], Awaitable[list[Record]]]


@dataclass
class Target:
    """A backend to benchmark: how to get a URL for it and what to measure."""

    name: str
    start: Callable[[], AbstractAsyncContextManager[str]]
    workers: tuple[int, ...] = (1, 8)
    batches: tuple[int, ...] = (1, 100)
    depths: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    rss: bool = False
    extras: list[ExtraMeasure] = field(default_factory=list)
    # Most tasks one modify may carry (fills and cleanups split larger batches).
    max_batch: int = 10_000


def _pg_svc_target() -> Target:
    from .svc_cpu import svc_cpu_records

    return Target(
        "pg-svc",
        _pg_svc,
        workers=(1, 8, 32),
        depths=(1_000, 100_000),
        extras=[svc_cpu_records],
    )


def _etcd_target() -> Target:
    from . import etcd
    from .etcd_state import burst_records

    return Target(
        "etcd",
        etcd.start,
        batches=(1, 100),
        depths=(1_000, 100_000),
        extras=[
            etcd.side_by_side_records,
            etcd.steady_side_by_side_records,
            burst_records,
            etcd.raw_txn_records,
        ],
        max_batch=etcd.MAX_BATCH,
    )


def _etcd_svc_target() -> Target:
    from . import etcd
    from .svc_cpu import svc_cpu_records

    return Target(
        "etcd-svc",
        etcd.start_svc,
        workers=(1, 8, 32),
        batches=(1, 100),
        depths=(1_000, 100_000),
        extras=[etcd.svc_side_by_side_records, etcd.raw_txn_records, svc_cpu_records],
        max_batch=etcd.MAX_BATCH,
    )


def _grpc_target() -> Target:
    from .grpc_measures import grpc_extras
    from .process_measures import process_records
    from .svc_cpu import svc_cpu_records
    from .worker_measures import worker_records

    return Target(
        "grpc",
        _grpc,
        workers=(1, 8, 64),
        depths=(1_000, 100_000),
        extras=[grpc_extras, process_records, worker_records, svc_cpu_records],
    )


TARGETS: dict[str, Target] = {
    "mem": Target("mem", _mem, rss=True),
    "etcd": _etcd_target(),
    "etcd-svc": _etcd_svc_target(),
    "grpc": _grpc_target(),
    "pg": _pg_target(),
    "pg-svc": _pg_svc_target(),
}


def resolve(spec: str) -> Target:
    """A target by name, or an ad-hoc one for a full URL (measured with defaults)."""
    if spec in TARGETS:
        return TARGETS[spec]
    if "://" not in spec:
        known = ", ".join(sorted(TARGETS))
        raise SystemExit(f"unknown backend {spec!r}: give one of {known} or a URL")

    @asynccontextmanager
    async def existing() -> AsyncIterator[str]:
        yield spec

    scheme = spec.split("://", 1)[0]
    base = TARGETS.get(scheme)
    depths = base.depths if base else (1_000, 100_000)
    max_batch = base.max_batch if base else 10_000
    return Target(spec, existing, depths=depths, max_batch=max_batch)
