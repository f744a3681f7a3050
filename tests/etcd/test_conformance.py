"""The conformance suite against a real etcd."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from entroq_core.backend import Backend
from entroq_core.testing import ConformanceSuite
from entroq_etcd.backend import open_backend


class TestEtcdConformance(ConformanceSuite):
    """etcd:// through the public suite; each case gets its own key prefix."""

    @pytest.fixture
    def backend_opener(self, etcd_url: str) -> Callable[[], Awaitable[Backend]]:
        return lambda: open_backend(etcd_url)
