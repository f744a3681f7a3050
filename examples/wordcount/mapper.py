"""Mapper worker: one map task (a file's text) becomes one partial count."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable

from entroq_core import AsyncEntroQ, Modification, Task, Worker

from .counting import Queues, count_words, decode_file, encode_partial


def handler(queues: Queues) -> Callable[[Task], Awaitable[Modification]]:
    """Count the words of the file in the task and pass them on to the reducer."""

    async def handle(task: Task) -> Modification:
        path, text = decode_file(task.value)
        counts = count_words(text)
        # Move the task on (same id, so a redo cannot create a second partial).
        return Modification().change(task, queue=queues.reduce, value=encode_partial(path, counts))

    return handle


async def main(url: str, prefix: str, concurrency: int) -> None:
    """Run a mapper until SIGTERM."""
    queues = Queues(prefix)
    async with await AsyncEntroQ.open(url) as eq:
        worker = Worker(eq, queues.map, handler(queues), concurrency=concurrency, lease=10)
        worker.install_signal_handlers()
        await worker.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="word-count mapper")
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.url, args.prefix, args.concurrency))
