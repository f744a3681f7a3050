"""One command for every benchmark: prints a table, then the same records as JSON.

hatch run bench:run [--backend NAME_OR_URL ...] [--json FILE] [--runs N] [--quick]

The JSON is an array of ``{backend, metric, value, unit, params}`` records, one
per line, after the table and a blank line; ``--json FILE`` also writes it to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable

from . import measures
from .record import Record, median_record, render_table
from .targets import Target, resolve


async def _median(runs: int, measure: Callable[[], Awaitable[float]]) -> list[float]:
    return [await measure() for _ in range(runs)]


async def bench_target(target: Target, runs: int, quick: bool) -> list[Record]:
    """Every standard measurement of one target, each repeated ``runs`` times."""
    out: list[Record] = []
    label = target.name
    depths = [d for d in target.depths if not quick or d <= 100_000]
    async with target.start() as url:
        for workers in target.workers:
            samples = await _median(
                runs,
                lambda w=workers: measures.cycles_per_second(url, w, max_batch=target.max_batch),
            )
            out.append(median_record(label, "cycles_per_s", "cycles/s", samples, workers=workers))
            print(out[-1].metric, out[-1].params.get("workers"), out[-1].value, file=sys.stderr)
        for batch in target.batches:
            samples = await _median(
                runs,
                lambda b=batch: measures.inserts_per_second(url, b, max_batch=target.max_batch),
            )
            out.append(median_record(label, "insert_per_s", "tasks/s", samples, batch=batch))
        for depth in depths:
            p50s, p99s = [], []
            for _ in range(runs):
                p50, p99 = await measures.claim_latency_ms(url, depth, max_batch=target.max_batch)
                p50s.append(p50)
                p99s.append(p99)
            out.append(median_record(label, "claim_latency_ms_p50", "ms", p50s, depth=depth))
            out.append(median_record(label, "claim_latency_ms_p99", "ms", p99s, depth=depth))
        p50s, p99s = [], []
        for _ in range(runs):
            p50, p99 = await measures.wake_latency_ms(url)
            p50s.append(p50)
            p99s.append(p99)
        out.append(median_record(label, "wake_latency_ms_p50", "ms", p50s, processes=1))
        out.append(median_record(label, "wake_latency_ms_p99", "ms", p99s, processes=1))
        for extra in target.extras:
            out.extend(await extra(label, url, runs))
    return out


def rss_records(label: str, tasks: int, runs: int) -> list[Record]:
    """Resident memory of a mem store with ``tasks`` tasks, each run in a fresh process."""
    samples, baselines = [], []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.rss", str(tasks), "100"],
            check=True,
            capture_output=True,
            text=True,
        )
        data = json.loads(result.stdout)
        samples.append(data["rss_mib"])
        baselines.append(data["baseline_mib"])
    return [
        median_record(
            label,
            "rss_mib",
            "MiB",
            samples,
            tasks=tasks,
            value_bytes=100,
            baseline_mib=min(baselines),
        )
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named on the command line."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--backend", action="append", help="name (mem, pg, etcd, grpc...) or URL")
    parser.add_argument("--json", help="also write the JSON records to this file")
    parser.add_argument("--runs", type=int, default=3, help="repeat each measurement (median)")
    parser.add_argument("--quick", action="store_true", help="smaller depths and sizes")
    args = parser.parse_args(argv)
    records: list[Record] = []
    for spec in args.backend or ["mem"]:
        target = resolve(spec)
        records.extend(asyncio.run(bench_target(target, args.runs, args.quick)))
        if target.rss:
            tasks = 100_000 if args.quick else 1_000_000
            records.extend(rss_records(target.name, tasks, args.runs))
    as_json = records_json(records)
    print(render_table(records))
    print()
    print(as_json, end="")
    if args.json:
        with open(args.json, "w") as f:
            f.write(as_json)
    return 0


def records_json(records: list[Record]) -> str:
    """The records as a JSON array, one record per line (readable, and easy to grep)."""
    lines = ",\n".join(json.dumps(r.as_json()) for r in records)
    return f"[\n{lines}\n]\n" if records else "[]\n"


if __name__ == "__main__":
    raise SystemExit(main())
