"""One D1 database: a SQLite file run the way D1 runs it.

Each query is atomic and committed before it returns (WAL, synchronous=NORMAL); a batch is one
transaction; SQLite's authorizer refuses what D1 refuses (BEGIN/SAVEPOINT, ATTACH, `_cf_` tables,
PRAGMAs outside D1's list) and SQLite's limits are set to D1's (100 bound parameters, 100 columns,
100 KB statements, 2 MB strings/BLOBs).
"""

from __future__ import annotations

import mmap
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import apsw

from ..objects import JsObject
from ..sqlite import open_apsw
from .counts import FullScanSteps, Plan, plan_of, rows_read, rows_written
from .errors import D1_ERROR, NO_STATEMENTS, PARAMS_ONLY_LAST, d1_error, sqlite_message

__all__ = ["D1Storage", "QueryResult", "D1_LIMITS", "SERVED_BY"]

SERVED_BY = "cfemu.db"
_MAX_SQL_BYTES = 100_000
D1_LIMITS = {
    apsw.SQLITE_LIMIT_VARIABLE_NUMBER: 100,
    apsw.SQLITE_LIMIT_COLUMN: 100,
    apsw.SQLITE_LIMIT_SQL_LENGTH: 100_000,  # also checked in _statement_info, for SQLite's text
    apsw.SQLITE_LIMIT_LENGTH: 2_000_000,
    apsw.SQLITE_LIMIT_ATTACHED: 0,
}
# PRAGMAs D1 documents as supported; the rest are refused like production refuses them.
ALLOWED_PRAGMAS = frozenset({
    "table_list", "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_key_check", "foreign_keys", "defer_foreign_keys", "quick_check",
    "integrity_check", "case_sensitive_like", "ignore_check_constraints", "legacy_alter_table",
    "recursive_triggers", "reverse_unordered_selects", "optimize", "data_version", "user_version",
    "schema_version", "freelist_count", "page_count", "page_size", "collation_list",
    "function_list", "compile_options", "encoding",
})
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)


@dataclass
class QueryResult:
    """What one statement produced: column names, rows (tuples of D1 values) and D1's `meta`."""

    columns: list[str] | None  # None: no rows came back; `column_names()` finds them when asked
    rows: list[tuple[Any, ...]]
    meta: dict[str, Any] = field(default_factory=dict)
    sql: str = ""
    storage: Any = None

    def column_names(self) -> list[str]:
        if self.columns is None:
            self.columns = self.storage._columns_of(self.sql) if self.storage is not None else []
        return self.columns


def has_statements(sql: str) -> bool:
    return bool(_COMMENT_LINE.sub("", sql).strip())


class _CommittedSize:
    """The database's committed size, read from the WAL-index header in the `-shm` file.

    D1 reports `size_after` on every query; `PRAGMA page_count` costs ~5 µs (SQLite re-prepares
    PRAGMAs each run), a third of a committed single-row INSERT.  The WAL-index header (documented
    in SQLite's walformat) holds the page size and the page count of the last commit, written by
    whichever connection committed, so one mmap read (~0.4 µs) gives the exact size outside a
    transaction.  Anything unexpected (header copies differ mid-update, empty WAL, another format)
    returns None and the caller asks SQLite.
    """

    _HEADER = struct.Struct("=IIIBBHII")  # iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame, nPage

    def __init__(self, db_path: Path) -> None:
        self._map: mmap.mmap | None = None
        try:
            with open(f"{db_path}-shm", "rb") as f:
                self._map = mmap.mmap(f.fileno(), 96, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            self._map = None

    def read(self) -> int | None:
        m = self._map
        if m is None or m[0:48] != m[48:96]:
            return None
        version, _, _, init, _, page_size, frames, pages = self._HEADER.unpack_from(m, 0)
        if version != 3007000 or not init or frames == 0:
            return None
        return pages * (65536 if page_size == 1 else page_size)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


_MAX_SAFE_INTEGER = 2**53 - 1


def _d1_value(value: Any) -> Any:
    """A SQLite value as Python code on Cloudflare receives it: D1 sends results as JSON, workerd
    parses them into JS values and Pyodide converts those (BLOB -> list of byte values, every
    number -> a double, whose integer values become Python ints)."""
    kind = type(value)
    if kind is bytes:
        return list(value)
    if kind is int:
        return value if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER else int(float(value))
    if kind is float and value.is_integer():
        return int(value)
    return value


def _js_shaped(row: tuple[Any, ...]) -> bool:
    """True when every value of the row already is what `_d1_value` would make of it."""
    for value in row:
        kind = type(value)
        if kind is bytes or (kind is float and value.is_integer()) or (
                kind is int and not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER):
            return False
    return True


_SCHEMA_CHANGES = frozenset({
    apsw.SQLITE_CREATE_INDEX, apsw.SQLITE_CREATE_TABLE, apsw.SQLITE_CREATE_TRIGGER, apsw.SQLITE_CREATE_VIEW,
    apsw.SQLITE_CREATE_VTABLE, apsw.SQLITE_DROP_INDEX, apsw.SQLITE_DROP_TABLE, apsw.SQLITE_DROP_TRIGGER,
    apsw.SQLITE_DROP_VIEW, apsw.SQLITE_DROP_VTABLE, apsw.SQLITE_ALTER_TABLE,
})


class D1Storage:
    """The SQLite file behind one `[[d1_databases]]` entry."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.conn = open_apsw(self.path, synchronous=synchronous)
        # D1 enforces foreign keys by default.
        self.conn.execute("PRAGMA foreign_keys=ON")
        for limit, value in D1_LIMITS.items():
            self.conn.limit(limit, value)
        self._internal = 0
        self._readonly = True
        self._earlier_params = False
        self._rows: list[Any] | None = None
        self._last_columns: list[str] | None = None
        self._deny_reason: str | None = None
        self.conn.authorizer = self._authorize
        self._sql_info: dict[str, tuple[bool, bool]] = {}
        self._plans: dict[str, Plan] = {}  # for meta.rows_read/rows_written; emptied by DDL
        self._full_scan_steps = FullScanSteps()
        self._page_size = self.conn.execute("PRAGMA page_size").fetchall()[0][0]
        self.conn.execute("SELECT count(*) FROM sqlite_master").get  # a read creates the -shm file
        self._committed = _CommittedSize(self.path)
        self._size = self._pragma_size()

    # -- policy -----------------------------------------------------------------------------------

    def _authorize(self, op: int, p1: str | None, p2: str | None, db: str | None, trigger: str | None) -> int:
        if self._internal:
            return apsw.SQLITE_OK
        if op in _SCHEMA_CHANGES:
            self._plans.clear()  # an index or table may change how cached statements run
        if op in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT):
            self._deny_reason = "transaction"
            return apsw.SQLITE_DENY
        if op in (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
            self._deny_reason = "attach"
            return apsw.SQLITE_DENY
        if op == apsw.SQLITE_PRAGMA:
            if (p1 or "").lower() not in ALLOWED_PRAGMAS:
                self._deny_reason = "pragma"
                return apsw.SQLITE_DENY
            return apsw.SQLITE_OK
        if op in (apsw.SQLITE_CREATE_TABLE, apsw.SQLITE_DROP_TABLE, apsw.SQLITE_READ, apsw.SQLITE_UPDATE,
                  apsw.SQLITE_INSERT, apsw.SQLITE_DELETE, apsw.SQLITE_ALTER_TABLE, apsw.SQLITE_CREATE_INDEX):
            if p1 and p1[:4].lower() == "_cf_":
                self._deny_reason = "reserved"
                return apsw.SQLITE_DENY
        return apsw.SQLITE_OK

    def _fail(self, error: apsw.Error) -> Exception:
        message = sqlite_message(error, self._deny_reason)
        self._deny_reason = None
        return d1_error(D1_ERROR, message)

    # -- running SQL ------------------------------------------------------------------------------

    def _pragma_size(self) -> int:
        self._internal += 1
        try:
            pages = self.conn.execute("PRAGMA page_count").get
        finally:
            self._internal -= 1
        return pages * self._page_size

    def _db_size(self) -> int:
        """The size now: inside a transaction SQLite's own count, else the last commit's."""
        if not self.conn.in_transaction:
            size = self._committed.read()
            if size is not None:
                return size
        return self._pragma_size()

    def _statement_info(self, sql: str) -> tuple[bool, bool]:
        """(has statements, several statements) for a SQL text, cached: prepare() texts repeat."""
        info = self._sql_info.get(sql)
        if info is None:
            if len(sql) > _MAX_SQL_BYTES // 4 and len(sql.encode("utf-8")) > _MAX_SQL_BYTES:
                # apsw reports SQLite's generic "string or blob too big" here; SQLite's own prepare
                # (and so D1) says "statement too long".
                error = apsw.TooBigError("statement too long")
                error.result = apsw.SQLITE_TOOBIG
                raise error
            info = (has_statements(sql), ";" in sql.rstrip().rstrip(";"))
            if len(self._sql_info) > 512:
                self._sql_info.clear()
            self._sql_info[sql] = info
        return info

    def _run(self, sql: str, params: Sequence[Any], multi: bool = False, want_meta: bool = True) -> QueryResult:
        """One prepared statement (possibly several `;`-separated ones: the last one's rows count)."""
        conn = self.conn
        before_total = conn.total_changes()
        before_rowid = conn.last_insert_rowid()
        # Inside a batch the previous statement's size is current; outside, another connection
        # (the CLI) or a rolled-back batch may have changed the file since.  `first()` and `raw()`
        # show no meta, so they skip the size reads.
        if want_meta:
            before_size = self._size if conn.in_transaction else self._db_size()
        started = time.perf_counter()
        rows: list[tuple[Any, ...]] = []
        columns: list[str] | None = None
        cursor = conn.cursor()
        plan = None
        steps = self._full_scan_steps
        steps.steps = 0
        if not multi:
            if want_meta:
                plan = self._plan(sql, params)
            profiled = plan is not None and plan.scans > 0
            if profiled:
                conn.trace_v2(apsw.SQLITE_TRACE_PROFILE, steps, id=FullScanSteps.TRACE_ID)
            try:
                cursor.execute(sql, params)
                try:
                    columns = [d[0] for d in cursor.get_description()]
                    readonly = cursor.is_readonly
                except apsw.ExecutionCompleteError:
                    # No rows came back: treat it as a possible write (only costs a size check).
                    columns, readonly = None, False
                rows.extend(cursor)
            finally:
                if profiled:
                    conn.trace_v2(0, None, id=FullScanSteps.TRACE_ID)
        else:
            self._readonly = True
            self._earlier_params = False
            self._rows = rows
            cursor.exec_trace = self._trace
            cursor.execute(sql, tuple(params))
            for row in cursor:
                rows.append(row)
            # The last statement's columns, noted before it ran (its SQL may not prepare again).
            columns = self._last_columns
            readonly = self._readonly
            self._rows = None
        duration = (time.perf_counter() - started) * 1000
        for row in rows:
            if not _js_shaped(row):
                rows = [tuple(_d1_value(v) for v in row) for row in rows]
                break
        if not want_meta:
            return QueryResult(columns, rows, {}, sql, self)
        changes = conn.total_changes() - before_total
        last_row_id = conn.last_insert_rowid()
        size = before_size if readonly else self._db_size()
        self._size = size
        changed = changes != 0 or last_row_id != before_rowid or size != before_size
        meta = JsObject(
            served_by=SERVED_BY,
            served_by_region="local",
            served_by_primary=True,
            timings=JsObject(sql_duration_ms=duration),
            duration=duration,
            changes=changes,
            last_row_id=_d1_value(last_row_id),
            changed_db=changed,
            size_after=size,
            # Stock SQLite does not count the rows a statement visits: see d1/counts.py.
            rows_read=rows_read(plan, rows, steps.steps, readonly, changes),
            rows_written=0 if readonly else rows_written(plan, changes),
            total_attempts=1,
        )
        return QueryResult(columns, rows, meta, sql, self)

    def _plan(self, sql: str, params: Sequence[Any]) -> Plan | None:
        """The statement's bytecode summary (counts.plan_of), cached per SQL text."""
        plan = self._plans.get(sql)
        if plan is None:
            # Under the same authorizer as the statement: a PRAGMA D1 refuses is not even compiled.
            plan = plan_of(self.conn, sql, params)
            self._deny_reason = None
            if plan is not None:
                if len(self._plans) > 512:
                    self._plans.clear()
                self._plans[sql] = plan
        return plan

    def _trace(self, cursor: apsw.Cursor, statement: str, bindings: Any) -> bool:
        # Runs before each statement: note whether it writes, and (for several statements) keep
        # only the rows of the last one, as workerd returns the last statement's cursor.
        if not cursor.is_readonly:
            self._readonly = False
        if self._earlier_params:
            raise d1_error(D1_ERROR, PARAMS_ONLY_LAST)
        self._earlier_params = cursor.bindings_count > 0
        if self._rows is not None:
            self._rows.clear()
        self._last_columns = [d[0] for d in cursor.get_description()]
        return True

    def _columns_of(self, sql: str) -> list[str]:
        """Column names of a statement that returned no rows (raw(columnNames=True) still shows them)."""
        try:
            self._internal += 1
            import apsw.ext

            info = apsw.ext.query_info(self.conn, sql)
            while info.query_remaining and info.query_remaining.strip():
                info = apsw.ext.query_info(self.conn, info.query_remaining)
            return [d[0] for d in (info.description or ())]
        except apsw.Error:
            return []
        finally:
            self._internal -= 1

    def query(self, sql: str, params: Sequence[Any] = (), *, want_meta: bool = True) -> QueryResult:
        """Run one prepared statement atomically and commit it."""
        try:
            has, multi = self._statement_info(sql)
        except apsw.Error as e:
            raise self._fail(e) from None
        if not has:
            raise d1_error(D1_ERROR, NO_STATEMENTS)
        if not multi:
            try:
                return self._run(sql, params, False, want_meta)
            except apsw.Error as e:
                raise self._fail(e) from None
        return self.batch([(sql, params)])[0]

    def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        """Run statements in one transaction: all commit, or none do."""
        statements = [s for s in statements if has_statements(s[0])]
        if not statements:
            raise d1_error(D1_ERROR, NO_STATEMENTS)
        self._size = self._db_size()  # the first statement's "before"
        self._begin()
        try:
            results = [self._run(sql, params, self._statement_info(sql)[1]) for sql, params in statements]
        except apsw.Error as e:
            self._rollback()
            raise self._fail(e) from None
        except BaseException:
            self._rollback()
            raise
        self._commit()
        return results

    def exec(self, sql: str) -> tuple[int, float]:
        """`exec()`: one statement (or several) per line, no bindings; returns (count, duration_ms)."""
        from .errors import D1_EXEC_ERROR, EXEC_LINE

        lines = sql.strip().split("\n")
        work = [(i, line) for i, line in enumerate(lines) if has_statements(line)]
        if not work:
            raise _exec_error(D1_EXEC_ERROR, EXEC_LINE.format(line=1, text=lines[0], error=NO_STATEMENTS))
        self._begin()
        duration = 0.0
        try:
            for index, line in work:
                try:
                    duration += self._run(line, (), self._statement_info(line)[1]).meta["duration"]
                except apsw.Error as e:
                    message = sqlite_message(e, self._deny_reason)
                    self._deny_reason = None
                    raise _exec_error(D1_EXEC_ERROR, EXEC_LINE.format(line=index + 1, text=line, error=message)) from None
        except BaseException:
            self._rollback()
            raise
        self._commit()
        return len(work), duration

    # -- transactions (our own BEGIN/COMMIT pass the authorizer) ------------------------------------

    def _internal_sql(self, sql: str) -> None:
        self._internal += 1
        try:
            self.conn.execute(sql)
        finally:
            self._internal -= 1

    def _begin(self) -> None:
        self._internal_sql("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._internal_sql("COMMIT")

    def _rollback(self) -> None:
        if not self.conn.in_transaction:
            return
        self._internal_sql("ROLLBACK")

    def run_internal(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """SQL cfemu itself runs (migrations bookkeeping, dump), bypassing D1's authorizer."""
        self._internal += 1
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        finally:
            self._internal -= 1

    def dump(self) -> bytes:
        """The database file's bytes (D1's deprecated `dump()`)."""
        self.run_internal("PRAGMA wal_checkpoint(FULL)")
        return self.path.read_bytes()

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self._committed.close()
        self.conn.close()


def _exec_error(code: str, message: str) -> Exception:
    return d1_error(code, message)
