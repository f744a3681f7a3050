"""A small etcd v3 client over grpc.aio: endpoints with failover, auth, TLS, errors.

Calls stick to one endpoint and move to the next when it fails. A call that
cannot have reached etcd (no connection, no leader) is retried on the next
endpoint; a write whose outcome is unknown (connection lost mid-call) is not
retried here: it raises BackendUnavailable and the caller decides. Every call
carries etcd's ``hasleader`` metadata, so a member cut off from its cluster
refuses at once instead of hanging, and every call has a deadline
(``call_timeout``) so nothing waits forever on a silent cluster.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from entroq_core.errors import (
    AuthenticationError,
    BackendUnavailable,
    EntroQError,
    InvalidArgument,
    MessageTooLarge,
    PermissionDenied,
)

from ._etcdpb import rpc_pb2
from .config import EtcdConfig

log = logging.getLogger("entroq.etcd")

Resp = TypeVar("Resp", bound=Message)

_RANGE = "/etcdserverpb.KV/Range"
_TXN = "/etcdserverpb.KV/Txn"
_WATCH = "/etcdserverpb.Watch/Watch"
_AUTHENTICATE = "/etcdserverpb.Auth/Authenticate"

# Messages (etcd's rpctypes and gRPC's own) that mean the request never reached
# the raft log, so trying another endpoint cannot apply it twice.
_NOT_SENT = (
    "failed to connect to all addresses",
    "connection refused",
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "etcdserver: not capable",
    "dns resolution failed",
    "name resolution",
)

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # A restarted member should be usable within a second, not after gRPC's
    # default reconnect backoff of up to two minutes. (Not min_reconnect_backoff:
    # despite its name that is the time a connection attempt gets, 20 s by
    # default; at 100 ms a connection slower than the backoff, TLS to a distant
    # or busy member, would never complete.)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


class EtcdClient:
    """Unary calls and watch streams against a list of endpoints."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self._channels: dict[int, grpc.aio.Channel] = {}
        # One callable per endpoint and method: building it on every call costs CPU
        # on the hot path (two calls per claim+delete cycle).
        self._callables: dict[tuple[int, str], grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        self._current = 0
        self._token: str | None = None
        self._auth_lock: asyncio.Lock | None = None
        self._closed = False
        self._down = False  # the last call failed as unavailable (logged once per outage)

    # --- lifecycle --------------------------------------------------------------

    async def open(self, probe_key: bytes) -> None:
        """Authenticate if configured and check that some endpoint answers.

        Reading ``probe_key`` (one key, linearizably) proves the endpoints, the
        credentials, the permissions and that the cluster has a leader.
        """
        if self.config.user:
            await self._authenticate()
        await self.range(rpc_pb2.RangeRequest(key=probe_key, keys_only=True))

    async def aclose(self) -> None:
        """Close every channel."""
        self._closed = True
        channels, self._channels = list(self._channels.values()), {}
        self._callables = {}
        for ch in channels:
            await ch.close(grace=None)

    # --- calls ------------------------------------------------------------------

    async def range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Read a key or range (retried on another endpoint if one fails)."""
        return await self.call(_RANGE, request, rpc_pb2.RangeResponse, safe=True)

    async def txn(
        self,
        request: rpc_pb2.TxnRequest,
        *,
        read_only: bool = False,
        deadline: float | None = None,
    ) -> rpc_pb2.TxnResponse:
        """Run a Txn; writes are not retried when their outcome is unknown."""
        return await self.call(
            _TXN, request, rpc_pb2.TxnResponse, safe=read_only, deadline=deadline
        )

    def watch_stream(self) -> tuple[grpc.aio.StreamStreamCall[Any, Any], str]:
        """Open a Watch stream on the current endpoint; return it and the endpoint."""
        index = self._current
        channel = self._channel(index)
        call = channel.stream_stream(
            _WATCH,
            request_serializer=rpc_pb2.WatchRequest.SerializeToString,
            response_deserializer=rpc_pb2.WatchResponse.FromString,
        )(metadata=self._metadata())
        return call, self.config.endpoints[index]

    def watch_failed(self, endpoint: str) -> None:
        """Move on from an endpoint whose watch stream broke."""
        if self.config.endpoints[self._current] == endpoint:
            self._current = (self._current + 1) % len(self.config.endpoints)

    async def call(
        self,
        method: str,
        request: Message,
        response_type: type[Resp],
        *,
        safe: bool,
        deadline: float | None = None,
    ) -> Resp:
        """One unary call with failover; ``safe`` calls may be retried elsewhere.

        ``deadline`` (event loop time) is when the call was asked for plus
        call_timeout, for a call that waited in a queue first; by default the
        call_timeout counts from now. The first failure of a run of unavailable
        calls is logged as a warning, and the first call that works again at
        info: an outage shows in the log once, not once per call.
        """
        if self._closed:
            raise BackendUnavailable("the etcd backend is closed")
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.config.call_timeout
        endpoints = self.config.endpoints
        failures: list[str] = []
        reauthenticated = False
        index = self._current
        tried = 0
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise BackendUnavailable(
                        f"etcd at {self.config.describe()} did not answer within "
                        f"{self.config.call_timeout:g}s" + _detail(failures)
                    )
                multicallable = self._callables.get((index, method))
                if multicallable is None:
                    multicallable = self._channel(index).unary_unary(
                        method,
                        request_serializer=_serialize,
                        response_deserializer=response_type.FromString,
                    )
                    self._callables[(index, method)] = multicallable
                try:
                    response: Resp = await multicallable(
                        request, timeout=remaining, metadata=self._metadata()
                    )
                    break
                except grpc.aio.AioRpcError as exc:
                    code, details = exc.code(), exc.details() or ""
                endpoint = endpoints[index]
                if (
                    code == grpc.StatusCode.UNAUTHENTICATED
                    and "invalid auth token" in details
                    and self.config.user
                    and not reauthenticated
                ):
                    # Simple tokens expire after etcd's --auth-token-ttl; the call was refused.
                    reauthenticated = True
                    await self._authenticate(stale=self._token)
                    continue
                if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise _map_error(code, details, endpoint, request)
                failures.append(f"{endpoint}: {details or code.name}")
                if self._current == index:
                    self._current = (index + 1) % len(endpoints)
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise BackendUnavailable(
                        f"etcd at {self.config.describe()} did not answer within "
                        f"{self.config.call_timeout:g}s" + _detail(failures)
                    )
                if not safe and not _never_sent(details):
                    raise BackendUnavailable(
                        f"etcd connection lost during a write at {endpoint}; the outcome is "
                        f"unknown: {details}"
                    )
                tried += 1
                if tried >= len(endpoints):
                    raise BackendUnavailable(
                        f"etcd unavailable at {self.config.describe()}" + _detail(failures)
                    )
                index = (index + 1) % len(endpoints)
        except BackendUnavailable as exc:
            if not (self._down or self._closed or isinstance(exc, HistoryCompacted)):
                self._down = True
                log.warning("etcd unavailable: %s", exc)
            raise
        if self._down:
            self._down = False
            log.info("etcd at %s answers again", self.config.describe())
        return response

    # --- internals --------------------------------------------------------------

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        if self._token:
            return (("hasleader", "true"), ("token", self._token))
        return (("hasleader", "true"),)

    def _channel(self, index: int) -> grpc.aio.Channel:
        channel = self._channels.get(index)
        if channel is None:
            target = self.config.endpoints[index]
            if self.config.tls:
                options: list[tuple[str, Any]] = list(_CHANNEL_OPTIONS)
                if self.config.server_name:
                    options.append(("grpc.ssl_target_name_override", self.config.server_name))
                channel = grpc.aio.secure_channel(target, self._credentials(), options=options)
            else:
                channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
            self._channels[index] = channel
        return channel

    def _credentials(self) -> grpc.ChannelCredentials:
        def read(name: str, path: str | None) -> bytes | None:
            if not path:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise InvalidArgument(name, path, f"cannot be read: {exc}") from None

        return grpc.ssl_channel_credentials(
            root_certificates=read("ca_file", self.config.ca_file),
            private_key=read("key_file", self.config.key_file),
            certificate_chain=read("cert_file", self.config.cert_file),
        )

    async def _authenticate(self, stale: str | None = None) -> None:
        if self._auth_lock is None:
            self._auth_lock = asyncio.Lock()
        async with self._auth_lock:
            if stale is not None and self._token != stale:
                return  # another call already fetched a fresh token
            self._token = None
            request = rpc_pb2.AuthenticateRequest(
                name=self.config.user or "", password=self.config.password or ""
            )
            response = await self.call(
                _AUTHENTICATE, request, rpc_pb2.AuthenticateResponse, safe=True
            )
            self._token = response.token


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _never_sent(details: str) -> bool:
    text = details.lower()
    return any(marker in text for marker in _NOT_SENT)


def _detail(failures: list[str]) -> str:
    return (": " + "; ".join(failures)) if failures else ""


class HistoryCompacted(BackendUnavailable):
    """A read asked for a revision etcd has compacted away."""


def _map_error(code: grpc.StatusCode, details: str, endpoint: str, request: Message) -> EntroQError:
    """Turn an etcd failure into the EntroQ error of SPEC section 3."""
    where = f"etcd at {endpoint}: {details}"
    if "authentication failed" in details or "user name is empty" in details:
        return AuthenticationError(where)
    if "authentication is not enabled" in details:
        # Credentials given to an etcd without auth: a setting to fix, not an outage.
        return AuthenticationError(f"{where} (give no user and password, or enable auth)")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AuthenticationError(where)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(where)
    if "request is too large" in details or code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return MessageTooLarge(
            "modification",
            f"<{request.ByteSize()} bytes>",
            f"etcd refused it as too large ({where})",
        )
    if "too many operations in txn request" in details:
        ops = len(getattr(request, "success", ()))
        return InvalidArgument(
            "modification",
            f"<{ops} etcd operations>",
            f"touches too many tasks for one etcd transaction; raise etcd's --max-txn-ops "
            f"or split it ({where})",
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        # etcd checks a request before proposing it: nothing was applied.
        return InvalidArgument(
            "modification", f"<{request.ByteSize()} bytes>", f"etcd refused it ({where})"
        )
    if code == grpc.StatusCode.CANCELLED:
        return BackendUnavailable(f"etcd call cancelled by the server: {where}")
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return HistoryCompacted(where)
    # Anything else (corrupt, compacted, internal) is the store failing, not the caller.
    return BackendUnavailable(where)
