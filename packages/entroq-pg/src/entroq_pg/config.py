"""Backend settings parsed from a ``pg://`` / ``postgresql://`` URL plus keyword options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg

from entroq_core.errors import InvalidArgument
from entroq_core.options import positive

DEFAULT_SCHEMA = "entroq"
# libpq waits forever on an unreachable host unless told otherwise.
DEFAULT_CONNECT_TIMEOUT = 10

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class PgConfig:
    """Everything the backend needs besides the libpq connection string."""

    conninfo: str
    schema: str = DEFAULT_SCHEMA
    pool_min: int = 1
    pool_max: int = 16
    pool_timeout: float = 10.0
    migrate: bool = True
    notify: bool = True
    max_retries: int = 8
    batch_writes: bool = True

    @property
    def display(self) -> str:
        """The connection target without its password, for messages."""
        return redact(self.conninfo)


# Options this backend takes from the URL query or keywords; anything else in the
# query goes to libpq untouched (sslmode, application_name, ...).
_OPTIONS: dict[str, type] = {
    "schema": str,
    "pool_min": int,
    "pool_max": int,
    "pool_timeout": float,
    "migrate": bool,
    "notify": bool,
    "max_retries": int,
    "batch_writes": bool,
}


_KIND_NAMES = {int: "must be a whole number", float: "must be a number"}


def parse_url(url: str, **options: Any) -> PgConfig:
    """Split a backend URL into the libpq conninfo and this backend's options.

    Raises:
        InvalidArgument: not a pg:// or postgresql:// URL, or a bad option value.
    """
    if not isinstance(url, str):
        raise InvalidArgument("url", url, "must be a string")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("pg", "postgres", "postgresql"):
        raise InvalidArgument("url", redact(url), "is not a pg:// or postgresql:// URL")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError as exc:
        raise InvalidArgument("url", redact(url), f"bad port: {exc}") from None
    ours: dict[str, Any] = {}
    libpq: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ours:
            raise InvalidArgument("url", redact(url), f"gives {key!r} twice")
        if key in _OPTIONS:
            ours[key] = value
        else:
            libpq.append((key, value))
    for key, value in options.items():
        if key not in _OPTIONS:
            raise InvalidArgument(
                "options", key, f"unknown pg backend option; known: {sorted(_OPTIONS)}"
            )
        ours[key] = value
    if not any(k == "connect_timeout" for k, _ in libpq):
        libpq.append(("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT)))
    # Built by hand: urlunsplit drops the "//" when the host part is empty (pg://).
    # %20 for a space, not urlencode's "+": libpq takes "+" literally.
    conninfo = f"postgresql://{parts.netloc}{parts.path}?{urlencode(libpq, quote_via=quote)}"
    try:
        # libpq's own parser: catches bad ports, unknown parameters, bad escapes.
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise InvalidArgument("url", redact(url), f"libpq rejects it: {exc}") from None
    settings = {key: _coerce(key, value) for key, value in ours.items()}
    config = PgConfig(conninfo=conninfo, **settings)
    _check(config)
    return config


def _coerce(key: str, value: Any) -> Any:
    kind = _OPTIONS[key]
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidArgument(key, value, "must be true or false")
    if kind is str:
        if not isinstance(value, str):
            raise InvalidArgument(key, value, "must be a string")
        return value
    problem = _KIND_NAMES.get(kind, f"must be a {kind.__name__}")
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        # int(2.5) would quietly give 2, and True is an int to Python.
        raise InvalidArgument(key, value, problem)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidArgument(key, value, problem) from None


def _check(config: PgConfig) -> None:
    schema = config.schema
    if not schema or "\x00" in schema or len(schema.encode("utf-8", "replace")) > 63:
        raise InvalidArgument("schema", schema, "must be 1..63 bytes without NUL")
    if config.pool_min < 0:
        raise InvalidArgument("pool_min", config.pool_min, "must not be negative")
    if config.pool_max < 1 or config.pool_min > config.pool_max:
        raise InvalidArgument(
            "pool_max",
            config.pool_max,
            f"must be at least 1 and at least pool_min ({config.pool_min})",
        )
    positive("pool_timeout", config.pool_timeout)
    if config.max_retries < 0:
        raise InvalidArgument("max_retries", config.max_retries, "must not be negative")


def redact(conninfo: str) -> str:
    """Hide the password of a URL-style connection string."""
    try:
        parts = urlsplit(conninfo)
    except ValueError:
        return "<unparsable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, True)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
