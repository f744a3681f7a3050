"""EntroQ's etcd v3 backend: ``etcd://host:port[,host:port...]``."""

from __future__ import annotations

from .backend import EtcdBackend, open_backend
from .config import EtcdConfig

__version__ = "0.1.0"

__all__ = ["EtcdBackend", "EtcdConfig", "__version__", "open_backend"]
