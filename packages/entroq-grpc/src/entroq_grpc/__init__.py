"""EntroQ over gRPC: the ``grpc://`` client backend and a servicer exposing any backend."""

from __future__ import annotations

from .backend import GrpcBackend, open_backend
from .servicer import EntroQServicer

__version__ = "0.1.0"

__all__ = ["EntroQServicer", "GrpcBackend", "__version__", "open_backend"]
