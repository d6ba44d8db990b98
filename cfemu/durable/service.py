"""The Durable Objects service of a runtime: namespaces, live objects, alarms, and test controls."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..coro import run_nonsuspending
from ..errors import JsException, WorkerLoadError
from ..services import Service
from ..websocket import WebSocket
from .alarms import AlarmIndex
from .ids import DurableObjectId, id_from_name, id_from_string
from .instance import CODE_UPDATED, MOVED, ObjectHandle
from .migrations import apply_migrations
from .namespace import DurableObjectNamespace, Namespace

__all__ = ["DurableObjectsService", "StorageInspector"]

log = logging.getLogger("cfemu.durable")


class DurableObjectsService(Service):
    """Owns every Durable Object of the worker (one live instance per id)."""

    kind = "durable_objects"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.do_dir: Path = host.state_dir / "do"
        self.namespaces: dict[str, Namespace] = {}
        self.by_key: dict[str, Namespace] = {}
        self.handles: dict[tuple[str, str], ObjectHandle] = {}
        self.alarms: AlarmIndex | None = None

    async def start(self) -> None:
        config = self.host.config
        table = apply_migrations(config, self.do_dir)
        for binding in config.durable_objects:
            if binding.script_name not in (None, config.name):
                log.warning("durable_objects binding %s: objects of other workers (script_name=%r) are not "
                            "emulated; calls through it will fail", binding.name, binding.script_name)
                continue
            info = table.classes[binding.class_name]
            if self.host.worker_class(info.name) is None:
                raise WorkerLoadError(
                    f"{config.main}: durable_objects binding {binding.name!r} names class {info.name!r}, "
                    "which the main module does not export", filename=str(config.main))
            namespace = Namespace(self, binding, info)
            namespace.directory.mkdir(parents=True, exist_ok=True)
            self.namespaces[binding.name] = namespace
            self.by_key[info.key_name] = namespace
        self.alarms = AlarmIndex(self.do_dir / "alarms.sqlite", self)
        self.alarms.start()

    def bindings(self) -> dict[str, Any]:
        return {name: DurableObjectNamespace(ns) for name, ns in self.namespaces.items()}

    # -- objects --------------------------------------------------------------------------------

    def handle(self, namespace: Namespace, object_id: DurableObjectId) -> ObjectHandle:
        key = (namespace.info.key_name, object_id.toString())
        handle = self.handles.get(key)
        if handle is None:
            handle = self.handles[key] = ObjectHandle(self, namespace, object_id)
        return handle

    def handle_for_key(self, key_name: str, hex_id: str) -> ObjectHandle | None:
        namespace = self.by_key.get(key_name)
        if namespace is None:
            return None
        return self.handle(namespace, id_from_string(namespace.key, hex_id))

    def _resolve(self, binding: str, name_or_id: Any) -> ObjectHandle:
        namespace = self.namespaces.get(binding)
        if namespace is None:
            raise KeyError(f"no Durable Object binding named {binding!r} (have: {', '.join(self.namespaces)})")
        if isinstance(name_or_id, DurableObjectId):
            object_id = name_or_id
        elif isinstance(name_or_id, str) and len(name_or_id) == 64 and all(c in "0123456789abcdef" for c in name_or_id):
            object_id = id_from_string(namespace.key, name_or_id)
        else:
            object_id = id_from_name(namespace.key, str(name_or_id))
        return self.handle(namespace, object_id)

    def _reset_all(self, error: BaseException, *, drop_sockets: bool) -> None:
        for handle in self.handles.values():
            if handle.instance is not None:
                handle.instance.reset(error)
            if drop_sockets:
                for ws in list(handle.sockets):
                    ws._disconnect(1012, "")
                handle.sockets.clear()

    async def reload(self) -> None:
        """New code: every live object resets; hibernated sockets are disconnected, as on a deploy."""
        self._reset_all(JsException(CODE_UPDATED), drop_sockets=True)

    async def close(self) -> None:
        for handle in self.handles.values():
            if handle.instance is not None:
                handle.instance.close(commit=True)
                handle.instance = None
        if self.alarms is not None:
            self.alarms.close()

    def abandon(self) -> None:
        for handle in self.handles.values():
            if handle.instance is not None:
                handle.instance.close(commit=False)
                handle.instance = None
            for ws in list(handle.sockets):
                ws._disconnect(1006, "")
        if self.alarms is not None:
            self.alarms.close()

    # -- test controls --------------------------------------------------------------------------

    async def evict(self, binding: str, name_or_id: Any, *, websockets: str = "hibernate") -> None:
        if websockets not in ("hibernate", "close"):
            raise ValueError('websockets must be "hibernate" or "close"')
        handle = self._resolve(binding, name_or_id)
        if websockets == "close":
            for ws in list(handle.sockets):
                if ws.readyState < WebSocket.CLOSING:
                    ws.close(1001, "Durable Object evicted")
            handle.sockets.clear()
        handle.evict_instance()

    async def reroute(self, binding: str, name_or_id: Any) -> None:
        handle = self._resolve(binding, name_or_id)
        if handle.instance is not None:
            handle.instance.reset(JsException(MOVED, retryable=True))
        for ws in list(handle.sockets):
            ws._disconnect(1006, "")
        handle.sockets.clear()

    async def run_alarm(self, binding: str, name_or_id: Any) -> None:
        assert self.alarms is not None
        await self.alarms.run(self._resolve(binding, name_or_id), forced=True)

    def list_ids(self, binding: str) -> list[str]:
        """Ids of the objects that have stored data or an alarm (committed), live or not."""
        namespace = self.namespaces[binding]
        return sorted(p.stem for p in namespace.directory.glob("*.sqlite") if _has_stored_data(p))

    def inspect_storage(self, binding: str, name_or_id: Any) -> StorageInspector:
        handle = self._resolve(binding, name_or_id)
        return StorageInspector(handle.path, sqlite_backed=handle.namespace.info.sqlite)

    def fail_next_storage_write(self, binding: str, name_or_id: Any) -> None:
        handle = self._resolve(binding, name_or_id)
        if handle.instance is not None and not handle.instance.closed:
            handle.instance.engine.fail_next_commit()
        else:
            handle.fail_next_commit = True


class StorageInspector:
    """Read-only view of an object's committed storage, for tests (`get`, `list`, `sql`)."""

    def __init__(self, path: Path, *, sqlite_backed: bool) -> None:
        self.path = path
        self.sqlite_backed = sqlite_backed

    def _open(self):
        from .engine import StorageEngine
        from .storage import DurableObjectStorage

        engine = StorageEngine(self.path, on_dirty=lambda: None)
        return engine, DurableObjectStorage(engine, sqlite_backed=self.sqlite_backed)

    def get(self, key: str | list[str]) -> Any:
        engine, storage = self._open()
        try:
            return _run_sync(storage.get(key))
        finally:
            engine.close()

    def list(self, **options: Any) -> dict[str, Any]:
        engine, storage = self._open()
        try:
            return dict(_run_sync(storage.list(**options)))
        finally:
            engine.close()

    def sql(self, query: str, *bindings: Any) -> list[dict[str, Any]]:
        engine, storage = self._open()
        try:
            return [dict(row) for row in storage.sql.exec(query, *bindings).toArray()]
        finally:
            engine.close()

    def alarm(self) -> int | None:
        engine, _ = self._open()
        try:
            return engine.get_alarm()
        finally:
            engine.close()


def _has_stored_data(path: Path) -> bool:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        if db.execute("SELECT 1 FROM _cf_KV LIMIT 1").fetchone():
            return True
        if db.execute("SELECT 1 FROM _cf_METADATA WHERE key = 'alarm'").fetchone():
            return True
        return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' "
                          "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()



def _run_sync(coro: Any) -> Any:
    return run_nonsuspending(coro, "storage call")
