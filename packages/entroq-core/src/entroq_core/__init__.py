"""EntroQ for Python: a task queue with competing consumers and transactional updates."""

from __future__ import annotations

from .backend import Backend
from .backoff import Backoff
from .client import AsyncEntroQ
from .errors import (
    AuthenticationError,
    BackendUnavailable,
    DeadlineExceeded,
    DependencyError,
    EntroQError,
    InvalidArgument,
    MessageTooLarge,
    PermissionDenied,
    RetryableConflict,
    UnknownBackend,
)
from .modification import Modification
from .registry import connect, installed_schemes, register, unregister
from .requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from .sync import EntroQ
from .types import ModifyResult, QueueStats, Task, TaskChange, TaskData, TaskID
from .worker import MoveToError, Worker, WorkerOptions

__version__ = "0.1.0"

__all__ = [
    "AsyncEntroQ",
    "AuthenticationError",
    "Backend",
    "BackendUnavailable",
    "Backoff",
    "ClaimRequest",
    "DeadlineExceeded",
    "DependencyError",
    "EntroQ",
    "EntroQError",
    "InvalidArgument",
    "MessageTooLarge",
    "Modification",
    "ModifyRequest",
    "ModifyResult",
    "MoveToError",
    "PermissionDenied",
    "QueueStats",
    "QueuesRequest",
    "RetryableConflict",
    "Task",
    "TaskChange",
    "TaskData",
    "TaskID",
    "TasksRequest",
    "UnknownBackend",
    "Worker",
    "WorkerOptions",
    "__version__",
    "connect",
    "installed_schemes",
    "register",
    "unregister",
]
