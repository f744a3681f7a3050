"""A builder that reads like the change it describes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import InvalidArgument
from .requests import ModifyRequest
from .timeutil import seconds, utcnow
from .types import Task, TaskChange, TaskData, TaskID


def as_bytes(value: bytes | str) -> bytes:
    """Encode text values as UTF-8; pass bytes through."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def arrival(at: datetime | None, delay: float | timedelta | None) -> datetime | None:
    """Resolve an absolute arrival time or a delay from now (None means now)."""
    if at is not None and delay is not None:
        raise InvalidArgument("delay", delay, "give at or delay, not both")
    if delay is not None:
        return utcnow() + timedelta(seconds=seconds(delay))
    return at


@dataclass
class Modification:
    """Collects inserts, changes, deletes and depends for one atomic modify.

    Example::

        mod = Modification().delete(task).insert("done", b"result")
        await client.modify(mod)
    """

    inserts: list[TaskData] = field(default_factory=list)
    changes: list[TaskChange] = field(default_factory=list)
    deletes: list[TaskID] = field(default_factory=list)
    depends: list[TaskID] = field(default_factory=list)

    def insert(
        self,
        queue: str,
        value: bytes | str = b"",
        *,
        at: datetime | None = None,
        delay: float | timedelta | None = None,
        id: str = "",
        attempt: int = 0,
        err: str = "",
        skip_colliding: bool = False,
    ) -> Modification:
        """Insert a new task; ``skip_colliding`` drops it if its explicit id exists."""
        self.inserts.append(
            TaskData(
                queue=queue,
                at=arrival(at, delay),
                value=as_bytes(value),
                id=id,
                attempt=attempt,
                err=err,
                skip_colliding=skip_colliding,
            )
        )
        return self

    def change(
        self,
        task: Task,
        *,
        queue: str | None = None,
        value: bytes | str | None = None,
        at: datetime | None = None,
        delay: float | timedelta | None = None,
        attempt: int | None = None,
        err: str | None = None,
        append_err: str | None = None,
    ) -> Modification:
        """Change ``task`` at its exact version; unspecified fields keep their values.

        The arrival time becomes ``at`` or now + ``delay``; if neither is given it
        becomes now (the task is released), as a change always sets ``at``.
        """
        new_err = task.err if err is None else err
        if append_err:
            new_err = f"{new_err}\n{append_err}" if new_err else append_err
        self.changes.append(
            TaskChange(
                old=task.as_id(),
                new=TaskData(
                    queue=task.queue if queue is None else queue,
                    at=arrival(at, delay),
                    value=task.value if value is None else as_bytes(value),
                    id=task.id,
                    attempt=task.attempt if attempt is None else attempt,
                    err=new_err,
                ),
            )
        )
        return self

    def add_change(self, change: TaskChange) -> Modification:
        """Add a change with fully specified new data."""
        self.changes.append(change)
        return self

    def delete(self, task: Task | TaskID) -> Modification:
        """Delete the task at its exact version."""
        self.deletes.append(task.as_id() if isinstance(task, Task) else task)
        return self

    def depend(self, task: Task | TaskID) -> Modification:
        """Require the task to exist at its exact version, without touching it."""
        self.depends.append(task.as_id() if isinstance(task, Task) else task)
        return self

    def is_empty(self) -> bool:
        """True if nothing has been added."""
        return not (self.inserts or self.changes or self.deletes or self.depends)

    def to_request(self, claimant: str) -> ModifyRequest:
        """Validate and freeze into the request a backend receives."""
        return ModifyRequest(
            claimant=claimant,
            inserts=tuple(self.inserts),
            changes=tuple(self.changes),
            deletes=tuple(self.deletes),
            depends=tuple(self.depends),
        )
