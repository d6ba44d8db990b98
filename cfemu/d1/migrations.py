"""D1 migrations as wrangler runs them: numbered `.sql` files applied in order, recorded in a table.

The table has wrangler's shape (`id`, `name`, `applied_at`) so a database migrated by cfemu and one
migrated by wrangler agree on what has been applied.  Each migration and its record commit together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import apsw

from .errors import D1_ERROR, d1_error, sqlite_message
from .storage import D1Storage

__all__ = ["Migration", "migration_files", "applied_migrations", "pending_migrations", "apply_migrations"]

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    """One file of a D1 migrations_dir, as `wrangler d1 migrations list` shows it."""

    name: str
    path: Path
    applied_at: str | None = None


def migration_files(directory: Path) -> list[Path]:
    """The `.sql` files of a migrations directory in the order wrangler applies them."""
    if not directory.is_dir():
        return []

    def order(path: Path) -> tuple[int, str]:
        number = re.match(r"^(\d+)", path.name)
        return (int(number.group(1)) if number else 1 << 62, path.name)

    return sorted((p for p in directory.iterdir() if p.is_file() and p.suffix == ".sql"), key=order)


def _ensure_table(storage: D1Storage, table: str) -> None:
    if not _TABLE_NAME.match(table):
        raise ValueError(f"migrations_table {table!r} is not a valid table name")
    storage.run_internal(
        f"CREATE TABLE IF NOT EXISTS {table}("
        "id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, "
        "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)"
    )


def applied_migrations(storage: D1Storage, table: str) -> dict[str, str]:
    """name -> applied_at of the migrations recorded in `table`."""
    _ensure_table(storage, table)
    return {name: str(at) for name, at in storage.run_internal(f"SELECT name, applied_at FROM {table} ORDER BY id")}


def pending_migrations(storage: D1Storage, directory: Path, table: str) -> list[Migration]:
    """The migration files not yet recorded in `table`, in the order `wrangler d1 migrations apply` runs them."""
    done = applied_migrations(storage, table)
    return [Migration(p.name, p) for p in migration_files(directory) if p.name not in done]


def apply_migrations(storage: D1Storage, directory: Path, table: str, *, now: float) -> list[Migration]:
    """Apply every pending migration in order; stops at the first failure (earlier ones stay applied)."""
    applied: list[Migration] = []
    stamp = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    for migration in pending_migrations(storage, directory, table):
        sql = migration.path.read_text(encoding="utf-8")
        storage._begin()
        try:
            # The user's SQL runs under D1's rules (no BEGIN/COMMIT inside a migration file).
            for _ in storage.conn.execute(sql):
                pass  # a statement that returns rows pauses the cursor; run them all
            storage.run_internal(f"INSERT INTO {table} (name, applied_at) VALUES (?, ?)", (migration.name, stamp))
        except apsw.Error as e:
            storage._rollback()
            message = sqlite_message(e, storage._deny_reason)
            storage._deny_reason = None
            raise d1_error(D1_ERROR, f"Migration {migration.name} failed: {message}") from None
        except BaseException:
            storage._rollback()
            raise
        storage._commit()
        applied.append(Migration(migration.name, migration.path, stamp))
    return applied
