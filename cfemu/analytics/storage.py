"""Where data points live: one DuckDB file, one table per dataset, rows inserted in batches."""

from __future__ import annotations

import datetime as _dt
import threading
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["AnalyticsStore", "execute_detached", "COLUMNS", "COLUMN_TYPES", "StoreBusyError", "retention_cutoff"]

N = 20
BLOBS = [f"blob{i}" for i in range(1, N + 1)]
DOUBLES = [f"double{i}" for i in range(1, N + 1)]
# The order Cloudflare documents (and `SELECT *` returns).
COLUMNS = ["dataset", "timestamp", "_sample_interval", "index1", *BLOBS, *DOUBLES]
# ClickHouse type of each column, as the SQL API reports it in `meta`.
COLUMN_TYPES = {"dataset": "String", "timestamp": "DateTime", "_sample_interval": "UInt32", "index1": "String",
                **{b: "String" for b in BLOBS}, **{d: "Float64" for d in DOUBLES}}
RETENTION_MONTHS = 3
FILE_NAME = "analytics.duckdb"


class StoreBusyError(Exception):
    """Another process holds the DuckDB file (DuckDB allows one writer process and no readers beside it)."""


def _run(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None) -> tuple[list[str], list[tuple]]:
    try:
        cursor.execute(sql, params or [])
        return [str(d[1]) for d in cursor.description], cursor.fetchall()
    finally:
        cursor.close()


def execute_detached(sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run SQL that reads no table (e.g. `SELECT 'hello' AS message`) on a throwaway in-memory database."""
    return _run(duckdb.connect(), sql, params)


def retention_cutoff(now: float) -> _dt.datetime:
    """The oldest timestamp kept: three calendar months before `now` (UTC, naive like the stored values)."""
    t = _dt.datetime.fromtimestamp(int(now), _dt.timezone.utc).replace(tzinfo=None)
    month = t.month - RETENTION_MONTHS
    year = t.year
    while month < 1:
        month += 12
        year -= 1
    day = t.day
    while True:
        try:
            return t.replace(year=year, month=month, day=day)
        except ValueError:  # 31 May - 3 months -> 28/29 February
            day -= 1


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class AnalyticsStore:
    """A DuckDB database under `<state>/analytics/`; the model, not the transport."""

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        self.path = Path(directory) / FILE_NAME
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = None
        self._oldest: dict[str, _dt.datetime | None] = {}
        # The connection object itself is used by the writer thread and by queries' retention runs;
        # reads go through cursors (separate connections), which DuckDB lets run concurrently.
        self._lock = threading.RLock()
        if read_only and not self.path.exists():
            return  # nothing was ever written: every table is unknown
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            raise StoreBusyError(f"{self.path} is in use by another process ({e})") from None

    # -- schema ---------------------------------------------------------------------------------

    def tables(self) -> list[str]:
        if self._con is None:
            return []
        with self._lock:
            rows = self._con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
            ).fetchall()
        return [r[0] for r in rows]

    def ensure_table(self, dataset: str) -> None:
        if self._con is None or self.read_only:
            return
        with self._lock:
            self._create(dataset)

    def _create(self, dataset: str) -> None:
        blob_cols = ", ".join(f"{b} VARCHAR NOT NULL DEFAULT ''" for b in BLOBS)
        double_cols = ", ".join(f"{d} DOUBLE NOT NULL DEFAULT 0" for d in DOUBLES)
        literal = "'" + dataset.replace("'", "''") + "'"
        self._con.execute(
            f"CREATE TABLE IF NOT EXISTS {_quote(dataset)} ("
            f"dataset VARCHAR NOT NULL DEFAULT {literal}, timestamp TIMESTAMP NOT NULL, "
            f"_sample_interval UINTEGER NOT NULL DEFAULT 1, index1 VARCHAR NOT NULL DEFAULT '', "
            f"{blob_cols}, {double_cols})"
        )

    # -- writes ---------------------------------------------------------------------------------

    def insert(self, dataset: str, rows: list[tuple], *, blobs: int = N, doubles: int = N) -> None:
        """Insert rows `(epoch_seconds, index1, blob1..blob20, double1..double20)` in one statement.

        Only the first `blobs` blob and `doubles` double columns are sent (the caller knows how many
        its points used); the others take their defaults ('' and 0).  Each column goes over as one
        list parameter and is unnested by DuckDB, so the batch costs one statement.
        """
        with self._lock:
            self._insert(dataset, rows, blobs, doubles)

    def _insert(self, dataset: str, rows: list[tuple], blobs: int, doubles: int) -> None:
        if not rows or self._con is None:
            return
        used = [0, 1, *range(2, 2 + blobs), *range(2 + N, 2 + N + doubles)]
        names = ["timestamp", "index1", *BLOBS, *DOUBLES]
        targets, selects, params = [], [], []
        for i in used:
            params.append(list(map(itemgetter(i), rows)))
            p = f"${len(params)}"
            targets.append(names[i])
            if i == 0:
                selects.append(f"make_timestamp(CAST(unnest({p}) AS BIGINT) * 1000000)")
            elif i >= 2 + N:
                selects.append(f"CAST(unnest({p}) AS DOUBLE)")
            else:
                selects.append(f"CAST(unnest({p}) AS VARCHAR)")
        self._con.execute(
            f"INSERT INTO {_quote(dataset)} ({', '.join(targets)}) SELECT {', '.join(selects)}", params
        )
        timestamps = params[0]
        if dataset in self._oldest:  # otherwise it is read from the table when retention next runs
            oldest = _dt.datetime.fromtimestamp(int(min(timestamps)), _dt.timezone.utc).replace(tzinfo=None)
            known = self._oldest[dataset]
            if known is None or oldest < known:
                self._oldest[dataset] = oldest

    def drop_expired(self, now: float) -> int:
        """Delete rows older than the retention period; cheap when nothing is that old."""
        if self._con is None or self.read_only:
            return 0
        with self._lock:
            return self._drop_expired(now)

    def _drop_expired(self, now: float) -> int:
        cutoff = retention_cutoff(now)
        dropped = 0
        for table in self.tables():
            if table not in self._oldest:
                self._oldest[table] = self._con.execute(f"SELECT min(timestamp) FROM {_quote(table)}").fetchone()[0]
            oldest = self._oldest[table]
            if oldest is None or oldest >= cutoff:
                continue
            dropped += self._con.execute(
                f"DELETE FROM {_quote(table)} WHERE timestamp < $1", [cutoff]
            ).fetchone()[0]
            self._oldest[table] = self._con.execute(f"SELECT min(timestamp) FROM {_quote(table)}").fetchone()[0]
        return dropped

    # -- reads ----------------------------------------------------------------------------------

    def execute(self, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run DuckDB SQL; returns (DuckDB type names, rows)."""
        with self._lock:
            if self._con is None:
                cursor = None
            else:
                cursor = self._con.cursor()
        if cursor is None:
            return execute_detached(sql, params)
        return _run(cursor, sql, params)

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                try:
                    self._con.close()
                finally:
                    self._con = None

    @property
    def closed(self) -> bool:
        return self._con is None
