"""Health that follows the backend: ``proto.EntroQ`` is NOT_SERVING while it is away.

A load balancer or a readiness probe asking for ``proto.EntroQ`` then stops
sending work to a service whose database is down, and sends it again once a
call or a probe finds the database answering. The process itself (``""``)
stays SERVING until shutdown: a liveness probe must not restart a healthy
server because its database is away, which would not bring the database back.
"""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health, health_pb2

from entroq_core.backend import Backend
from entroq_core.errors import BackendUnavailable
from entroq_core.requests import QueuesRequest

log = logging.getLogger("entroq_svc")

PROBE_SECONDS = 1.0
# A queue nobody uses: the probe reads its stats, a cheap question every backend
# has to ask its store.
_PROBE = QueuesRequest(exact=("entroq-svc/readiness-probe",), limit=1)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    """Turns the servicer's "backend answered / unavailable" into health statuses."""

    def __init__(self, health_servicer: health.aio.HealthServicer, backend: Backend, service: str):
        self._health = health_servicer
        self._backend = backend
        self._service = service
        self._serving = True
        self._closed = False
        self._probe: asyncio.Task[None] | None = None
        self._updates: set[asyncio.Task[None]] = set()

    @property
    def serving(self) -> bool:
        """Whether ``service`` is reported SERVING now."""
        return self._serving

    def outcome(self, answered: bool) -> None:
        """A call found the backend answering (True) or unavailable (False)."""
        if self._closed or answered == self._serving:
            return
        self._set(answered)
        if answered:
            log.info("backend answers again; %s SERVING", self._service)
        else:
            log.warning("backend unavailable; %s NOT_SERVING until it answers", self._service)
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_back())

    def close(self) -> None:
        """Stop following the backend (shutdown sets the statuses from here on)."""
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()

    def _set(self, serving: bool) -> None:
        self._serving = serving
        probe = self._probe
        if serving and probe is not None and probe is not asyncio.current_task():
            probe.cancel()  # a call found the backend first
        status = _SERVING if serving else _NOT_SERVING
        update = asyncio.get_running_loop().create_task(self._health.set(self._service, status))
        self._updates.add(update)
        update.add_done_callback(self._updates.discard)

    async def _probe_until_back(self) -> None:
        """While no call finds the backend, look every PROBE_SECONDS ourselves."""
        while not self._serving and not self._closed:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                await self._backend.queue_stats(_PROBE)
            except BackendUnavailable:
                continue
            except Exception as exc:  # the backend is there but refuses: still not ready
                log.debug("readiness probe: %r", exc)
                continue
            self.outcome(True)
