"""Turning psycopg's exceptions into EntroQ's, so none leaks to callers."""

from __future__ import annotations

import re

import psycopg
from psycopg import errors as pgerr
from psycopg_pool import PoolClosed, PoolTimeout

from entroq_core.errors import (
    AuthenticationError,
    BackendUnavailable,
    EntroQError,
    InvalidArgument,
    PermissionDenied,
)

# Conflicts that a fresh attempt of the same transaction may not hit again.
RETRYABLE_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
    }
)

# The server said goodbye before it could run our statement: safe to retry anywhere.
SERVER_GONE_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
    }
)


class SchemaError(EntroQError):
    """The database schema is missing, too old, or newer than this code understands."""


def is_retryable(exc: BaseException) -> bool:
    """True for transient conflicts worth retrying the whole transaction for."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate in RETRYABLE_SQLSTATES


def is_connection_error(exc: BaseException) -> bool:
    """True if the connection (or the server behind it) failed, not the statement."""
    if isinstance(exc, PoolClosed):
        return True
    if isinstance(exc, PoolTimeout):
        # Every pooled connection is busy (or the pool cannot connect, which the
        # calls that hold connections find out for themselves): replacing the
        # pool would leave the busy connections open and go past pool_max.
        return False
    if not isinstance(exc, psycopg.Error):
        return isinstance(exc, OSError)
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state[:2] in ("08", "53", "57") and state != "57014"


def server_never_ran_it(exc: BaseException) -> bool:
    """True if the statement surely did not run (so a retry cannot apply it twice)."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate in SERVER_GONE_SQLSTATES


def translate(exc: BaseException, where: str) -> EntroQError:
    """Map a psycopg (or pool, or socket) exception to the EntroQ error a caller sees."""
    if isinstance(exc, EntroQError):
        return exc
    if isinstance(exc, PoolTimeout):
        return BackendUnavailable(
            f"{where}: no pooled PostgreSQL connection came free in time ({exc}); every one "
            "is busy (long-held locks? raise pool_max or pool_timeout) or the server is down"
        )
    if isinstance(exc, PoolClosed):
        return BackendUnavailable(f"{where}: the pg backend is closed")
    if isinstance(exc, UnicodeError):
        return InvalidArgument("text", str(exc), "cannot be encoded for PostgreSQL")
    if not isinstance(exc, psycopg.Error):
        return BackendUnavailable(f"{where}: {type(exc).__name__}: {exc}")
    state = exc.sqlstate or ""
    text = _first_line(exc)
    if state.startswith("28"):
        return AuthenticationError(f"{where}: PostgreSQL refused the credentials: {text}")
    if state == "42501":
        return PermissionDenied(f"{where}: PostgreSQL denied access: {text}")
    if state.startswith("22") or isinstance(exc, pgerr.DataError):
        # Data exceptions: text PostgreSQL cannot store, times out of range, ...
        diag = exc.diag.message_primary if exc.diag else None
        return InvalidArgument("value", diag or text, "rejected by PostgreSQL")
    if isinstance(exc, psycopg.InterfaceError | psycopg.ProgrammingError) and not state:
        return BackendUnavailable(f"{where}: {text}")
    if is_connection_error(exc) or not state:
        return BackendUnavailable(f"{where}: PostgreSQL unavailable: {text}")
    # Anything else is the database's problem, not the caller's: report it as an
    # outage so clients may retry, never as a crash.
    return BackendUnavailable(f"{where}: PostgreSQL error {state}: {text}")


# libpq reports connection-time failures without a SQLSTATE; these phrases are
# its (and the server's) wording for "who you are was not accepted".
_AUTH_PHRASES = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "no password supplied",
    'role "',
    "pg_hba.conf rejects",
)


_MISSING_DATABASE = re.compile(r'database "(.*?)" does not exist')


def translate_connect(exc: BaseException, where: str) -> EntroQError:
    """Map a failure to open a connection: credentials, address, or the server's state."""
    if isinstance(exc, psycopg.OperationalError) and not exc.sqlstate:
        text = str(exc).strip().replace("\n", " ")
        lowered = text.lower()
        if any(p in lowered for p in _AUTH_PHRASES):
            return AuthenticationError(f"{where}: PostgreSQL refused the credentials: {text}")
        # Settings no retry can fix: a supervisor must not restart on them forever.
        missing = _MISSING_DATABASE.search(text)
        if missing:
            return InvalidArgument(
                "database", missing.group(1), f"{where}: PostgreSQL has no such database"
            )
        if "server does not support ssl" in lowered:
            return InvalidArgument(
                "sslmode", "require", f"{where}: the server does not offer SSL: {text}"
            )
        return BackendUnavailable(f"{where}: cannot connect: {text}")
    return translate(exc, where)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
