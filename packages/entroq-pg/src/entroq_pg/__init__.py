"""EntroQ's PostgreSQL backend: ``pg://`` and ``postgresql://`` URLs."""

from __future__ import annotations

from .backend import PgBackend, open_backend
from .config import PgConfig, parse_url
from .errors import SchemaError
from .schema import LATEST as SCHEMA_VERSION

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "PgBackend",
    "PgConfig",
    "SchemaError",
    "__version__",
    "open_backend",
    "parse_url",
]
