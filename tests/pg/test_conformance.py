"""The shared conformance suite against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import entroq_pg
from entroq_core.backend import Backend
from entroq_core.testing import ConformanceSuite


class TestPgConformance(ConformanceSuite):
    """pg:// through the public suite (every handle shares one database)."""

    @pytest.fixture
    def backend_opener(self, pg_url: str) -> Callable[[], Awaitable[Backend]]:
        async def open_() -> Backend:
            return await entroq_pg.open_backend(pg_url)

        return open_
