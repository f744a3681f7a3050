"""entroq-svc: serve any EntroQ backend over the EntroQ gRPC protocol."""

from __future__ import annotations

from .server import EntroQServer, backend_url, serve
from .tls import TlsFiles

__version__ = "0.1.0"

__all__ = ["EntroQServer", "TlsFiles", "__version__", "backend_url", "serve"]
