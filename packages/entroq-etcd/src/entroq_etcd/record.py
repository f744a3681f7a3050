"""The stored form of a task's fields (all but the value) and its binary codec.

A compact fixed header plus length-prefixed text, so that claims, listings
without values and stats decode small records only. The first byte marks the
format: keys under the prefix whose value does not decode are someone else's and
are skipped, never rewritten.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from entroq_core.timeutil import from_ms
from entroq_core.types import Task, TaskID

_MAGIC = b"\xe1"
_HEADER = struct.Struct(">QqqqII")  # version, at, created, modified, claims, attempt
_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Record:
    """A task without its value; times in ms since the epoch."""

    queue: str
    id: str
    version: int
    at_ms: int
    claimant: str
    created_ms: int
    modified_ms: int
    claims: int
    attempt: int
    err: str

    def to_task(self, value: bytes) -> Task:
        """Return the full task with ``value``."""
        return Task(
            queue=self.queue,
            id=self.id,
            version=self.version,
            at=from_ms(self.at_ms),
            claimant=self.claimant,
            value=value,
            created=from_ms(self.created_ms),
            modified=from_ms(self.modified_ms),
            claims=self.claims,
            attempt=self.attempt,
            err=self.err,
        )

    def as_id(self) -> TaskID:
        """Return the id+version+queue of this record."""
        return TaskID(self.id, self.version, self.queue)

    def leased_by_other(self, claimant: str, now_ms: int) -> bool:
        """True if another claimant holds an unexpired lease on the task."""
        return self.claimant != claimant and self.at_ms > now_ms

    def claimed(self, claimant: str, now_ms: int, duration_ms: int) -> Record:
        """Return the record after a claim at ``now_ms``."""
        return replace(
            self,
            version=self.version + 1,
            at_ms=now_ms + duration_ms,
            claimant=claimant,
            modified_ms=now_ms,
            claims=self.claims + 1,
        )


def encode(record: Record) -> bytes:
    """Serialise a record."""
    parts = [
        _MAGIC,
        _HEADER.pack(
            record.version,
            record.at_ms,
            record.created_ms,
            record.modified_ms,
            record.claims,
            record.attempt,
        ),
    ]
    for text in (record.queue, record.id, record.claimant, record.err):
        raw = text.encode()
        parts.append(_LEN.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode(data: bytes) -> Record | None:
    """Deserialise a record, or return None if ``data`` is not one of ours."""
    if not data.startswith(_MAGIC):
        return None
    try:
        version, at, created, modified, claims, attempt = _HEADER.unpack_from(data, 1)
        pos = 1 + _HEADER.size
        texts = []
        for _ in range(4):
            (size,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            if pos + size > len(data):
                return None
            texts.append(data[pos : pos + size].decode())
            pos += size
    except (struct.error, UnicodeDecodeError):
        return None
    if pos != len(data):
        return None
    queue, task_id, claimant, err = texts
    return Record(
        queue=queue,
        id=task_id,
        version=version,
        at_ms=at,
        claimant=claimant,
        created_ms=created,
        modified_ms=modified,
        claims=claims,
        attempt=attempt,
        err=err,
    )
