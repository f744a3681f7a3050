"""Task id generation, once for every backend."""

from __future__ import annotations

import uuid


def new_task_id() -> str:
    """Return a fresh random task id (UUIDv4 text)."""
    return str(uuid.uuid4())
