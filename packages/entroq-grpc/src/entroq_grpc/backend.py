"""The ``grpc://`` and ``grpcs://`` client backend: any EntroQ service as a Backend.

URL forms::

    grpc://HOST[:PORT]                       plaintext, port 37706 by default
    grpcs://HOST[:PORT]                      TLS with the system's roots
    grpcs://HOST[:PORT]?ca=ca.pem&cert=client.pem&key=client.key&server_name=NAME

Query parameters and keyword options are the same names (keywords win).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc

from entroq_core.errors import DeadlineExceeded, DependencyError, InvalidArgument
from entroq_core.options import positive
from entroq_core.requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from entroq_core.types import ModifyResult, QueueStats, Task

from . import convert
from .status import error_from_rpc

DEFAULT_PORT = 37706

# A blocking Claim is sent as a series of calls of at most this long, so no proxy
# or load balancer idle limit ends a wait that the caller wants to last forever.
DEFAULT_CLAIM_CALL_SECONDS = 30.0

_OPTIONS = ("ca", "cert", "key", "server_name", "claim_call_seconds", "keepalive_seconds")
# A call in flight (a waiting Claim above all) pings the server this often when
# the connection is quiet, and gives up on it when a ping goes unanswered: a
# server whose host vanished or froze is noticed instead of waited on forever.
# Five minutes is what servers accept by default (gRPC's and Go's enforcement
# policies close connections that ping more often); entroq-svc accepts pings
# every 10 s.
DEFAULT_KEEPALIVE_SECONDS = 300.0
_KEEPALIVE_TIMEOUT_SECONDS = 20.0


class GrpcBackend:
    """A Backend that forwards every operation to an EntroQ gRPC service."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        target: str = "",
        claim_call_seconds: float = DEFAULT_CLAIM_CALL_SECONDS,
    ) -> None:
        self._channel = channel
        self._target = target
        self._claim_call_seconds = claim_call_seconds
        m = convert.METHODS

        def unary(name: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
            return channel.unary_unary(
                m[name].path,
                request_serializer=m[name].serialize,
                response_deserializer=m[name].parse_response,
            )

        self._try_claim_rpc = unary("TryClaim")
        self._claim_rpc = unary("Claim")
        self._modify_rpc = unary("Modify")
        self._queue_stats_rpc = unary("QueueStats")
        self._time_rpc = unary("Time")
        self._stream_tasks_rpc = channel.unary_stream(
            m["StreamTasks"].path,
            request_serializer=m["StreamTasks"].serialize,
            response_deserializer=m["StreamTasks"].parse_response,
        )

    def __repr__(self) -> str:
        return f"GrpcBackend({self._target!r})"

    async def try_claim(self, request: ClaimRequest) -> Task | None:
        """Claim a random available task from the listed queues, or return None."""
        try:
            response = await self._try_claim_rpc(convert.claim_to_pb(request))
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err) from None
        return convert.claimed_task(response)

    async def claim(self, request: ClaimRequest, poll: float) -> Task:
        """Claim a task, waiting on the server; waits as long as the caller lets it.

        Each call carries its own deadline; when it expires with nothing claimed
        the claim is simply sent again.
        """
        message = convert.claim_to_pb(request, poll_ms=max(round(poll * 1000), 0))
        per_call = self._claim_call_seconds
        while True:
            started = time.monotonic()
            try:
                response = await self._claim_rpc(message, timeout=per_call)
            except grpc.aio.AioRpcError as err:
                # Our own per-call deadline: ask again. A DEADLINE_EXCEEDED long
                # before it came from the server's side, so it is the caller's error.
                if (
                    err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                    and time.monotonic() - started >= per_call / 2
                ):
                    continue
                raise error_from_rpc(err) from None
            task = convert.claimed_task(response)
            if task is None:
                raise DeadlineExceeded("the server ended a claim without a task")
            return task

    async def modify(self, request: ModifyRequest) -> ModifyResult:
        """Apply the modification atomically or raise DependencyError.

        Inserts marked ``skip_colliding`` have no wire field: if the only failures
        are collisions of such inserts, they are dropped and the rest is sent again
        (as the classic clients do).
        """
        while True:
            try:
                response = await self._modify_rpc(convert.modify_to_pb(request))
            except grpc.aio.AioRpcError as err:
                exc = error_from_rpc(err)
                reduced = _without_skippable(request, exc)
                if reduced is None:
                    raise exc from None
                if reduced.is_empty():
                    return ModifyResult()
                request = reduced
                continue
            return convert.result_from_pb(response)

    async def tasks(self, request: TasksRequest) -> AsyncIterator[Task]:
        """Yield the matching tasks as the server streams them."""
        call = self._stream_tasks_rpc(convert.tasks_to_pb(request))
        try:
            async for message in call:
                for task in convert.tasks_in(message):
                    yield task
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err) from None
        finally:
            call.cancel()

    async def queue_stats(self, request: QueuesRequest) -> dict[str, QueueStats]:
        """Return stats for the matching queues."""
        try:
            response = await self._queue_stats_rpc(convert.queues_to_pb(request))
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err) from None
        return convert.stats_from_pb(response)

    async def time(self) -> datetime:
        """Return the server's backend clock."""
        try:
            response = await self._time_rpc(convert.time_request())
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err) from None
        return convert.time_from_pb(response)

    async def aclose(self) -> None:
        """Close the channel; calls in flight end with cancellation."""
        await self._channel.close()


def _without_skippable(request: ModifyRequest, exc: BaseException) -> ModifyRequest | None:
    """The request minus skippable colliding inserts, if those are the only failures."""
    if not isinstance(exc, DependencyError) or not exc.only_inserts():
        return None
    colliding = {t.id for t in exc.inserts}
    if not all(d.skip_colliding for d in request.inserts if d.id in colliding):
        return None
    return ModifyRequest(
        claimant=request.claimant,
        inserts=tuple(d for d in request.inserts if d.id not in colliding),
        changes=request.changes,
        deletes=request.deletes,
        depends=request.depends,
        max_value_bytes=request.max_value_bytes,
    )


def _read(field: str, path: Any) -> bytes:
    try:
        return Path(path).read_bytes()
    except (OSError, TypeError) as exc:
        raise InvalidArgument(field, path, f"cannot read: {exc}") from None


def parse_target(url: str) -> tuple[str, str, dict[str, str]]:
    """Split a grpc(s) URL into scheme, ``host:port`` target and query options.

    Raises:
        InvalidArgument: not a grpc:// or grpcs:// URL with a host.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("grpc", "grpcs"):
        raise InvalidArgument("url", url, "is not a grpc:// or grpcs:// URL")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidArgument("url", url, "has an invalid port") from None
    host = parts.hostname
    if not host:
        raise InvalidArgument("url", url, "names no host, e.g. grpc://localhost:37706")
    if parts.path not in ("", "/"):
        raise InvalidArgument("url", url, "must not have a path")
    host = f"[{host}]" if ":" in host else host
    return scheme, f"{host}:{port}", dict(parse_qsl(parts.query))


_MAX_METADATA_BYTES = 1 << 30
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    # The server enforces the size limit; the client accepts whatever it sends.
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # A dependency error names every offending task in its status details, a
    # trailer: gRPC's default limits (8 KiB soft, 16 KiB hard) turned one naming
    # a hundred tasks into RESOURCE_EXHAUSTED. The request that caused it was
    # within the server's message limit, and so are its details.
    ("grpc.max_metadata_size", _MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", _MAX_METADATA_BYTES),
    # Reconnect to a restarted entroq-svc within a second. gRPC's own backoff
    # grows to two minutes, so after a long outage (a slow deploy) workers would
    # go on failing fast for up to two minutes with the service already back.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


async def open_backend(url: str, **options: Any) -> GrpcBackend:
    """Open a client backend for the EntroQ service at ``url``.

    Args:
        url: ``grpc://host:port`` or ``grpcs://host:port`` (see the module doc).
        **options: ``ca``, ``cert``, ``key`` (PEM file paths, grpcs only),
            ``server_name`` (TLS name to expect), ``claim_call_seconds``,
            ``keepalive_seconds``.

    Raises:
        InvalidArgument: a malformed URL, an unknown option or an unreadable file.
    """
    scheme, target, query = parse_target(url)
    settings: dict[str, Any] = {**query, **options}
    unknown = sorted(set(settings) - set(_OPTIONS))
    if unknown:
        raise InvalidArgument("options", unknown, f"unknown; expected some of {list(_OPTIONS)}")
    claim_call_seconds = positive(
        "claim_call_seconds", settings.get("claim_call_seconds", DEFAULT_CLAIM_CALL_SECONDS)
    )
    keepalive = positive(
        "keepalive_seconds", settings.get("keepalive_seconds", DEFAULT_KEEPALIVE_SECONDS)
    )
    channel_options: list[tuple[str, Any]] = [
        *_CHANNEL_OPTIONS,
        ("grpc.keepalive_time_ms", int(keepalive * 1000)),
        ("grpc.keepalive_timeout_ms", int(min(keepalive, _KEEPALIVE_TIMEOUT_SECONDS) * 1000)),
        # gRPC 1.5x+ waits for a ping's ack this long (default a minute), whatever
        # the keepalive timeout says.
        ("grpc.http2.ping_timeout_ms", int(min(keepalive, _KEEPALIVE_TIMEOUT_SECONDS) * 1000)),
    ]
    if scheme == "grpcs":
        if ("cert" in settings) != ("key" in settings):
            raise InvalidArgument("cert", settings.get("cert"), "cert and key go together")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read("ca", settings["ca"]) if "ca" in settings else None,
            private_key=_read("key", settings["key"]) if "key" in settings else None,
            certificate_chain=_read("cert", settings["cert"]) if "cert" in settings else None,
        )
        if "server_name" in settings:
            channel_options.append(("grpc.ssl_target_name_override", settings["server_name"]))
        channel = grpc.aio.secure_channel(target, credentials, options=channel_options)
    else:
        tls_only = sorted({"ca", "cert", "key", "server_name"} & set(settings))
        if tls_only:
            raise InvalidArgument("options", tls_only, "TLS options need a grpcs:// URL")
        channel = grpc.aio.insecure_channel(target, options=channel_options)
    return GrpcBackend(channel, target=target, claim_call_seconds=claim_call_seconds)
