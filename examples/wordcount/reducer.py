"""Reducer worker: fold one partial count into the result, atomically."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable

from entroq_core import AsyncEntroQ, Modification, Task, Worker

from .counting import Queues, decode_partial, decode_result, encode_result


def handler(eq: AsyncEntroQ, queues: Queues) -> Callable[[Task], Awaitable[Modification]]:
    """Add a partial to the total: delete the partial and change the total in one modify."""

    async def handle(task: Task) -> Modification:
        [total] = await eq.tasks(ids=[queues.result_id])
        files, counts = decode_result(total.value)
        path, partial = decode_partial(task.value)
        counts.update(partial)
        # The change names the total's exact version: if another reducer folded in
        # something meanwhile, this commit fails and the partial is tried again.
        return (
            Modification().delete(task).change(total, value=encode_result([*files, path], counts))
        )

    return handle


async def main(url: str, prefix: str) -> None:
    """Run the reducer until SIGTERM."""
    queues = Queues(prefix)
    async with await AsyncEntroQ.open(url) as eq:
        worker = Worker(eq, queues.reduce, handler(eq, queues), lease=10)
        worker.install_signal_handlers()
        await worker.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="word-count reducer")
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.url, args.prefix))
