"""One coroutine per ``entroq`` subcommand, and their arguments."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import sys
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from ..client import AsyncEntroQ
from ..errors import DependencyError, InvalidArgument
from ..modification import Modification
from ..timeutil import utcnow
from ..types import Task
from . import render
from .arguments import count, delay, seconds

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {}


def _command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


async def _open(args: argparse.Namespace) -> AsyncEntroQ:
    async with _rpc(args):
        return await AsyncEntroQ.open(args.url, claimant=args.claimant)


def _rpc(args: argparse.Namespace) -> asyncio.Timeout:
    """A deadline for calls that should answer at once (not blocking claims)."""
    return asyncio.timeout(args.rpc_timeout)


def _out(text: str) -> None:
    print(text)


# --- qs ---------------------------------------------------------------------


@_command("qs")
async def queue_stats(args: argparse.Namespace) -> int:
    """Print queue stats."""
    async with await _open(args) as eq, _rpc(args):
        stats = await eq.queue_stats(args.prefix or (), args.exact or (), args.limit)
    if args.json:
        _out(render.dumps([render.stats_json(s) for s in stats.values()]))
    else:
        _out(render.stats_table(stats.values()))
    return 0


# --- ts ---------------------------------------------------------------------


@_command("ts")
async def list_tasks(args: argparse.Namespace) -> int:
    """Print tasks of a queue and/or with given ids."""
    async with await _open(args) as eq, _rpc(args):
        tasks = await eq.tasks(
            args.queue or "", ids=args.id or (), limit=args.limit, omit_values=args.omit_values
        )
    if args.json:
        _out(render.dumps([render.task_json(t) for t in tasks]))
    else:
        _out(render.tasks_table(tasks))
    return 0


# --- ins --------------------------------------------------------------------


def _values(args: argparse.Namespace) -> list[bytes]:
    values: list[bytes] = [v.encode("utf-8") for v in args.values]
    if args.file:
        with open(args.file, "rb") as f:
            values.append(f.read())
    if args.stdin:
        values.extend(line.rstrip(b"\r\n") for line in sys.stdin.buffer if line.strip())
    if args.base64:
        try:
            values = [base64.b64decode(v, validate=True) for v in values]
        except binascii.Error as exc:
            raise InvalidArgument("values", "<base64>", f"not valid base64: {exc}") from None
    if not values:
        raise InvalidArgument("values", [], "give values as arguments, --file or --stdin")
    if args.id and len(values) != 1:
        raise InvalidArgument("--id", args.id, f"needs exactly one value, got {len(values)}")
    return values


@_command("ins")
async def insert(args: argparse.Namespace) -> int:
    """Insert tasks into a queue in one atomic modification."""
    values = _values(args)
    mod = Modification()
    for value in values:
        mod.insert(args.queue, value, delay=args.delay, id=args.id or "")
    async with await _open(args) as eq, _rpc(args):
        result = await eq.modify(mod)
    if args.json:
        _out(render.dumps([render.task_json(t) for t in result.inserted]))
    else:
        for task in result.inserted:
            _out(f"{task.id}:v{task.version}")
    return 0


# --- claim ------------------------------------------------------------------


@_command("claim")
async def claim(args: argparse.Namespace) -> int:
    """Claim a task (blocking, or --try once)."""
    async with await _open(args) as eq:
        if args.try_:
            async with _rpc(args):
                task = await eq.try_claim(args.queues, args.duration)
        else:
            task = await eq.claim(args.queues, args.duration, timeout=args.timeout)
    if task is None:
        print("entroq: nothing to claim", file=sys.stderr)
        return 1
    _print_tasks(args, [task])
    return 0


def _print_tasks(args: argparse.Namespace, tasks: list[Task]) -> None:
    if args.json:
        _out(render.dumps([render.task_json(t) for t in tasks]))
    else:
        _out(render.tasks_table(tasks))


# --- mod, rm, clear -----------------------------------------------------------


async def _current(eq: AsyncEntroQ, task_id: str, version: int | None) -> Task:
    found = await eq.tasks(ids=[task_id])
    if not found:
        raise DependencyError(message=f"task {task_id!r} does not exist")
    task = found[0]
    if version is not None and version != task.version:
        raise DependencyError(
            changes=[task.as_id()],
            message=f"task {task_id!r} is at version {task.version}, not {version}",
        )
    return task


def _acting_as(args: argparse.Namespace, task: Task) -> str | None:
    """--force acts for the current holder of the task."""
    return task.claimant if args.force else None


@_command("mod")
async def modify(args: argparse.Namespace) -> int:
    """Change one task: queue, value, attempt/err, arrival."""
    async with await _open(args) as eq, _rpc(args):
        task = await _current(eq, args.id, args.version)
        at = utcnow() + timedelta(seconds=args.delay) if args.delay is not None else None
        if at is None and not args.now:
            at = task.at
        value = args.value.encode("utf-8") if args.value is not None else None
        mod = Modification().change(
            task,
            queue=args.queue,
            value=value,
            at=at,
            attempt=0 if args.reset else None,
            err="" if args.reset else None,
        )
        [changed] = (await eq.modify(mod, claimant=_acting_as(args, task))).changed
    _print_tasks(args, [changed])
    return 0


@_command("rm")
async def remove(args: argparse.Namespace) -> int:
    """Delete tasks by id, all in one modification."""
    async with await _open(args) as eq, _rpc(args):
        tasks = [await _current(eq, task_id, None) for task_id in args.ids]
        mod = Modification()
        for task in tasks:
            mod.delete(task)
        if args.force:
            for task in tasks:
                await eq.modify(Modification().delete(task), claimant=task.claimant)
        else:
            await eq.modify(mod)
    if not args.json:
        _out(f"deleted {len(tasks)}")
    else:
        _out(render.dumps({"deleted": [t.id for t in tasks]}))
    return 0


@_command("clear")
async def clear(args: argparse.Namespace) -> int:
    """Delete every task of a queue (leased ones only with --force)."""
    deleted = 0
    async with await _open(args) as eq, _rpc(args):
        while True:
            tasks = await eq.tasks(args.queue, limit=1000, omit_values=True)
            if not tasks:
                break
            if args.force:
                by_holder: dict[str, Modification] = {}
                for t in tasks:
                    by_holder.setdefault(t.claimant, Modification()).delete(t)
                for holder, mod in by_holder.items():
                    await eq.modify(mod, claimant=holder)
            else:
                mod = Modification()
                for t in tasks:
                    mod.delete(t)
                await eq.modify(mod)
            deleted += len(tasks)
    if args.json:
        _out(render.dumps({"deleted": deleted}))
    else:
        _out(f"deleted {deleted}")
    return 0


# --- time ---------------------------------------------------------------------


@_command("time")
async def show_time(args: argparse.Namespace) -> int:
    """Print the backend's clock."""
    async with await _open(args) as eq, _rpc(args):
        now = await eq.time()
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _out(render.dumps({"time": stamp}) if args.json else stamp)
    return 0


# --- arguments ----------------------------------------------------------------


class CommandParser(argparse.ArgumentParser):
    """A command parser that takes positionals after options too.

    argparse alone stops filling ``entroq ins jobs --delay 5 "a.png"``'s values
    at the first option and then calls "a.png" unrecognized.
    """

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing:  # parse_known_intermixed_args calls back here
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _sub(
    subparsers: Any, name: str, help_text: str, example: str, parents: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
    )
    return parser


def add_commands(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add every subcommand's arguments; each also takes the ``parents``' options."""

    def sub(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        return _sub(subparsers, name, help_text, example, parents)

    p = sub("qs", "Show queue stats.", "entroq qs --prefix jobs/ --limit 20")
    p.add_argument("--prefix", action="append", help="queues starting with this (repeatable)")
    p.add_argument("--exact", action="append", help="this exact queue (repeatable)")
    p.add_argument("--limit", type=count, default=0, help="at most this many queues")

    p = sub("ts", "List tasks.", "entroq ts jobs/resize --limit 10 --omit-values")
    p.add_argument("queue", nargs="?", help="queue to list")
    p.add_argument("--id", action="append", help="only this task id (repeatable)")
    p.add_argument("--limit", type=count, default=0, help="at most this many tasks")
    p.add_argument("--omit-values", action="store_true", help="do not fetch values")

    p = sub(
        "ins",
        "Insert tasks (one per value) atomically.",
        "printf 'a.png\\nb.png\\n' | entroq ins jobs/resize --stdin --delay 5",
    )
    p.add_argument("queue", help="queue to insert into")
    p.add_argument("values", nargs="*", help="task values (text)")
    p.add_argument("--file", help="one more task whose value is this file's contents")
    p.add_argument("--stdin", action="store_true", help="one task per non-empty stdin line")
    p.add_argument("--base64", action="store_true", help="values are base64-encoded bytes")
    p.add_argument("--delay", type=delay, help="seconds until the tasks become available")
    p.add_argument("--id", help="explicit task id (one value only)")

    p = sub(
        "claim",
        "Claim a task for a lease and print it.",
        "entroq claim jobs/resize --duration 60 --timeout 10",
    )
    p.add_argument("queues", nargs="+", help="queues to claim from")
    p.add_argument("--try", dest="try_", action="store_true", help="do not wait")
    p.add_argument("--duration", type=seconds, default=30.0, help="lease seconds (default 30)")
    p.add_argument("--timeout", type=seconds, help="give up after this many seconds")

    p = sub(
        "mod",
        "Change one task.",
        "entroq mod 3f2a... --queue jobs/resize --reset --now",
    )
    p.add_argument("id", help="task id")
    p.add_argument("--version", type=int, help="fail unless the task is at this version")
    p.add_argument("--queue", help="move to this queue")
    p.add_argument("--value", help="new value (text)")
    p.add_argument("--reset", action="store_true", help="reset attempt and err")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", type=delay, help="available after this many seconds")
    when.add_argument("--now", action="store_true", help="available now")
    p.add_argument("--force", action="store_true", help="act for the task's current holder")

    p = sub("rm", "Delete tasks.", "entroq rm 3f2a... 9b1c... --force")
    p.add_argument("ids", nargs="+", help="task ids")
    p.add_argument("--force", action="store_true", help="act for the tasks' current holders")

    p = sub("clear", "Empty a queue.", "entroq clear jobs/resize/err --force")
    p.add_argument("queue", help="queue to empty")
    p.add_argument("--force", action="store_true", help="also delete tasks leased by others")

    sub("time", "Show the backend's clock.", "entroq time")
