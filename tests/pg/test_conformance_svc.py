"""The conformance suite through the wire: grpc:// client -> entroq-svc -> pg."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from entroq_core.backend import Backend
from entroq_core.testing import ConformanceSuite
from entroq_grpc.backend import open_backend
from scripts.servers.entroq_svc import ServerThread


@pytest.fixture(scope="module")
def svc_on_pg(pg_url: str) -> Iterator[ServerThread]:
    """An in-process entroq-svc over the session's PostgreSQL, for this module."""
    with ServerThread(pg_url) as running:
        yield running


class TestPgThroughSvcConformance(ConformanceSuite):
    """Every handle is a new channel to one entroq-svc serving one database."""

    @pytest.fixture
    def backend_opener(self, svc_on_pg: ServerThread) -> Callable[[], Awaitable[Backend]]:
        return lambda: open_backend(svc_on_pg.url)
