"""Resident memory of a mem:// store holding N tasks, measured in a fresh process.

Run as ``python -m benchmarks.rss TASKS VALUE_BYTES``; prints JSON
{"baseline_mib": ..., "rss_mib": ...}.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys

from entroq_core import AsyncEntroQ

from .measures import fill


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found")


async def main(tasks: int, value_bytes: int) -> None:
    baseline = rss_mib()
    eq = await AsyncEntroQ.open("mem://")
    await fill(eq, "rss", tasks, value=b"v" * value_bytes, batch=10_000)
    gc.collect()
    print(json.dumps({"baseline_mib": round(baseline, 1), "rss_mib": round(rss_mib(), 1)}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
