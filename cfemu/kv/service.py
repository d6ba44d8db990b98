"""`KVService`: the `[[kv_namespaces]]` of a runtime, one SQLite file per namespace id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..services import Service
from .namespace import KVNamespace
from .storage import KVStore

__all__ = ["KVService", "namespace_path"]


def namespace_path(state_dir: Path, namespace_id: str) -> Path:
    """Where a namespace's file lives under a runtime's state directory."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", namespace_id) or "_"
    return Path(state_dir) / "kv" / f"{safe}.sqlite"


class KVService(Service):
    """Opens every KV namespace of the config; bindings that share an id share one store."""

    kind = "kv"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._stores: dict[str, KVStore] = {}
        self._namespaces: dict[str, KVNamespace] = {}

    async def start(self) -> None:
        now = self.host.clock.now()
        for cfg in self.host.config.kv_namespaces:
            store = self._stores.get(cfg.id)
            if store is None:
                store = self._stores[cfg.id] = KVStore(namespace_path(self.host.state_dir, cfg.id))
                store.purge_expired(now)
            self._namespaces[cfg.binding] = KVNamespace(store, self.host.clock, binding=cfg.binding)

    def bindings(self) -> dict[str, Any]:
        return dict(self._namespaces)

    def namespace(self, binding: str) -> KVNamespace:
        """The binding object `env.<binding>` (for tests and tools)."""
        try:
            return self._namespaces[binding]
        except KeyError:
            raise KeyError(f"no KV namespace bound as {binding!r} (bound: {', '.join(self._namespaces) or 'none'})") from None

    def location(self, binding: str, name: str, *, delay: float = 60.0) -> KVNamespace:
        """A view of `env.<binding>` from another location: it sees writes made elsewhere `delay`
        seconds late and serves what it read for the read's cacheTtl (see `LocalKVNamespace.location`)."""
        primary = self.namespace(binding)
        view = primary._view(name, delay)
        # Every binding over the same namespace id is the same (primary) location.
        for other in self._namespaces.values():
            if other._store is primary._store:
                other._propagation = primary._propagation
        return view

    async def close(self) -> None:
        now = self.host.clock.now()
        for store in self._stores.values():
            if not store.closed:
                store.purge_expired(now)
                store.close()

    def abandon(self) -> None:
        # Every write was committed when it returned; closing loses nothing.
        for store in self._stores.values():
            store.close()
