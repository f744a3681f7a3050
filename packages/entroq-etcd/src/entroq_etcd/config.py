"""The etcd:// URL and open_backend options, checked once into one settings object.

``etcd://[user[:password]@]host:port[,host:port...][/key/prefix/][?option=value&...]``

With no endpoint (``etcd://``, ``etcd:///app/``) the backend uses etcd's own
default client address, ``127.0.0.1:2379``, as etcdctl does.

Options may come from the URL query or as keyword arguments (which win):
``prefix`` (default ``/entroq/``), ``user``, ``password``, ``tls`` (true/false),
``ca_file``, ``cert_file``, ``key_file``, ``server_name`` (TLS name to verify),
``call_timeout`` (seconds an etcd call may take before the backend reports
the cluster unavailable, default 5), and ``max_request_bytes`` (etcd's
``--max-request-bytes``, default 1.5 MiB: larger modifications are refused
before they are sent), and ``batch_writes`` (default true: claims and
modifications that would wait behind this handle's calls in flight go to etcd
together as one Txn of nested Txns; see ``batch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from entroq_core.errors import InvalidArgument
from entroq_core.options import positive

from .keys import DEFAULT_PREFIX

DEFAULT_ENDPOINT = "127.0.0.1:2379"  # etcd's default --listen-client-urls
DEFAULT_CALL_TIMEOUT = 5.0
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024  # etcd's --max-request-bytes default

_KNOWN = {
    "prefix",
    "user",
    "password",
    "tls",
    "ca_file",
    "cert_file",
    "key_file",
    "server_name",
    "call_timeout",
    "max_request_bytes",
    "batch_writes",
}


@dataclass(frozen=True)
class EtcdConfig:
    """Everything needed to reach one etcd cluster and lay out keys in it."""

    endpoints: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    user: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    batch_writes: bool = True

    def describe(self) -> str:
        """The endpoints as one readable string, for error messages."""
        return ", ".join(self.endpoints)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidArgument(name, value, "must be true or false")


def _endpoint(text: str, url: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument("url", url, f"endpoint {text!r} is not host:port")
    if host.startswith("[") != host.endswith("]"):
        raise InvalidArgument("url", url, f"endpoint {text!r} has an unbalanced IPv6 bracket")
    return text


def parse(url: str, options: dict[str, Any]) -> EtcdConfig:
    """Build the settings from a URL and keyword options, or raise InvalidArgument."""
    if not isinstance(url, str):
        raise InvalidArgument("url", url, "must be an etcd:// URL")
    parts = urlsplit(url)
    if parts.scheme.lower() != "etcd":
        raise InvalidArgument("url", url, "is not an etcd:// URL")
    netloc = parts.netloc
    settings: dict[str, Any] = {}
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        settings["user"] = unquote(user)
        if password:
            settings["password"] = unquote(password)
    netloc = netloc or DEFAULT_ENDPOINT
    endpoints = tuple(_endpoint(e.strip(), url) for e in netloc.split(","))
    if parts.path and parts.path != "/":
        settings["prefix"] = unquote(parts.path)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _KNOWN:
            raise InvalidArgument("url", url, f"unknown option {key!r}; known: {sorted(_KNOWN)}")
        settings[key] = value
    for key, value in options.items():
        if key not in _KNOWN:
            raise InvalidArgument(
                key, value, f"is not an etcd backend option; known: {sorted(_KNOWN)}"
            )
        settings[key] = value

    prefix: Any = settings.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str) or not prefix or "\x00" in prefix:
        raise InvalidArgument("prefix", prefix, "must be a non-empty string without NUL")
    for name in ("user", "password", "ca_file", "cert_file", "key_file", "server_name"):
        if settings.get(name) is not None and not isinstance(settings[name], str):
            raise InvalidArgument(name, settings[name], "must be a string")
    if settings.get("password") is not None and not settings.get("user"):
        raise InvalidArgument("user", settings.get("user"), "a password needs a user name")
    cert, key_file = settings.get("cert_file"), settings.get("key_file")
    if bool(cert) != bool(key_file):
        raise InvalidArgument(
            "cert_file", cert, "a client certificate needs both cert_file and key_file"
        )
    tls = _bool("tls", settings.get("tls", False)) or any(
        settings.get(n) for n in ("ca_file", "cert_file", "server_name")
    )
    return EtcdConfig(
        endpoints=endpoints,
        prefix=prefix,
        user=settings.get("user") or None,
        password=settings.get("password"),
        tls=tls,
        ca_file=settings.get("ca_file"),
        cert_file=cert,
        key_file=key_file,
        server_name=settings.get("server_name"),
        call_timeout=positive(
            "call_timeout", settings.get("call_timeout", DEFAULT_CALL_TIMEOUT), float
        ),
        max_request_bytes=positive(
            "max_request_bytes", settings.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES), int
        ),
        batch_writes=_bool("batch_writes", settings.get("batch_writes", True)),
    )
