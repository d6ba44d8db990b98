"""The `env.DB` object worker code sees: `D1Database`, `D1PreparedStatement`, `D1DatabaseSession`."""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import JsTypeError
from ..objects import JsObject, usv
from .errors import (
    COLUMN_NOT_FOUND,
    COLUMN_NOT_FOUND_CAUSE,
    D1_COLUMN_NOTFOUND,
    SESSION_ERROR,
    JsException,
    d1_error,
    type_error,
)
from .storage import D1Storage, QueryResult

__all__ = ["D1Database", "D1PreparedStatement", "D1DatabaseSession"]

_MAX_SAFE_INTEGER = 2**53 - 1
FIRST_PRIMARY = "first-primary"
FIRST_UNCONSTRAINED = "first-unconstrained"


def _bind_value(value: Any) -> Any:
    """A Python value as D1 stores it; anything D1 has no type for is its D1_TYPE_ERROR."""
    if value is None:
        return value
    if isinstance(value, str):
        return usv(value)
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int):
        if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return value
        raise type_error(value)  # Pyodide hands such ints over as BigInt, which D1 rejects
    if isinstance(value, float):
        # JS numbers that happen to be whole are integers once they reach SQLite.
        if math.isfinite(value) and value.is_integer() and abs(value) <= _MAX_SAFE_INTEGER:
            return int(value)
        # D1 sends parameters as JSON, where NaN and Infinity become null.
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in value):
        return bytes(value)
    raise type_error(value)


def _rows_as_objects(result: QueryResult) -> list[JsObject]:
    if not result.rows:
        return []
    columns = result.columns
    return [JsObject(zip(columns, row)) for row in result.rows]


def _envelope(result: QueryResult) -> JsObject:
    return JsObject(success=True, meta=result.meta, results=_rows_as_objects(result))


class D1PreparedStatement:
    """`D1PreparedStatement`: immutable; `bind()` returns a new statement."""

    __slots__ = ("_session", "statement", "params")

    def __init__(self, session: D1DatabaseSession, statement: str, params: Sequence[Any] = ()) -> None:
        self._session = session
        self.statement = statement
        self.params = list(params)

    def bind(self, *values: Any) -> D1PreparedStatement:
        """Mirrors `stmt.bind(...values)`; validates types now, as workerd does."""
        return D1PreparedStatement(self._session, self.statement, [_bind_value(v) for v in values])

    async def first(self, colName: str | None = None, **options: Any) -> Any:
        """Mirrors `stmt.first(colName?)`: the first row, one of its columns, or None."""
        if colName is None:
            colName = options.get("colName")
        result = self._session._query(self.statement, self.params, False)
        if not result.rows:
            return None
        row = JsObject(zip(result.columns, result.rows[0]))
        if colName is None:
            return row
        if colName not in row:
            error = d1_error(D1_COLUMN_NOTFOUND, COLUMN_NOT_FOUND.format(column=colName))
            error.cause = JsException(COLUMN_NOT_FOUND_CAUSE)  # workerd's cause omits the name
            raise error
        return row[colName]

    async def all(self) -> JsObject:
        """Mirrors `stmt.all()` -> `{success, results, meta}`."""
        return _envelope(self._session._query(self.statement, self.params))

    async def run(self) -> JsObject:
        """Mirrors `stmt.run()`: the same envelope as `all()` (rows of RETURNING included)."""
        return _envelope(self._session._query(self.statement, self.params))

    async def raw(self, options: Any = None, *, columnNames: bool = False) -> list[list[Any]]:
        """Mirrors `stmt.raw({columnNames})`: rows as lists, column names first when asked."""
        if isinstance(options, dict):
            columnNames = bool(options.get("columnNames", columnNames))
        elif isinstance(options, bool):
            columnNames = options
        result = self._session._query(self.statement, self.params, False)
        rows = [list(row) for row in result.rows]
        if columnNames:
            return [list(result.column_names()), *rows]
        return rows

    def __repr__(self) -> str:
        return f"D1PreparedStatement({self.statement!r}, params={self.params!r})"


class D1DatabaseSession:
    """`D1DatabaseSession` (from `withSession()`): one primary locally, so bookmarks only count up."""

    def __init__(self, storage: D1Storage, constraint_or_bookmark: str = FIRST_UNCONSTRAINED) -> None:
        if not constraint_or_bookmark:
            raise JsException(SESSION_ERROR)
        self._storage = storage
        self._bookmark_or_constraint = constraint_or_bookmark

    def prepare(self, query: str) -> D1PreparedStatement:
        if not isinstance(query, str):
            raise JsTypeError("Failed to execute 'prepare' on 'D1Database': parameter 1 is not of type 'string'.")
        return D1PreparedStatement(self, usv(query))

    async def batch(self, statements: Sequence[D1PreparedStatement]) -> list[JsObject]:
        """Mirrors `batch([...])`: one transaction, all or nothing; one result per statement."""
        if not isinstance(statements, (list, tuple)):
            raise JsTypeError("Failed to execute 'batch' on 'D1Database': parameter 1 is not iterable.")
        for s in statements:
            if not isinstance(s, D1PreparedStatement):
                raise JsTypeError("Failed to execute 'batch' on 'D1Database': every element must be a D1PreparedStatement.")
        results = self._storage.batch([(s.statement, s.params) for s in statements])
        self._note_commit()
        return [_envelope(r) for r in results]

    def _query(self, sql: str, params: Sequence[Any], want_meta: bool = True) -> QueryResult:
        result = self._storage.query(sql, params, want_meta=want_meta)
        self._note_commit()
        return result

    def _note_commit(self) -> None:
        # The session now holds the newest bookmark it has seen (its own writes included).
        bookmark = _bookmark(self._storage)
        current = self.getBookmark()
        if current is None or current < bookmark:
            self._bookmark_or_constraint = bookmark

    def getBookmark(self) -> str | None:
        if self._bookmark_or_constraint in (FIRST_PRIMARY, FIRST_UNCONSTRAINED):
            return None
        return self._bookmark_or_constraint


def _bookmark(storage: D1Storage) -> str:
    # Bookmarks compare as strings in production; a zero-padded change count keeps that order.
    return f"{storage.conn.total_changes():016x}-0000000000000000-cfemu"


class _PrimarySession(D1DatabaseSession):
    def __init__(self, storage: D1Storage) -> None:
        super().__init__(storage, FIRST_PRIMARY)

    def _query(self, sql: str, params: Sequence[Any], want_meta: bool = True) -> QueryResult:
        return self._storage.query(sql, params, want_meta=want_meta)

    def _note_commit(self) -> None:
        pass

    def getBookmark(self) -> None:
        return None


class D1Database:
    """`env.DB`: `prepare`, `batch`, `exec`, `dump`, `withSession`."""

    def __init__(self, storage: D1Storage, *, name: str = "") -> None:
        self._storage = storage
        self._primary = _PrimarySession(storage)
        self.name = name

    def prepare(self, query: str) -> D1PreparedStatement:
        """Mirrors `db.prepare(sql)`."""
        return self._primary.prepare(query)

    async def batch(self, statements: Sequence[D1PreparedStatement]) -> list[JsObject]:
        """Mirrors `db.batch([...])`."""
        return await self._primary.batch(statements)

    async def exec(self, query: str) -> JsObject:
        """Mirrors `db.exec(sql)`: statements one per line, no bindings -> `{count, duration}`."""
        if not isinstance(query, str):
            raise JsTypeError("Failed to execute 'exec' on 'D1Database': parameter 1 is not of type 'string'.")
        count, duration = self._storage.exec(usv(query))
        return JsObject(count=count, duration=duration)

    async def dump(self) -> bytes:
        """Mirrors the deprecated `db.dump()`: the SQLite file as bytes."""
        return self._storage.dump()

    def withSession(self, constraintOrBookmark: str | None = None) -> D1DatabaseSession:
        """Mirrors `db.withSession(...)`; there are no replicas locally, so every read is current."""
        if constraintOrBookmark is not None and not isinstance(constraintOrBookmark, str):
            raise JsTypeError("Failed to execute 'withSession' on 'D1Database': parameter 1 is not of type 'string'.")
        value = (constraintOrBookmark or "").strip() or FIRST_UNCONSTRAINED
        return D1DatabaseSession(self._storage, value)

    def __repr__(self) -> str:
        return f"D1Database({self.name!r})"
