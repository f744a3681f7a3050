"""SPEC's dependency rules, once for every backend.

A backend looks up the current state of the ids a modification names (its own way,
on its own clock) and hands it here; this module decides what failed and shapes
the DependencyError, so every backend reports the same lists for the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import DependencyError
from .requests import ModifyRequest
from .types import TaskID


@dataclass(frozen=True, slots=True)
class Holding:
    """What a dependency check needs to know of one stored task."""

    id: str
    version: int
    queue: str
    claimant: str
    leased: bool  # at > now, on the backend's clock

    def as_id(self) -> TaskID:
        """The task's current id+version, as reported for a colliding insert."""
        return TaskID(self.id, self.version, self.queue)


def check_dependencies(
    request: ModifyRequest, lookup: Callable[[str], Holding | None]
) -> frozenset[int]:
    """Check every rule of SPEC's Modify table against the stored state.

    Args:
        request: the validated modification.
        lookup: the stored state of a task id, or None if no such task exists.

    Returns:
        Indices of inserts to drop: skippable inserts whose ids already exist,
        when those are the only failures.

    Raises:
        DependencyError: listing every failure at once.
    """
    modifier = request.claimant
    bad_depends = [d for d in request.depends if _mismatch(lookup(d.id), d)]
    bad_deletes: list[TaskID] = []
    bad_changes: list[TaskID] = []
    bad_claims: list[TaskID] = []
    for wanted, bad in [(d, bad_deletes) for d in request.deletes] + [
        (c.old, bad_changes) for c in request.changes
    ]:
        current = lookup(wanted.id)
        if current is None or current.version != wanted.version:
            bad.append(wanted)
        elif current.leased and current.claimant != modifier:
            bad_claims.append(wanted)
    collisions: list[TaskID] = []
    skipped: set[int] = set()
    for i, data in enumerate(request.inserts):
        existing = lookup(data.id) if data.id else None
        if existing is not None:
            collisions.append(existing.as_id())
            if data.skip_colliding:
                skipped.add(i)
    hard_collisions = len(collisions) > len(skipped)
    if bad_depends or bad_deletes or bad_changes or bad_claims or hard_collisions:
        raise DependencyError(
            inserts=collisions,
            depends=bad_depends,
            deletes=bad_deletes,
            changes=bad_changes,
            claims=bad_claims,
        )
    return frozenset(skipped)


def _mismatch(current: Holding | None, wanted: TaskID) -> bool:
    return current is None or current.version != wanted.version
