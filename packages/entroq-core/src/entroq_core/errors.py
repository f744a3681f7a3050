"""The error hierarchy of SPEC section 3, shared by every backend and the wire."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .types import TaskID


class EntroQError(Exception):
    """Base of every error EntroQ raises on purpose."""


class InvalidArgument(EntroQError, ValueError):
    """A caller sent something the contract forbids; names the field and the value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field}={_short(value)}: {reason}")


class MessageTooLarge(InvalidArgument):
    """A request or value exceeds the configured size limit."""


class DependencyError(EntroQError):
    """A modification's dependencies were not met; nothing was applied.

    Each list holds the offending ids as the request named them (for
    ``inserts``, with the version of the task that already exists).
    ``claims`` lists changes and deletes that had the right version but are
    leased by another claimant.
    """

    def __init__(
        self,
        *,
        inserts: Iterable[TaskID] = (),
        depends: Iterable[TaskID] = (),
        deletes: Iterable[TaskID] = (),
        changes: Iterable[TaskID] = (),
        claims: Iterable[TaskID] = (),
        message: str = "",
    ) -> None:
        self.inserts = tuple(inserts)
        self.depends = tuple(depends)
        self.deletes = tuple(deletes)
        self.changes = tuple(changes)
        self.claims = tuple(claims)
        self.message = message
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = []
        for label, ids in (
            ("inserts", self.inserts),
            ("depends", self.depends),
            ("deletes", self.deletes),
            ("changes", self.changes),
            ("claims", self.claims),
        ):
            if ids:
                parts.append(f"{label}: " + ", ".join(str(i) for i in ids))
        text = "modification dependency error"
        if self.message:
            text += f" ({self.message})"
        return text + ("; " + "; ".join(parts) if parts else "")

    def only_claims(self) -> bool:
        """True if the only problem is tasks leased by someone else."""
        return bool(self.claims) and not (
            self.inserts or self.depends or self.deletes or self.changes
        )

    def only_inserts(self) -> bool:
        """True if the only problem is inserts whose ids already exist."""
        return bool(self.inserts) and not (
            self.depends or self.deletes or self.changes or self.claims
        )

    def has_missing(self) -> bool:
        """True if some depended, deleted or changed task is absent or at another version."""
        return bool(self.depends or self.deletes or self.changes)

    def has_collisions(self) -> bool:
        """True if some insert named an id that already exists."""
        return bool(self.inserts)

    def has_claims(self) -> bool:
        """True if some change or delete targets a task leased by another claimant."""
        return bool(self.claims)

    def is_empty(self) -> bool:
        """True if no list names a task."""
        return not (self.inserts or self.depends or self.deletes or self.changes or self.claims)


class DeadlineExceeded(EntroQError, TimeoutError):
    """The caller's deadline passed before the operation finished."""


class BackendUnavailable(EntroQError, ConnectionError):
    """The backend or server cannot be reached right now; callers may retry."""


class RetryableConflict(EntroQError):
    """A transient storage conflict outlasted the backend's retries; the request may be retried."""


class AuthenticationError(EntroQError):
    """The caller is not authenticated."""


class PermissionDenied(EntroQError):
    """The caller is authenticated but not allowed to do this."""


class UnknownBackend(EntroQError, LookupError):
    """No installed backend handles the URL's scheme."""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
