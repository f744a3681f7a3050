"""The conformance suite against the in-memory backend."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest

from entroq_core.backend import Backend
from entroq_core.mem import open_backend
from entroq_core.testing import ConformanceSuite


class TestMemConformance(ConformanceSuite):
    """mem:// through the public suite."""

    @pytest.fixture
    def backend_opener(self) -> Callable[[], Awaitable[Backend]]:
        # A named store: every handle the case opens shares the same tasks.
        url = f"mem://conformance-{uuid.uuid4().hex}"
        return lambda: open_backend(url)
