"""Library exceptions to gRPC statuses and back (SPEC section 3).

The server turns every exception into a :class:`Failure`; the client turns every
status back into the same library exception, except CANCELLED (see ``error_for``).
Invalid arguments carry their field, value and reason in a small JSON trailer so
the client can rebuild them exactly; dependency errors carry ``proto.ModifyDep``
details (see ``convert``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from entroq_core.errors import (
    AuthenticationError,
    BackendUnavailable,
    DeadlineExceeded,
    DependencyError,
    EntroQError,
    InvalidArgument,
    MessageTooLarge,
    PermissionDenied,
    RetryableConflict,
)

from . import convert

INVALID_ARGUMENT_KEY = "entroq-invalid-argument-bin"
"""Trailer holding JSON ``{"field", "value", "reason"}`` of an invalid argument."""

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True, slots=True)
class Failure:
    """A status to end an RPC with."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: Metadata = ()
    expected: bool = True  # False: a server-side surprise worth a stack trace in the log


def _invalid_metadata(exc: InvalidArgument) -> Metadata:
    value = exc.value if isinstance(exc.value, str | int | float | bool | None) else repr(exc.value)
    if isinstance(value, str) and len(value) > 200:
        value = value[:197] + "..."
    body = {"field": exc.field, "value": value, "reason": exc.reason}
    return ((INVALID_ARGUMENT_KEY, json.dumps(body).encode()),)


def failure_for(exc: BaseException, method: str = "") -> Failure:
    """Map an exception raised while serving ``method`` to the status the client gets.

    Never returns UNKNOWN or INTERNAL: anything unexpected becomes UNAVAILABLE
    (the server could not serve this right now) with ``expected=False``.
    """
    if isinstance(exc, DependencyError):
        return Failure(
            grpc.StatusCode.NOT_FOUND,
            convert.DEPENDENCY_MESSAGE,
            ((convert.STATUS_DETAILS_KEY, convert.dependency_status(exc)),),
        )
    if isinstance(exc, MessageTooLarge):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), _invalid_metadata(exc))
    if isinstance(exc, InvalidArgument):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc), _invalid_metadata(exc))
    if isinstance(exc, TimeoutError):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc) or "deadline exceeded")
    if isinstance(exc, ConnectionError):
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc) or "backend unavailable")
    if isinstance(exc, RetryableConflict):
        return Failure(grpc.StatusCode.ABORTED, str(exc) or "transient conflict, retry")
    if isinstance(exc, AuthenticationError):
        return Failure(grpc.StatusCode.UNAUTHENTICATED, str(exc) or "not authenticated")
    if isinstance(exc, PermissionDenied):
        return Failure(grpc.StatusCode.PERMISSION_DENIED, str(exc) or "permission denied")
    if isinstance(exc, EntroQError):
        return Failure(grpc.StatusCode.FAILED_PRECONDITION, str(exc) or type(exc).__name__)
    where = f" in {method}" if method else ""
    return Failure(
        grpc.StatusCode.UNAVAILABLE,
        f"server error{where}: {type(exc).__name__}: {exc}",
        expected=False,
    )


def _metadata_value(metadata: Iterable[tuple[str, Any]] | None, key: str) -> Any:
    for k, v in metadata or ():
        if k == key:
            return v
    return None


def _invalid_argument(
    cls: type[InvalidArgument], details: str, metadata: Iterable[tuple[str, Any]] | None
) -> InvalidArgument:
    field, value, reason = "request", None, details
    raw = _metadata_value(metadata, INVALID_ARGUMENT_KEY)
    if isinstance(raw, bytes):
        try:
            body = json.loads(raw)
            field, value, reason = str(body["field"]), body["value"], str(body["reason"])
        except (ValueError, KeyError, TypeError):
            pass
    exc = cls(field, value, reason)
    # Keep the server's wording, which names the field and value as the server saw them.
    exc.args = (details,)
    return exc


def error_for(
    code: grpc.StatusCode, details: str, metadata: Iterable[tuple[str, Any]] | None = None
) -> BaseException:
    """The library exception for a non-OK status."""
    details = details or code.name
    if code == grpc.StatusCode.NOT_FOUND:
        raw = _metadata_value(metadata, convert.STATUS_DETAILS_KEY)
        dep = convert.dependency_from_status(raw, details) if isinstance(raw, bytes) else None
        if dep is None:
            dep = DependencyError(message="" if details == convert.DEPENDENCY_MESSAGE else details)
        return dep
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return _invalid_argument(InvalidArgument, details, metadata)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return _invalid_argument(MessageTooLarge, details, metadata)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(details)
    if code == grpc.StatusCode.CANCELLED:
        # A caller that cancels its own call never sees this status: grpc raises
        # CancelledError locally. A CANCELLED that arrives was the server's doing:
        # it shut down with the call pending or in flight (grpc cancels calls not
        # yet handed to a handler, and handlers still running when the grace
        # ends). Raising CancelledError for it would cancel a task nobody
        # cancelled (a Worker would stop); like a server gone away, it is
        # UNAVAILABLE: try again, elsewhere. A write's outcome is then unknown.
        return BackendUnavailable(
            f"the server cancelled the call ({details}); it may be shutting down"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return BackendUnavailable(details)
    if code == grpc.StatusCode.ABORTED:
        return RetryableConflict(details)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AuthenticationError(details)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(details)
    return EntroQError(f"{code.name}: {details}")


def error_from_rpc(err: grpc.aio.AioRpcError) -> BaseException:
    """The library exception for a failed call."""
    return error_for(err.code(), err.details() or "", err.trailing_metadata())
