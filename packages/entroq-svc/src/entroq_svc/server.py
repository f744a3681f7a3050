"""The entroq-svc server: the EntroQ service, health and reflection on one grpc.aio server."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from entroq_core.backend import Backend
from entroq_core.errors import InvalidArgument
from entroq_core.registry import connect
from entroq_grpc.convert import SERVICE_NAME
from entroq_grpc.servicer import EntroQServicer

from .inflight import InFlightCalls
from .readiness import Readiness
from .tls import TlsFiles

log = logging.getLogger("entroq_svc")

DEFAULT_PORT = 37706
DEFAULT_MAX_MESSAGE_MB = 10
DEFAULT_GRACE_SECONDS = 10.0
# gRPC's message limits are 32-bit signed byte counts; a value must leave room
# for the rest of its request.
MAX_MESSAGE_MB = 2047

# At shutdown, once no EntroQ call is in flight: how long grpc gets to finish
# stopping by itself before the calls it still holds are ended.
_SETTLE_SECONDS = 0.5
# How long calls cancelled at the end of the grace get to end (take back what
# they started in the backend) before the backend closes under them.
_CANCELLED_CALLS_SECONDS = 10.0

# Room for the rest of a request around a value of the maximum size.
_ENVELOPE_BYTES = 64 * 1024


def backend_url(name_or_url: str, environ: dict[str, str] | None = None) -> str:
    """Turn ``--backend`` into a URL.

    A value with ``://`` is a URL already. A bare name such as ``pg`` becomes the
    value of ``ENTROQ_PG_URL`` if that is set, else ``pg://`` (the backend's own
    defaults, usually from its standard environment variables).

    Raises:
        InvalidArgument: an empty or malformed name.
    """
    value = name_or_url.strip()
    if "://" in value:
        return value
    if not value or not value.replace("-", "_").replace("_", "").isalnum():
        raise InvalidArgument("backend", name_or_url, "give a backend name like mem or a URL")
    env = os.environ if environ is None else environ
    return env.get(f"ENTROQ_{value.upper().replace('-', '_')}_URL") or f"{value.lower()}://"


class EntroQServer:
    """A started server; stop it with :meth:`stop`.

    Example::

        server = await EntroQServer.start(await entroq_core.connect("mem://"), port=0)
        print(server.port)
        await server.stop()
    """

    def __init__(
        self,
        server: grpc.aio.Server,
        servicer: EntroQServicer,
        health_servicer: health.aio.HealthServicer,
        readiness: Readiness,
        port: int,
        address: str,
        in_flight: InFlightCalls,
    ) -> None:
        self._server = server
        self._servicer = servicer
        self._health = health_servicer
        self._readiness = readiness
        self._in_flight = in_flight
        self._port = port
        self._address = address
        self._stopped = False

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` the server listens on."""
        return self._address

    @property
    def servicer(self) -> EntroQServicer:
        """The EntroQ servicer."""
        return self._servicer

    @classmethod
    async def start(
        cls,
        backend: Backend,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
        tls: TlsFiles | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> EntroQServer:
        """Serve ``backend`` on ``host:port`` until :meth:`stop`.

        ``interceptors`` (for example authentication) wrap every RPC.

        Raises:
            InvalidArgument: a bad size limit, or the address cannot be bound.
        """
        if not 0 < max_message_mb <= MAX_MESSAGE_MB:  # also refuses nan
            raise InvalidArgument(
                "max_message_mb",
                max_message_mb,
                f"must be more than 0 and at most {MAX_MESSAGE_MB} (gRPC's limit is 2 GiB)",
            )
        max_bytes = int(max_message_mb * 1024 * 1024)
        # First, so a call counts from the moment grpc hands it over.
        in_flight = InFlightCalls(SERVICE_NAME)
        server = grpc.aio.server(
            interceptors=(in_flight, *interceptors),
            options=[
                ("grpc.max_receive_message_length", max_bytes + _ENVELOPE_BYTES),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0),
                # Clients may ping a quiet connection every 10 s (keepalive_seconds
                # of the grpc:// client) without being told off (GOAWAY).
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
        )
        health_servicer = health.aio.HealthServicer()
        readiness = Readiness(health_servicer, backend, SERVICE_NAME)
        servicer = EntroQServicer(backend, max_value_bytes=max_bytes, on_backend=readiness.outcome)
        server.add_generic_rpc_handlers((servicer.handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        credentials = tls.credentials() if tls is not None else None
        grpc_says = ""
        try:
            if credentials is not None:
                bound = server.add_secure_port(address, credentials)
            else:
                bound = server.add_insecure_port(address)
        except (RuntimeError, OSError) as exc:
            bound, grpc_says = 0, str(exc)
        if not bound:
            reason = _why_not(host, port) or grpc_says or "gRPC refused the address"
            raise InvalidArgument(
                "address", address, f"cannot listen: {reason} (GRPC_VERBOSITY=debug tells more)"
            )
        await server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        await health_servicer.set("", serving)
        await health_servicer.set(SERVICE_NAME, serving)
        bound_address = f"{address.rpartition(':')[0]}:{bound}"
        log.info(
            "serving",
            extra={
                "address": bound_address,
                "tls": tls is not None,
                "max_message_mb": max_message_mb,
            },
        )
        return cls(server, servicer, health_servicer, readiness, bound, bound_address, in_flight)

    async def stop(self, grace: float = DEFAULT_GRACE_SECONDS) -> None:
        """Shut down gracefully, then close the backend.

        Health turns NOT_SERVING, waiting Claims end with UNAVAILABLE (their clients
        retry elsewhere), new calls are refused, and calls in flight (Modify) get up
        to ``grace`` seconds to finish; once none is left, whatever grpc still
        holds ends at once (see ``_end_unserved_calls``).
        """
        if self._stopped:
            return
        self._stopped = True
        self._readiness.close()
        await self._health.enter_graceful_shutdown()
        waiting = self._servicer.drain()
        log.info("draining", extra={"waiting_claims": waiting, "grace_seconds": grace})
        stopping = asyncio.ensure_future(self._server.stop(grace))
        try:
            await self._end_unserved_calls(stopping)
        finally:
            # Even if this stop is cancelled: the server stops and the backend closes.
            await stopping
            await self._let_cancelled_calls_end()
            await self._servicer.backend.aclose()
        log.info("stopped")

    async def _let_cancelled_calls_end(self) -> None:
        """Wait for the calls grpc cancelled at the end of the grace to finish.

        grpc's stop returns once it has cancelled them, not once they have ended.
        A cancelled Modify may still be taking its statement back (psycopg asks
        PostgreSQL to cancel it and waits for that); cut short by the process
        exiting, the statement ran on and committed while its client was told the
        call failed, and a retry then applied it twice.
        """
        if not self._in_flight.count:
            return
        try:
            async with asyncio.timeout(_CANCELLED_CALLS_SECONDS):
                await self._in_flight.none_in_flight()
        except TimeoutError:
            log.warning(
                "calls still ending after the grace; closing the backend under them",
                extra={"calls": self._in_flight.count},
            )

    async def _end_unserved_calls(self, stopping: asyncio.Future[None]) -> None:
        """Once no EntroQ call is in flight, end the rest instead of waiting out the grace.

        A stopping grpc server hands no more calls to the service, but it keeps
        the ones that arrived as the shutdown began (and health Watch streams)
        until the grace ends: a restart under load waited the whole grace for
        calls that would never be served. Their clients get UNAVAILABLE or
        CANCELLED (BackendUnavailable, to this project's clients) either way.
        """
        while not stopping.done():
            idle = asyncio.ensure_future(self._in_flight.none_in_flight())
            try:
                await asyncio.wait({stopping, idle}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                idle.cancel()
            if stopping.done():
                return
            # An idle server stops by itself within milliseconds.
            await asyncio.wait({stopping}, timeout=_SETTLE_SECONDS)
            if not stopping.done() and not self._in_flight.count:
                log.info("no calls left in flight; ending calls that will not be served")
                await self._server.stop(None)
                return

    async def wait_for_termination(self) -> None:
        """Wait until the server has stopped."""
        await self._server.wait_for_termination()


def _why_not(host: str, port: int) -> str:
    """Why gRPC could not bind ``host:port``, found by binding it ourselves ("" if we can).

    gRPC says only that binding failed (details at GRPC_VERBOSITY=debug); the
    operating system's reason (address in use, not an address of this machine)
    is what the user needs.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"{host!r} does not resolve: {exc.strerror or exc}"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                return exc.strerror or str(exc)
    return ""


async def serve(
    name_or_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    max_message_mb: float = DEFAULT_MAX_MESSAGE_MB,
    tls: TlsFiles | None = None,
) -> EntroQServer:
    """Open the backend through the registry and start serving it."""
    url = backend_url(name_or_url)
    backend = await connect(url)
    try:
        return await EntroQServer.start(
            backend, host=host, port=port, max_message_mb=max_message_mb, tls=tls
        )
    except BaseException:
        await backend.aclose()
        raise
