"""The conformance suite through the wire: grpc:// client -> entroq-svc -> mem."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from entroq_core.backend import Backend
from entroq_core.testing import ConformanceSuite
from entroq_grpc.backend import open_backend
from scripts.servers.entroq_svc import ServerThread


class TestGrpcOverMemConformance(ConformanceSuite):
    """Every handle is a new channel to the same in-process server and store."""

    @pytest.fixture
    def backend_opener(self, server: ServerThread) -> Callable[[], Awaitable[Backend]]:
        return lambda: open_backend(server.url)
