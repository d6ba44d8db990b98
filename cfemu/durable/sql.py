"""`ctx.storage.sql`: Cloudflare's SqlStorage over the object's SQLite file.

`exec()` runs every `;`-separated statement in order (bindings belong to the last one) and
returns a cursor over the last.  Statements are checked by the engine's SQLite authorizer, not by
regexes.  A statement that may write opens the implicit transaction first (`begin_write()`);
reads do not.  Results are read eagerly when `exec()` runs, so a cursor never holds a statement
open across an `await` (workerd streams rows; the values seen are the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apsw

from ..errors import JsException, JsTypeError
from ..objects import JsObject
from . import errors as E
from .engine import StorageEngine, sqlite_error

__all__ = ["SqlStorage", "SqlStorageCursor"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _binding(index: int, value: Any) -> Any:
    kind = type(value)
    if value is None or kind is str or kind is float or kind is bytes:
        return value
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise JsTypeError(f"SQL binding {index} is an integer outside SQLite's 64-bit range.")
        return value
    if kind is bool:
        # workerd binds a JS boolean through its string conversion (workers-sdk issue #9964).
        return "true" if value else "false"
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    for base in (str, int, float, bytes):
        if isinstance(value, base) and not isinstance(value, bool):
            return _binding(index, base(value))
    raise JsTypeError(E.SQL_BAD_BINDING.format(index=index, type=kind.__name__))


def _is_blank(chunk: str) -> bool:
    """True if `chunk` holds only whitespace, comments and `;` (no statement to run)."""
    i, n = 0, len(chunk)
    while i < n:
        c = chunk[i]
        if c.isspace() or c == ";":
            i += 1
        elif chunk.startswith("--", i):
            j = chunk.find("\n", i)
            i = n if j < 0 else j + 1
        elif chunk.startswith("/*", i):
            j = chunk.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            return False
    return True


def _split(query: str) -> list[str]:
    """Split into statements the way SQLite's parser sees them (trigger bodies keep their `;`)."""
    if ";" not in query:
        return [] if _is_blank(query) else [query]
    statements = []
    start = 0
    at = query.find(";")
    while at >= 0:
        chunk = query[start:at + 1]
        if apsw.complete(chunk):
            if not _is_blank(chunk):
                statements.append(chunk)
            start = at + 1
        at = query.find(";", at + 1)
    rest = query[start:]
    if not _is_blank(rest):
        statements.append(rest)
    return statements


class SqlStorageCursor:
    """The cursor `sql.exec()` returns: `toArray()`, `one()`, `raw()`, `next()`, iteration.

    Rows are `JsObject`s keyed by column name (a later duplicate name wins, as in JS).
    """

    def __init__(self, columns: list[str], rows: list[tuple], rows_read: int, rows_written: int) -> None:
        self._columns = columns
        self._rows = rows
        self._pos = 0
        self._rows_read = rows_read
        self._rows_written = rows_written

    @property
    def columnNames(self) -> list[str]:
        return list(self._columns)

    @property
    def rowsRead(self) -> int:
        return self._rows_read

    @property
    def rowsWritten(self) -> int:
        return self._rows_written

    def _take(self) -> tuple | None:
        pos = self._pos
        if pos >= len(self._rows):
            return None
        self._pos = pos + 1
        return self._rows[pos]

    def _object(self, values: tuple) -> JsObject:
        return JsObject(zip(self._columns, values))

    def next(self) -> JsObject:
        """JS iterator protocol: `{"done": False, "value": row}`, then `{"done": True, "value": None}`."""
        values = self._take()
        if values is None:
            return JsObject(done=True, value=None)
        return JsObject(done=False, value=self._object(values))

    def __iter__(self) -> SqlStorageCursor:
        return self

    def __next__(self) -> JsObject:
        values = self._take()
        if values is None:
            raise StopIteration
        return self._object(values)

    def toArray(self) -> list[JsObject]:
        """Every remaining row."""
        rest = self._rows[self._pos:]
        self._pos = len(self._rows)
        columns = self._columns
        return [JsObject(zip(columns, values)) for values in rest]

    def one(self) -> JsObject:
        """The only row; an error unless exactly one row remains."""
        values = self._take()
        if values is None:
            raise JsException(E.SQL_ONE_NO_RESULTS)
        if self._pos < len(self._rows):
            self._pos = len(self._rows)
            raise JsException(E.SQL_ONE_MULTIPLE_RESULTS)
        return self._object(values)

    def raw(self) -> _RawIterator:
        """The remaining rows as lists of values (shares this cursor's position)."""
        return _RawIterator(self)


class _RawIterator:
    """`cursor.raw()`: rows as lists."""

    def __init__(self, cursor: SqlStorageCursor) -> None:
        self._cursor = cursor

    def __iter__(self) -> Iterator[list]:
        return self

    def __next__(self) -> list:
        values = self._cursor._take()
        if values is None:
            raise StopIteration
        return list(values)

    def next(self) -> JsObject:
        values = self._cursor._take()
        if values is None:
            return JsObject(done=True, value=None)
        return JsObject(done=False, value=list(values))

    def toArray(self) -> list[list]:
        return list(self)


class SqlStorage:
    """`ctx.storage.sql`: mirrors Cloudflare's SqlStorage (`exec`, `databaseSize`).

    Differences: `rowsRead` counts rows returned plus rows changed (production counts rows
    scanned, which stock SQLite does not report); integers keep full 64-bit precision.
    """

    Cursor = SqlStorageCursor

    def __init__(self, engine: StorageEngine, *, enabled: bool = True) -> None:
        self._engine = engine
        self._enabled = enabled
        self._cursor: apsw.Cursor | None = None
        self._final = False
        self._columns: list[str] = []
        self._readonly = True

    def _require(self) -> StorageEngine:
        if not self._enabled:
            raise JsException(E.SQL_NOT_ENABLED)
        return self._engine

    @property
    def databaseSize(self) -> int:
        """Bytes the database uses."""
        return self._require().database_size

    def exec(self, query: str, *bindings: Any) -> SqlStorageCursor:
        """Run `query` (one or more statements); returns a cursor over the last statement's rows."""
        engine = self._require()
        if not isinstance(query, str):
            raise JsTypeError(f"sql.exec() expects the query as a string, got {type(query).__name__}.")
        size = len(query) if query.isascii() else len(query.encode("utf-8", "surrogatepass"))
        if size > E.MAX_SQL_STATEMENT_BYTES:
            raise JsException("statement too long: SQLITE_TOOBIG")
        params = [_binding(i, b) for i, b in enumerate(bindings, 1)]
        statements = _split(query)
        if not statements:
            raise JsException(E.SQL_NO_STATEMENT)
        db = engine.connection
        cursor = self._cursor
        if cursor is None or cursor.connection is not db:
            cursor = self._cursor = db.cursor()
            cursor.exec_trace = self._trace
        try:
            self._final = False
            for statement in statements[:-1]:
                try:
                    cursor.execute(statement)
                except apsw.BindingsError:
                    raise JsException(E.SQL_MULTI_STATEMENT_PARAMS) from None
                for _ in cursor:
                    pass
            self._final = True
            self._columns = []
            before = db.total_changes()
            try:
                cursor.execute(statements[-1], params)
            except apsw.BindingsError:
                raise JsException(E.SQL_WRONG_BINDING_COUNT) from None
            rows = cursor.fetchall()
            written = db.total_changes() - before
        except apsw.Error as exc:
            raise sqlite_error(exc) from None
        read = len(rows) + (0 if self._readonly else written)
        return SqlStorageCursor(self._columns, rows, read, written)

    def _trace(self, cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        # Runs after the statement is prepared (and authorized), before its first step.
        if not self._final and cursor.bindings_count:
            raise JsException(E.SQL_MULTI_STATEMENT_PARAMS)
        readonly = cursor.is_readonly
        if self._final:
            self._columns = [d[0] for d in cursor.description]
            self._readonly = readonly
        if not readonly:
            self._engine.begin_write()
        return True
