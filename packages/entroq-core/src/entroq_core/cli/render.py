"""How the CLI shows tasks and stats: tables for people, JSON for scripts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..types import QueueStats, Task


def show_value(value: bytes) -> str:
    """UTF-8 text as is; anything else as ``base64:...``."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")


def _time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_json(task: Task) -> dict[str, Any]:
    """A task as a JSON object; the value as text, or base64 with value_encoding."""
    try:
        value, encoding = task.value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(task.value).decode("ascii"), "base64"
    return {
        "queue": task.queue,
        "id": task.id,
        "version": task.version,
        "at": _time(task.at),
        "claimant": task.claimant,
        "value": value,
        "value_encoding": encoding,
        "created": _time(task.created),
        "modified": _time(task.modified),
        "claims": task.claims,
        "attempt": task.attempt,
        "err": task.err,
    }


def stats_json(stats: QueueStats) -> dict[str, Any]:
    """Queue stats as a JSON object."""
    return {
        "name": stats.name,
        "num_tasks": stats.num_tasks,
        "num_available": stats.num_available,
        "num_claimed": stats.num_claimed,
        "num_future": stats.num_future,
        "max_claims": stats.max_claims,
    }


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [list(header)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def tasks_table(tasks: Sequence[Task], width: int = 60) -> str:
    """Tasks, one per line, values cut to ``width`` characters."""
    rows = []
    for t in tasks:
        value = show_value(t.value).replace("\n", "\\n")
        if len(value) > width:
            value = value[: width - 3] + "..."
        rows.append((t.queue, t.id, t.version, _time(t.at), t.claimant, t.claims, t.attempt, value))
    return table(("QUEUE", "ID", "VER", "AT", "CLAIMANT", "CLAIMS", "ATTEMPT", "VALUE"), rows)


def stats_table(stats: Iterable[QueueStats]) -> str:
    """Queue stats, one queue per line."""
    return table(
        ("QUEUE", "TASKS", "AVAILABLE", "CLAIMED", "FUTURE", "MAX_CLAIMS"),
        (
            (s.name, s.num_tasks, s.num_available, s.num_claimed, s.num_future, s.max_claims)
            for s in stats
        ),
    )


def dumps(data: object) -> str:
    """Stable, readable JSON."""
    return json.dumps(data, indent=2, sort_keys=False)
