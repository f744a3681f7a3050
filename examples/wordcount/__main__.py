"""Run a whole word count: producer here, mapper and reducer worker processes.

python -m examples.wordcount [--url URL] [--mappers N] [--top K] FILE...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from entroq_core import AsyncEntroQ
from entroq_core.errors import BackendUnavailable

from .counting import Queues, decode_result
from .producer import produce


async def wait_for_result(eq: AsyncEntroQ, queues: Queues, files: int, timeout: float) -> bytes:
    """Poll until the result has folded in every file."""
    async with asyncio.timeout(timeout):
        while True:
            [total] = await eq.tasks(ids=[queues.result_id])
            done, _ = decode_result(total.value)
            if len(done) == files:
                return total.value
            await asyncio.sleep(0.1)


async def collect(url: str, queues: Queues, files: list[Path], timeout: float) -> bytes:
    """Produce the map tasks, wait for the answer, and clean up the result task."""
    async with await AsyncEntroQ.open(url) as eq:
        await produce(eq, queues, files)
        result = await wait_for_result(eq, queues, len(files), timeout)
        [total] = await eq.tasks(ids=[queues.result_id])
        await eq.modify(deletes=[total.as_id()])  # leave the server as we found it
        return result


async def service_answers(url: str, within: float) -> bool:
    """Whether the service answers within ``within`` seconds: started together
    (`hatch run entroq-svc &` then this), it may still be starting up."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    async with await AsyncEntroQ.open(url) as eq:
        while True:
            try:
                await eq.time()
                return True
            except BackendUnavailable:
                if loop.time() >= give_up:
                    return False
                await asyncio.sleep(0.2)


def run(url: str, files: list[Path], mappers: int, timeout: float) -> bytes:
    """Start mapper and reducer processes, produce, wait for the answer, stop them."""
    prefix = f"wordcount/{uuid.uuid4().hex[:8]}"
    common = ["--url", url, "--prefix", prefix]
    mapper = [sys.executable, "-m", "examples.wordcount.mapper", *common]
    reducer = [sys.executable, "-m", "examples.wordcount.reducer", *common]
    procs = [subprocess.Popen(mapper) for _ in range(mappers)]
    procs.append(subprocess.Popen(reducer))
    try:
        return asyncio.run(collect(url, Queues(prefix), files, timeout))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)


def main() -> int:
    """Count words of the given files and print the most common ones."""
    parser = argparse.ArgumentParser(prog="python -m examples.wordcount", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--url", default=os.environ.get("ENTROQ_URL", "grpc://localhost:37706"))
    parser.add_argument("--mappers", type=int, default=2)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print all counts as JSON")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument(
        "--wait", type=float, default=15, help="seconds to wait for the service to answer"
    )
    args = parser.parse_args()
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        parser.error(f"not a readable file: {', '.join(missing)}")
    files = list(dict.fromkeys(f.resolve() for f in args.files))  # each file counted once
    if not asyncio.run(service_answers(args.url, args.wait)):
        print(
            f"wordcount: no EntroQ service answers at {args.url} after {args.wait:g}s "
            "(start one with `hatch run entroq-svc`)",
            file=sys.stderr,
        )
        return 3
    value = run(args.url, files, args.mappers, args.timeout)
    files, counts = decode_result(value)
    if args.json:
        print(json.dumps({"files": len(files), "counts": counts}, sort_keys=True))
    else:
        for word, n in counts.most_common(args.top):
            print(f"{n:8d}  {word}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
