"""The conformance suite through the wire: grpc:// client -> entroq-svc process -> etcd."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from entroq_core.backend import Backend
from entroq_core.testing import ConformanceSuite
from entroq_grpc.backend import open_backend
from scripts.servers.entroq_svc import svc_process


@pytest.fixture(scope="module")
def svc_on_etcd(etcd_server_url: str) -> Iterator[str]:
    """``entroq-svc --backend etcd://...`` as a real subprocess, for this module."""
    with svc_process(etcd_server_url.rstrip("/") + "/entroq-svc-conformance/") as url:
        yield url


class TestEtcdThroughSvcConformance(ConformanceSuite):
    """Every handle is a new channel to one entroq-svc serving one etcd prefix."""

    @pytest.fixture
    def backend_opener(self, svc_on_etcd: str) -> Callable[[], Awaitable[Backend]]:
        return lambda: open_backend(svc_on_etcd)
