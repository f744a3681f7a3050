"""The immutable values that cross every layer: tasks, ids, new data, changes, stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TaskID:
    """Names one exact version of a task; the unit of every dependency check."""

    id: str
    version: int
    queue: str = ""

    def __str__(self) -> str:
        return f"{self.id}:v{self.version}" + (f" in {self.queue!r}" if self.queue else "")


@dataclass(frozen=True, slots=True)
class Task:
    """A task as stored by a backend, at one version."""

    queue: str
    id: str
    version: int
    at: datetime
    claimant: str
    value: bytes
    created: datetime
    modified: datetime
    claims: int = 0
    attempt: int = 0
    err: str = ""

    def as_id(self) -> TaskID:
        """Return the id+version (and queue) that a modification depends on."""
        return TaskID(self.id, self.version, self.queue)

    def as_data(self) -> TaskData:
        """Return this task's mutable data, the starting point for a change."""
        return TaskData(
            queue=self.queue,
            at=self.at,
            value=self.value,
            id=self.id,
            attempt=self.attempt,
            err=self.err,
        )


@dataclass(frozen=True, slots=True)
class TaskData:
    """New data for an insert, or the full replacement data of a change.

    ``at=None`` means "now" on the backend's clock. ``id=""`` on an insert asks
    for a generated id. ``skip_colliding`` marks an insert that may be dropped if
    a task with its explicit id already exists (insert-if-absent).
    """

    queue: str
    at: datetime | None = None
    value: bytes = b""
    id: str = ""
    attempt: int = 0
    err: str = ""
    skip_colliding: bool = False


@dataclass(frozen=True, slots=True)
class TaskChange:
    """Replace the data of task ``old`` (exact id and version) with ``new``."""

    old: TaskID
    new: TaskData


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts for one queue; available + claimed + future partition the queue."""

    name: str
    num_tasks: int = 0
    num_available: int = 0
    num_claimed: int = 0
    num_future: int = 0
    max_claims: int = 0


@dataclass(frozen=True, slots=True)
class ModifyResult:
    """Inserted and changed tasks with their final fields, each in request order."""

    inserted: tuple[Task, ...] = field(default_factory=tuple)
    changed: tuple[Task, ...] = field(default_factory=tuple)
