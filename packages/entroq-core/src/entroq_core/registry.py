"""Backends by URL scheme, found through the ``entroq.backends`` entry-point group."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any
from urllib.parse import urlsplit

from .backend import Backend
from .errors import InvalidArgument, UnknownBackend

ENTRY_POINT_GROUP = "entroq.backends"

Opener = Callable[..., Awaitable[Backend]]

# Where to get the schemes the project itself ships, for the "not installed" error.
KNOWN_DISTRIBUTIONS = {
    "mem": "entroq-core",
    "pg": "entroq-pg",
    "postgresql": "entroq-pg",
    "etcd": "entroq-etcd",
    "grpc": "entroq-grpc",
    "grpcs": "entroq-grpc",
}

_lock = threading.Lock()
_registered: dict[str, Opener] = {}


@dataclass(frozen=True)
class BrokenBackend:
    """An installed plugin that failed to load, and why."""

    scheme: str
    target: str
    error: str


def register(scheme: str, opener: Opener) -> None:
    """Register ``opener`` for ``scheme`` in this process (embedding and tests).

    Registered openers win over entry points of the same scheme.
    """
    with _lock:
        _registered[scheme.lower()] = opener


def unregister(scheme: str) -> None:
    """Forget a scheme added with :func:`register`."""
    with _lock:
        _registered.pop(scheme.lower(), None)


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def installed_schemes() -> list[str]:
    """List every scheme available, registered or installed, without loading any plugin."""
    with _lock:
        names = set(_registered)
    return sorted(names | set(_entry_points()))


def scheme_of(url: str) -> str:
    """Return the lower-cased scheme of a backend URL, or raise InvalidArgument."""
    if not isinstance(url, str) or not url:
        raise InvalidArgument("url", url, "must be a non-empty backend URL like mem:// or pg://")
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise InvalidArgument("url", url, "has no scheme; expected for example mem:// or pg://")
    return scheme


def opener_for(scheme: str) -> Opener:
    """Load the opener for one scheme only, or raise UnknownBackend."""
    scheme = scheme.lower()
    with _lock:
        opener = _registered.get(scheme)
    if opener is not None:
        return opener
    ep = _entry_points().get(scheme)
    if ep is None:
        installed = ", ".join(installed_schemes()) or "none"
        hint = KNOWN_DISTRIBUTIONS.get(scheme)
        advice = f"; pip install {hint}" if hint else ""
        raise UnknownBackend(
            f"no EntroQ backend for scheme {scheme!r} (installed: {installed}){advice}"
        )
    loaded: Opener = ep.load()
    return loaded


async def connect(url: str, **options: Any) -> Backend:
    """Open the backend named by ``url``, loading only the plugin for its scheme.

    Args:
        url: a backend URL such as ``mem://``, ``pg://host/db`` or ``grpc://host:37706``.
        **options: passed to the backend's opener.

    Returns:
        An open backend; close it with ``await backend.aclose()``.

    Raises:
        UnknownBackend: no installed backend handles the scheme.
        InvalidArgument: the URL is malformed.
    """
    opener = opener_for(scheme_of(url))
    return await opener(url, **options)


def load_all() -> tuple[dict[str, Opener], list[BrokenBackend]]:
    """Load every installed plugin; report broken ones instead of raising."""
    ok: dict[str, Opener] = {}
    broken: list[BrokenBackend] = []
    for name, ep in sorted(_entry_points().items()):
        try:
            ok[name] = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take us down
            broken.append(BrokenBackend(name, ep.value, f"{type(exc).__name__}: {exc}"))
    with _lock:
        ok.update(_registered)
    return ok, broken
