"""ConformanceSuite: every MUST of SPEC sections 2 and 3, for any backend."""

from __future__ import annotations

from .claim_cases import ClaimCases
from .model_cases import ModelCases
from .modify_cases import ModifyCases
from .read_cases import ReadCases


class ConformanceSuite(ClaimCases, ModifyCases, ReadCases, ModelCases):
    """Subclass as ``Test<Name>`` and provide a ``backend_opener`` fixture.

    Class attributes a backend may tune: ``concurrent_claim_tasks`` (default 1000)
    and ``random_steps`` (default 300).
    """
