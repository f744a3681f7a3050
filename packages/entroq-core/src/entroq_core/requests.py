"""Validated requests: the only shapes a backend is ever handed.

Every check of SPEC sections 1-2 that needs no storage happens here, once, when a
request is built, so no backend (and no server) can forget one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from .errors import InvalidArgument, MessageTooLarge
from .timeutil import EPOCH, truncate_ms
from .types import TaskChange, TaskData, TaskID

MAX_QUEUE_BYTES = 1024
MAX_ID_BYTES = 128
MAX_VALUE_BYTES = 10 * 1024 * 1024
MAX_ATTEMPT = 2**31 - 1
MAX_VERSION = 2**63 - 1
# A lease must end before datetime's year 9999 on every backend: 100 years is plenty.
MAX_DURATION_MS = 100 * 365 * 24 * 3600 * 1000


def _utf8_size(field: str, value: Any) -> int:
    """The UTF-8 size of text that every backend can store: a str without NUL."""
    if not isinstance(value, str):
        raise InvalidArgument(field, value, "must be a string")
    if "\x00" in value:
        raise InvalidArgument(field, value, "must not contain NUL characters")
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(field, value, "must be valid UTF-8 text") from None


def check_name(field: str, value: Any, max_bytes: int) -> str:
    """Validate a queue name, id or claimant: non-empty text, no NUL, at most max_bytes UTF-8."""
    if isinstance(value, str) and not value:
        raise InvalidArgument(field, value, "must not be empty")
    size = _utf8_size(field, value)
    if size > max_bytes:
        raise InvalidArgument(field, value, f"is {size} bytes, the limit is {max_bytes}")
    return cast(str, value)


def check_prefix(field: str, value: Any) -> str:
    """Validate a queue name prefix: text without NUL, of any length ("" matches all)."""
    _utf8_size(field, value)
    return cast(str, value)


def check_queue(field: str, value: Any) -> str:
    """Validate a queue name."""
    return check_name(field, value, MAX_QUEUE_BYTES)


def check_id(field: str, value: Any) -> str:
    """Validate a task id or claimant id."""
    return check_name(field, value, MAX_ID_BYTES)


def check_value(field: str, value: Any, max_bytes: int = MAX_VALUE_BYTES) -> bytes:
    """Validate a task value: bytes no larger than max_bytes."""
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise InvalidArgument(field, value, "must be bytes")
    if len(value) > max_bytes:
        raise MessageTooLarge(field, f"<{len(value)} bytes>", f"exceeds the limit of {max_bytes}")
    return value


def check_count(field: str, value: Any, maximum: int) -> int:
    """Validate a non-negative integer no larger than maximum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(field, value, "must be an integer")
    if value < 0 or value > maximum:
        raise InvalidArgument(field, value, f"must be between 0 and {maximum}")
    return value


def check_at(field: str, value: Any) -> datetime | None:
    """Validate an arrival time: None (now) or a datetime, truncated to milliseconds."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidArgument(field, value, "must be a datetime or None")
    at = truncate_ms(value)
    # The epoch and earlier mean "now", as on the wire where 0 is unset.
    return at if at > EPOCH else None


def check_err(field: str, value: Any) -> str:
    """Validate an error text: any valid UTF-8 string without NUL characters."""
    if not isinstance(value, str):
        raise InvalidArgument(field, value, "must be a string")
    if "\x00" in value:
        raise InvalidArgument(field, value, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(field, value, "must be valid UTF-8 text") from None
    return value


def check_task_id(field: str, value: Any) -> TaskID:
    """Validate an id+version reference."""
    if not isinstance(value, TaskID):
        raise InvalidArgument(field, value, "must be a TaskID")
    check_id(f"{field}.id", value.id)
    check_count(f"{field}.version", value.version, MAX_VERSION)
    if value.queue:
        check_queue(f"{field}.queue", value.queue)
    return value


def check_data(field: str, value: Any, max_value_bytes: int = MAX_VALUE_BYTES) -> TaskData:
    """Validate insert or change data, normalising its arrival time."""
    if not isinstance(value, TaskData):
        raise InvalidArgument(field, value, "must be a TaskData")
    data: TaskData = value
    check_queue(f"{field}.queue", data.queue)
    if not isinstance(data.id, str):
        raise InvalidArgument(f"{field}.id", data.id, "must be a string")
    if data.id:
        check_id(f"{field}.id", data.id)
    payload = check_value(f"{field}.value", data.value, max_value_bytes)
    check_count(f"{field}.attempt", data.attempt, MAX_ATTEMPT)
    check_err(f"{field}.err", data.err)
    at = check_at(f"{field}.at", data.at)
    if at is not data.at or payload is not data.value:
        data = replace(data, at=at, value=payload)
    return data


def _tuple(field: str, values: Any) -> tuple[Any, ...]:
    if type(values) is tuple:
        return values
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidArgument(field, values, "must be a list")
    return tuple(values)


def _plain(value: Any, max_bytes: int) -> bool:
    """Fast path: a non-empty ASCII string without NUL that fits (the usual case)."""
    return (
        type(value) is str
        and 0 < len(value) <= max_bytes
        and value.isascii()
        and "\x00" not in value
    )


def _plain_task_id(value: Any) -> bool:
    return (
        type(value) is TaskID
        and _plain(value.id, MAX_ID_BYTES)
        and type(value.version) is int
        and 0 <= value.version <= MAX_VERSION
        and (value.queue == "" or _plain(value.queue, MAX_QUEUE_BYTES))
    )


def _plain_data(value: Any, max_value_bytes: int) -> bool:
    at = value.at if type(value) is TaskData else None
    return (
        type(value) is TaskData
        and _plain(value.queue, MAX_QUEUE_BYTES)
        and (value.id == "" or _plain(value.id, MAX_ID_BYTES))
        and type(value.value) is bytes
        and len(value.value) <= max_value_bytes
        and type(value.attempt) is int
        and 0 <= value.attempt <= MAX_ATTEMPT
        and type(value.err) is str
        and value.err.isascii()
        and "\x00" not in value.err
        and (
            at is None
            or (
                type(at) is datetime
                and at.tzinfo is UTC
                and at.microsecond % 1000 == 0
                and at > EPOCH
            )
        )
    )


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Claim one available task from any of ``queues`` for ``duration_ms``."""

    claimant: str
    queues: tuple[str, ...]
    duration_ms: int

    def __post_init__(self) -> None:
        if not _plain(self.claimant, MAX_ID_BYTES):
            check_id("claimant", self.claimant)
        queues = self.queues if type(self.queues) is tuple else _tuple("queues", self.queues)
        if not queues:
            raise InvalidArgument("queues", list(queues), "at least one queue is required")
        for q in queues:
            if not _plain(q, MAX_QUEUE_BYTES):
                check_queue("queues", q)
        if len(queues) > 1:
            # Duplicates count once; dict keeps the caller's order.
            queues = tuple(dict.fromkeys(queues))
        if queues is not self.queues:
            object.__setattr__(self, "queues", queues)
        if type(self.duration_ms) is not int:
            raise InvalidArgument("duration", self.duration_ms, "must be whole milliseconds")
        if self.duration_ms <= 0:
            raise InvalidArgument("duration", self.duration_ms, "must be positive")
        if self.duration_ms > MAX_DURATION_MS:
            raise InvalidArgument(
                "duration", self.duration_ms, f"must be at most {MAX_DURATION_MS} ms (100 years)"
            )


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    """One atomic modification: deletes, changes and inserts guarded by depends."""

    claimant: str
    inserts: tuple[TaskData, ...] = ()
    changes: tuple[TaskChange, ...] = ()
    deletes: tuple[TaskID, ...] = ()
    depends: tuple[TaskID, ...] = ()
    max_value_bytes: int = MAX_VALUE_BYTES

    def __post_init__(self) -> None:
        if not _plain(self.claimant, MAX_ID_BYTES):
            check_id("claimant", self.claimant)
        limit = self.max_value_bytes
        inserts = _tuple("inserts", self.inserts)
        if not all(_plain_data(d, limit) for d in inserts):
            inserts = tuple(check_data(f"inserts[{i}]", d, limit) for i, d in enumerate(inserts))
        changes = _tuple("changes", self.changes)
        if not all(_plain_change(c, limit) for c in changes):
            changes = tuple(_check_change(i, c, limit) for i, c in enumerate(changes))
        deletes = _tuple("deletes", self.deletes)
        if not all(map(_plain_task_id, deletes)):
            deletes = tuple(check_task_id(f"deletes[{i}]", d) for i, d in enumerate(deletes))
        depends = _tuple("depends", self.depends)
        if not all(map(_plain_task_id, depends)):
            depends = tuple(check_task_id(f"depends[{i}]", d) for i, d in enumerate(depends))
        if len(inserts) + len(changes) + len(deletes) + len(depends) > 1:
            named = (
                [("inserts", i, d.id) for i, d in enumerate(inserts) if d.id]
                + [("changes", i, c.old.id) for i, c in enumerate(changes)]
                + [("deletes", i, d.id) for i, d in enumerate(deletes)]
                + [("depends", i, d.id) for i, d in enumerate(depends)]
            )
            if len({task_id for _, _, task_id in named}) != len(named):
                _report_repeated_id(named)
        object.__setattr__(self, "inserts", inserts)
        object.__setattr__(self, "changes", changes)
        object.__setattr__(self, "deletes", deletes)
        object.__setattr__(self, "depends", depends)

    def is_empty(self) -> bool:
        """True if the request names nothing at all."""
        return not (self.inserts or self.changes or self.deletes or self.depends)


def _plain_change(change: Any, limit: int) -> bool:
    return (
        type(change) is TaskChange
        and _plain_task_id(change.old)
        and _plain_data(change.new, limit)
        and change.new.id in ("", change.old.id)
    )


def _check_change(i: int, change: Any, limit: int) -> TaskChange:
    if not isinstance(change, TaskChange):
        raise InvalidArgument(f"changes[{i}]", change, "must be a TaskChange")
    old = check_task_id(f"changes[{i}].old", change.old)
    new = check_data(f"changes[{i}].new", change.new, limit)
    if new.id and new.id != old.id:
        raise InvalidArgument(
            f"changes[{i}].new.id", new.id, f"a change cannot rename task {old.id!r}"
        )
    return change if new is change.new else TaskChange(old, new)


def _report_repeated_id(named: list[tuple[str, int, str]]) -> None:
    suffix = {"inserts": ".id", "changes": ".old.id", "deletes": ".id", "depends": ".id"}
    seen: dict[str, str] = {}
    for kind, i, task_id in named:
        where = f"{kind}[{i}]{suffix[kind]}"
        if task_id in seen:
            raise InvalidArgument(where, task_id, f"the same id already appears at {seen[task_id]}")
        seen[task_id] = where


@dataclass(frozen=True, slots=True)
class TasksRequest:
    """A best-effort listing by queue, by ids, or both."""

    queue: str = ""
    claimant: str = ""
    ids: tuple[str, ...] = ()
    limit: int = 0
    omit_values: bool = False

    def __post_init__(self) -> None:
        ids = _tuple("ids", self.ids)
        for i, task_id in enumerate(ids):
            check_id(f"ids[{i}]", task_id)
        object.__setattr__(self, "ids", ids)
        if self.queue:
            check_queue("queue", self.queue)
        elif not ids:
            raise InvalidArgument("queue", self.queue, "give a queue, ids, or both")
        if self.claimant:
            check_id("claimant", self.claimant)
        check_count("limit", self.limit, 2**31 - 1)


@dataclass(frozen=True, slots=True)
class QueuesRequest:
    """Select queues by prefix or exact name; both empty selects all."""

    prefixes: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    limit: int = 0

    def __post_init__(self) -> None:
        prefixes = _tuple("match_prefix", self.prefixes)
        exact = _tuple("match_exact", self.exact)
        for i, p in enumerate(prefixes):
            check_prefix(f"match_prefix[{i}]", p)
        for i, e in enumerate(exact):
            check_queue(f"match_exact[{i}]", e)
        object.__setattr__(self, "prefixes", prefixes)
        object.__setattr__(self, "exact", exact)
        check_count("limit", self.limit, 2**31 - 1)

    def matches(self, queue: str) -> bool:
        """True if ``queue`` is selected by this request."""
        if not self.prefixes and not self.exact:
            return True
        return queue in self.exact or any(queue.startswith(p) for p in self.prefixes)
