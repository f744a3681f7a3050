"""Running blocking functions from asyncio in threads of their own."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def in_own_thread(fn: Callable[[Any], T], arg: Any, *, name: str) -> T:
    """``fn(arg)`` in a new daemon thread, started at once, with this context.

    Not asyncio's shared pool (``to_thread``): it has a few threads for the whole
    process (6 on a 2-core machine), so with more Worker slots than threads,
    handlers waited for one while their leases and timeouts ran, and each
    timed-out handler that kept running took one away for good. Daemon threads,
    because Python cannot stop a thread: one still running when its awaiter
    gave up (a timeout, a worker stopping) must not keep the process from exiting.
    """
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()

    def deliver(result: Any, error: BaseException | None) -> None:
        if outcome.done():
            return  # the awaiter gave up meanwhile
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result)

    context = contextvars.copy_context()  # as to_thread gives its functions

    def work() -> None:
        error: BaseException | None
        try:
            result, error = context.run(fn, arg), None
        except StopIteration as exc:  # a future cannot hold one
            result, error = None, RuntimeError(f"{name} raised StopIteration: {exc}")
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await outcome
