"""`D1Service`: one SQLite file per `[[d1_databases]]` database_id under `<state>/d1/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import D1DatabaseConfig
from ..services import StoreService
from .database import D1Database
from .migrations import Migration, apply_migrations, applied_migrations, migration_files, pending_migrations
from .storage import D1Storage

__all__ = ["D1Service", "database_path"]


def database_path(state_dir: Path, database_id: str) -> Path:
    """Where a D1 database's SQLite file lives under a state directory."""
    return Path(state_dir) / "d1" / f"{database_id}.sqlite"


class D1Service(StoreService):
    """Provides `env.<binding>` D1 databases; also the Python API for migrations (tests, CLI)."""

    kind = "d1"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._databases: dict[str, D1Database] = {}

    async def start(self) -> None:
        for db in self.host.config.d1_databases:
            storage = self._stores.get(db.database_id)
            if storage is None:
                storage = D1Storage(database_path(self.host.state_dir, db.database_id))
                self._stores[db.database_id] = storage
            self._databases[db.binding] = D1Database(storage, name=db.database_name)

    def bindings(self) -> dict[str, Any]:
        return dict(self._databases)

    def config_for(self, name: str) -> D1DatabaseConfig:
        """The database named by binding, database_name or database_id."""
        for db in self.host.config.d1_databases:
            if name in (db.binding, db.database_name, db.database_id):
                return db
        known = ", ".join(db.binding for db in self.host.config.d1_databases) or "none"
        raise KeyError(f"no D1 database {name!r} in the config (bindings: {known})")

    def storage(self, name: str) -> D1Storage:
        return self._stores[self.config_for(name).database_id]

    def database(self, name: str) -> D1Database:
        return self._databases[self.config_for(name).binding]

    def list_migrations(self, name: str) -> list[Migration]:
        """Every migration file with `applied_at` set for those already applied."""
        db = self.config_for(name)
        done = applied_migrations(self.storage(name), db.migrations_table)
        return [Migration(p.name, p, done.get(p.name)) for p in migration_files(db.migrations_dir)]

    def pending_migrations(self, name: str) -> list[Migration]:
        db = self.config_for(name)
        return pending_migrations(self.storage(name), db.migrations_dir, db.migrations_table)

    async def apply_migrations(self, name: str) -> list[Migration]:
        """Mirrors `wrangler d1 migrations apply`: applies pending migrations, returns them."""
        db = self.config_for(name)
        return apply_migrations(self.storage(name), db.migrations_dir, db.migrations_table,
                                now=self.host.clock.now())


