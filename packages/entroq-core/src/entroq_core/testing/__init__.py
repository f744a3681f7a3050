"""The public conformance suite every EntroQ backend runs (needs ``entroq-core[testing]``).

Subclass :class:`ConformanceSuite` in a ``Test*`` class and provide a
``backend_opener`` fixture: a zero-argument async callable returning a NEW handle
onto the SAME store each time it is called::

    class TestMyBackend(ConformanceSuite):
        @pytest.fixture
        def backend_opener(self, my_server_url):
            return lambda: my_backend.open_backend(my_server_url)
"""

from __future__ import annotations

from .harness import Harness, conformance
from .suite import ConformanceSuite

__all__ = ["ConformanceSuite", "Harness", "conformance"]
