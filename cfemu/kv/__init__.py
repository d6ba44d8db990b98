"""Workers KV: namespaces over SQLite with TTLs on the runtime clock, metadata, cursors and limits."""

from .namespace import KVNamespace, KVValueStream, LocalKVNamespace
from .service import KVService, namespace_path
from .storage import KVStore

__all__ = ["KVNamespace", "KVService", "KVStore", "KVValueStream", "LocalKVNamespace", "namespace_path"]
