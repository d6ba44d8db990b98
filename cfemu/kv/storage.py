"""One KV namespace's keys in one SQLite file (WAL, committed before each write returns)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..sqlite import open_sqlite3

__all__ = ["Entry", "ListedKey", "KVStore"]


class Entry(NamedTuple):
    """A stored value: raw bytes, absolute expiration in seconds (or None), metadata as JSON text."""

    value: bytes
    expiration: int | None = None
    metadata: str | None = None

    def live(self, now: float) -> bool:
        return self.expiration is None or self.expiration > now


class ListedKey(NamedTuple):
    """One row of a KV list: what `KVNamespace.list` reports for a key."""

    key: bytes
    expiration: int | None
    metadata: str | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,      -- UTF-8 bytes: BLOB order is the UTF-8 byte order KV lists in
    value BLOB NOT NULL,
    expiration INTEGER,        -- seconds since the epoch
    metadata TEXT              -- JSON
);
CREATE INDEX IF NOT EXISTS kv_expiration ON kv(expiration) WHERE expiration IS NOT NULL;
"""


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with `prefix` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class _Closed:
    """Stands in for the connection once the store is closed, so a late call says what happened."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def __getattr__(self, name: str):
        raise RuntimeError(f"the KV namespace {'in memory' if self._path is None else f'at {self._path}'} is closed")


class KVStore:
    """Keys, values, expirations and metadata of one namespace; `path=None` keeps them in memory."""

    def __init__(self, path: Path | None, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        # Autocommit: every write statement is its own transaction, committed before it returns.
        self._db = open_sqlite3(path, synchronous=synchronous)
        self._db.executescript(_SCHEMA)

    @property
    def closed(self) -> bool:
        return isinstance(self._db, _Closed)

    def get(self, key: bytes) -> Entry | None:
        """The stored entry, expired or not (callers decide what the clock allows them to see)."""
        row = self._db.execute("SELECT value, expiration, metadata FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else Entry(row[0], row[1], row[2])

    def put(self, key: bytes, entry: Entry) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (key, value, expiration, metadata) VALUES (?, ?, ?, ?)",
                         (key, entry.value, entry.expiration, entry.metadata))

    def delete(self, key: bytes) -> None:
        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))

    def list(self, *, prefix: bytes = b"", after: bytes | None = None, limit: int, now: float) -> list[ListedKey]:
        """Up to `limit` live keys starting with `prefix`, after `after`, in byte order."""
        sql = ["SELECT key, expiration, metadata FROM kv WHERE (expiration IS NULL OR expiration > ?)"]
        args: list = [now]
        if prefix:
            sql.append("AND key >= ?")
            args.append(prefix)
            end = prefix_end(prefix)
            if end is not None:
                sql.append("AND key < ?")
                args.append(end)
        if after is not None:
            sql.append("AND key > ?")
            args.append(after)
        sql.append("ORDER BY key LIMIT ?")
        args.append(limit)
        return [ListedKey(bytes(k), e, m) for k, e, m in self._db.execute(" ".join(sql), args)]

    def purge_expired(self, now: float) -> int:
        """Delete what the clock has expired; returns how many rows went."""
        return self._db.execute("DELETE FROM kv WHERE expiration IS NOT NULL AND expiration <= ?", (now,)).rowcount

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM kv").fetchone()[0]

    def close(self) -> None:
        if not self.closed:
            self._db.close()
            self._db = _Closed(self.path)  # type: ignore[assignment]
