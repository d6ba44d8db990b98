"""One SQLite file per Durable Object, with workerd's implicit-transaction model.

Every storage call runs synchronously on the event-loop thread and never suspends, so an `await`
on it gives the input gate for free.  The first write of a turn opens a transaction
(`begin_write()`) and tells the instance (`on_dirty()`), which schedules one coalesced `commit()`
with `loop.call_soon`; the output gate opens when that commit returns.

User SQL is policed by SQLite's authorizer callback (as workerd does): transactions, ATTACH, most
PRAGMAs, non-allowlisted functions and any table named `_cf_*` are refused.  Statements cfemu runs
itself are "trusted" and bypass it; their SQL text carries a per-process nonce so a user statement
can never hit one of them in apsw's statement cache (the authorizer only runs when a statement is
prepared, not when a cached one is reused).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw

from ..errors import JsException
from ..sqlite import BUSY_TIMEOUT_MS, check_synchronous
from . import errors as E

__all__ = ["StorageEngine", "sqlite_error"]

_NONCE = f"/*cfemu-{secrets.token_hex(8)}*/ "

_SQL_KV_GET = _NONCE + "SELECT value FROM _cf_KV WHERE key = ?"
_SQL_KV_PUT = _NONCE + "INSERT OR REPLACE INTO _cf_KV (key, value) VALUES (?, ?)"
_SQL_KV_DELETE = _NONCE + "DELETE FROM _cf_KV WHERE key = ?"
_SQL_KV_COUNT = _NONCE + "SELECT count(*) FROM _cf_KV"
_SQL_KV_LIST = {
    # (reverse, has_end) -> statement; limit -1 means "no limit" in SQLite.
    (False, False): _NONCE + "SELECT key, value FROM _cf_KV WHERE key >= ? ORDER BY key LIMIT ?",
    (False, True): _NONCE + "SELECT key, value FROM _cf_KV WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
    (True, False): _NONCE + "SELECT key, value FROM _cf_KV WHERE key >= ? ORDER BY key DESC LIMIT ?",
    (True, True): _NONCE + "SELECT key, value FROM _cf_KV WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT ?",
}
_SQL_ALARM_GET = _NONCE + "SELECT value FROM _cf_METADATA WHERE key = 'alarm'"
_SQL_ALARM_SET = _NONCE + "INSERT OR REPLACE INTO _cf_METADATA (key, value) VALUES ('alarm', ?)"
_SQL_ALARM_DELETE = _NONCE + "DELETE FROM _cf_METADATA WHERE key = 'alarm'"
_SQL_SIZE = _NONCE + (
    "SELECT ((SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM "
    "pragma_freelist_count)) * (SELECT page_size FROM pragma_page_size)"
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _cf_METADATA (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
)

# workerd util/sqlite.c++ setupSecurity(): the limits production applies to every object's DB.
_LIMITS = {
    apsw.SQLITE_LIMIT_LENGTH: E.MAX_SQLITE_ROW_BYTES,
    apsw.SQLITE_LIMIT_SQL_LENGTH: E.MAX_SQL_STATEMENT_BYTES,
    apsw.SQLITE_LIMIT_COLUMN: E.MAX_SQL_COLUMNS,
    apsw.SQLITE_LIMIT_EXPR_DEPTH: 100,
    apsw.SQLITE_LIMIT_COMPOUND_SELECT: 5,
    apsw.SQLITE_LIMIT_VDBE_OP: 25000,
    apsw.SQLITE_LIMIT_FUNCTION_ARG: 127,
    apsw.SQLITE_LIMIT_ATTACHED: 0,
    apsw.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 50,
    apsw.SQLITE_LIMIT_VARIABLE_NUMBER: E.MAX_SQL_BOUND_PARAMETERS,
    apsw.SQLITE_LIMIT_TRIGGER_DEPTH: 10,
    apsw.SQLITE_LIMIT_WORKER_THREADS: 0,
}

# workerd's allowlist of SQL functions (util/sqlite.c++ ALLOWED_SQLITE_FUNCTIONS).
_ALLOWED_FUNCTIONS = frozenset("""
abs changes char coalesce concat concat_ws format glob hex ifnull iif instr last_insert_rowid length
like likelihood likely load_extension lower ltrim max_scalar min_scalar nullif octet_length printf
quote random randomblob replace round rtrim sign soundex substr substring total_changes trim typeof
unhex unicode unlikely upper zeroblob
date time datetime julianday unixepoch strftime timediff current_date current_time current_timestamp
avg count group_concat max min string_agg sum total
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
acos acosh asin asinh atan atan2 atanh ceil cos cosh degrees exp floor ln log log2 mod pi pow
radians sin sinh sqrt tan tanh trunc
json json_array json_array_length json_extract -> ->> json_insert json_object json_patch json_remove
json_replace json_set json_type json_valid json_quote json_group_array json_group_object json_each
json_tree
match highlight bm25 snippet
sqlite_rename_column sqlite_rename_table sqlite_rename_test sqlite_drop_column sqlite_rename_quotefix
""".split())

# workerd's allowlisted PRAGMAs and the argument each takes.
_NO_ARG, _BOOLEAN, _OBJECT, _OPT_OBJECT, _OPT_NUMBER, _OPT_NUMBER_OR_OBJECT = range(6)
_ALLOWED_PRAGMAS = {
    "data_version": _NO_ARG,
    "case_sensitive_like": _BOOLEAN,
    "foreign_keys": _BOOLEAN,
    "defer_foreign_keys": _BOOLEAN,
    "ignore_check_constraints": _BOOLEAN,
    "legacy_alter_table": _BOOLEAN,
    "recursive_triggers": _BOOLEAN,
    "reverse_unordered_selects": _BOOLEAN,
    "foreign_key_check": _OPT_OBJECT,
    "foreign_key_list": _OBJECT,
    "index_info": _OBJECT,
    "index_list": _OBJECT,
    "index_xinfo": _OBJECT,
    "quick_check": _OPT_NUMBER_OR_OBJECT,
    "optimize": _OPT_NUMBER,
}
_BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")

_OK = apsw.SQLITE_OK
_DENY = apsw.SQLITE_DENY


def _allowed_name(name: str | None) -> bool:
    # Reserved names are refused in any case: SQLite resolves `_CF_kv` to the same table.
    return name is None or not name[:4].lower() == "_cf_"


def sqlite_error(exc: apsw.Error) -> JsException:
    """workerd's rendering of a SQLite error: `<errmsg>[ at offset N]: SQLITE_<CODE>`."""
    message = str(exc)
    offset = getattr(exc, "error_offset", -1)
    if offset is not None and offset >= 0:
        message += f" at offset {offset}"
    result = getattr(exc, "result", None)
    if isinstance(result, int):
        code = apsw.mapping_result_codes.get(result & 0xFF, "SQLITE_ERROR")
    else:
        # Raised without a result code: apsw's class names follow SQLite's (TooBigError -> TOOBIG).
        name = type(exc).__name__.removesuffix("Error").upper()
        code = "SQLITE_ERROR" if name in ("SQL", "") else f"SQLITE_{name}"
    return JsException(f"{message}: {code}")


class _Closed:
    """Stands in for the connection after close(): any use raises a clear error."""

    def __getattr__(self, name: str) -> Any:
        raise JsException(E.STORAGE_CLOSED)


class StorageEngine:
    """The SQLite file behind one Durable Object (workerd's ActorSqlite, without the network)."""

    def __init__(self, path: Path, *, on_dirty: Callable[[], None], synchronous: str = "NORMAL") -> None:
        self.running_alarm: int | None = None  # set by the alarm runner while alarm() runs
        level = check_synchronous(synchronous)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._on_dirty = on_dirty
        self._trusted = True
        self._savepoints: list[str] = []
        self._commit_deferred = False
        self._fail_next_commit = False
        db = apsw.Connection(str(self.path))
        try:
            db.set_busy_timeout(BUSY_TIMEOUT_MS)
            # Each PRAGMA returns a row; drain them, or apsw stops before the next statement.
            db.execute(_NONCE + "PRAGMA journal_mode=WAL").fetchall()
            db.execute(_NONCE + f"PRAGMA synchronous={level}").fetchall()
            db.execute(_NONCE + "PRAGMA secure_delete=ON").fetchall()  # deleted data is gone from disk
            db.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
            for which, value in _LIMITS.items():
                db.limit(which, value)
            db.authorizer = self._authorize
            db.execute(_NONCE + _SCHEMA).fetchall()
        except BaseException:
            db.close(True)
            raise
        self._db: Any = db
        self._trusted = False

    # --- transactions --------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """True while an implicit (or explicit) transaction is open and uncommitted."""
        return not self._db.get_autocommit()

    @property
    def savepoint_depth(self) -> int:
        """How many `transaction()` / `transactionSync()` savepoints are open."""
        return len(self._savepoints)

    def begin_write(self) -> None:
        """Open the implicit transaction unless one is open; tell the instance once per transaction."""
        db = self._db
        if db.get_autocommit():
            self._run("BEGIN IMMEDIATE")
            self._on_dirty()

    def commit(self) -> bool:
        """COMMIT the open transaction; on failure roll back and raise (the instance resets).

        Returns False, committing nothing, while a `transaction()` savepoint is open: committing
        then would make half a transaction durable.  When the outermost savepoint closes,
        `on_dirty()` is called again so the instance schedules the commit it still owes.
        """
        db = self._db
        if self._savepoints:
            self._commit_deferred = True
            return False
        if db.get_autocommit():
            return True
        if self._fail_next_commit:
            self._fail_next_commit = False
            self.rollback()
            raise JsException(E.STORAGE_RESET)
        try:
            self._run("COMMIT")
        except apsw.ConstraintError as exc:
            # Deferred foreign keys left violated: workerd resets the object with this text.
            self.rollback()
            raise JsException(
                "Durable Object was reset and rolled back to its last known good state because the "
                "application left the database in a state where constraints were violated: "
                + str(sqlite_error(exc))
            ) from exc
        except apsw.Error as exc:
            self.rollback()
            raise JsException(E.STORAGE_RESET) from exc
        return True

    def rollback(self) -> None:
        """Discard everything not yet committed (the implicit transaction and any savepoints)."""
        if isinstance(self._db, _Closed):
            return
        self._savepoints.clear()
        self._commit_deferred = False
        if not self._db.get_autocommit():
            self._run("ROLLBACK")

    def fail_next_commit(self) -> None:
        """Test hook: the next commit that has something to commit rolls back and raises."""
        self._fail_next_commit = True

    # --- savepoints (storage.transaction / transactionSync) ------------------------------------

    def savepoint(self) -> str:
        """Open a nested savepoint inside the implicit transaction; returns its name."""
        self.begin_write()
        name = f"_cf_savepoint_{len(self._savepoints)}"
        self._run(f"SAVEPOINT {name}")
        self._savepoints.append(name)
        return name

    def release(self, name: str) -> None:
        """Keep the savepoint's writes (they commit with the implicit transaction)."""
        if self._pop_savepoint(name):
            self._run(f"RELEASE {name}")
            self._after_savepoint()

    def rollback_to(self, name: str) -> None:
        """Undo the savepoint's writes and close it."""
        if self._pop_savepoint(name):
            self._run(f"ROLLBACK TO {name}")
            self._run(f"RELEASE {name}")
            self._after_savepoint()

    def _pop_savepoint(self, name: str) -> bool:
        if name not in self._savepoints:
            # A full rollback (the object is being reset) already discarded it.
            return False
        if self._savepoints[-1] != name:
            raise JsException(f"Savepoint {name} is not the innermost open transaction.")
        self._savepoints.pop()
        return True

    def _after_savepoint(self) -> None:
        if not self._savepoints and self._commit_deferred:
            self._commit_deferred = False
            self._on_dirty()

    # --- KV table ------------------------------------------------------------------------------

    def kv_get(self, key: str) -> bytes | None:
        self._trusted = True
        try:
            for (value,) in self._db.execute(_SQL_KV_GET, (key,)):
                return value
            return None
        finally:
            self._trusted = False

    def kv_put(self, key: str, value: bytes) -> None:
        self.begin_write()
        self._trusted = True
        try:
            self._db.execute(_SQL_KV_PUT, (key, value))
        finally:
            self._trusted = False

    def kv_put_many(self, pairs: list[tuple[str, bytes]]) -> None:
        self.begin_write()
        self._trusted = True
        try:
            self._db.executemany(_SQL_KV_PUT, pairs)
        finally:
            self._trusted = False

    def kv_delete(self, key: str) -> bool:
        self.begin_write()
        self._trusted = True
        try:
            db = self._db
            db.execute(_SQL_KV_DELETE, (key,))
            return db.changes() > 0
        finally:
            self._trusted = False

    def kv_list(self, start: str, end: str | None, limit: int | None, reverse: bool) -> list[tuple[str, bytes]]:
        sql = _SQL_KV_LIST[(reverse, end is not None)]
        args = (start, -1 if limit is None else limit) if end is None else (start, end, -1 if limit is None else limit)
        self._trusted = True
        try:
            return self._db.execute(sql, args).fetchall()
        finally:
            self._trusted = False

    def kv_count(self) -> int:
        self._trusted = True
        try:
            return self._db.execute(_SQL_KV_COUNT).fetchall()[0][0]
        finally:
            self._trusted = False

    def delete_all(self, *, drop_sql: bool, delete_alarm: bool) -> int:
        """Delete every KV pair (and, for SQLite-backed classes, every user table); returns the KV count."""
        self.begin_write()
        count = self.kv_count()
        run = self.execute_trusted
        run("DELETE FROM _cf_KV")
        if delete_alarm:
            run("DELETE FROM _cf_METADATA WHERE key = 'alarm'")
        if drop_sql:
            self._drop_user_schema()
        return count

    def _drop_user_schema(self) -> None:
        run = self.execute_trusted
        # Deferring foreign keys lets parents drop before children; nothing is left to violate.
        run("PRAGMA defer_foreign_keys = ON")
        objects = run(
            "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "AND lower(name) NOT LIKE '\\_cf\\_%' ESCAPE '\\'"
        )
        quoted = lambda n: '"' + n.replace('"', '""') + '"'  # noqa: E731
        for kind in ("trigger", "view"):
            for type_, name, _sql in objects:
                if type_ == kind:
                    run(f"DROP {kind.upper()} IF EXISTS {quoted(name)}")
        # Virtual tables first: dropping one removes its shadow tables.
        tables = [(n, s or "") for t, n, s in objects if t == "table"]
        tables.sort(key=lambda ns: not ns[1].upper().startswith("CREATE VIRTUAL"))
        for name, _sql in tables:
            run(f"DROP TABLE IF EXISTS {quoted(name)}")
        for internal in ("sqlite_sequence", "sqlite_stat1", "sqlite_stat4"):
            if self._db.table_exists("main", internal):
                run(f"DELETE FROM {internal}")

    # --- alarm ---------------------------------------------------------------------------------

    def get_alarm(self) -> int | None:
        """The stored alarm time in ms since the epoch, or None."""
        self._trusted = True
        try:
            for (value,) in self._db.execute(_SQL_ALARM_GET):
                return value
            return None
        finally:
            self._trusted = False

    def set_alarm(self, ms: int | None) -> None:
        """Store (or with None, delete) the alarm as part of the implicit transaction."""
        self.begin_write()
        self._trusted = True
        try:
            if ms is None:
                self._db.execute(_SQL_ALARM_DELETE)
            else:
                self._db.execute(_SQL_ALARM_SET, (int(ms),))
        finally:
            self._trusted = False

    # --- misc ----------------------------------------------------------------------------------

    @property
    def database_size(self) -> int:
        """Bytes in use, as workerd's `sql.databaseSize` counts them: (pages - free pages) * page size."""
        self._trusted = True
        try:
            return self._db.execute(_SQL_SIZE).fetchall()[0][0]
        finally:
            self._trusted = False

    @property
    def connection(self) -> apsw.Connection:
        """The apsw connection (for cfemu's SQL layer; user statements must run untrusted)."""
        return self._db

    @property
    def closed(self) -> bool:
        return isinstance(self._db, _Closed)

    def close(self) -> None:
        """Roll back anything uncommitted and close the file; later use raises a clear error."""
        if isinstance(self._db, _Closed):
            return
        try:
            self.rollback()
        finally:
            db, self._db = self._db, _Closed()
            db.close(True)

    def execute_trusted(self, sql: str, bindings: Any = None) -> list[tuple]:
        """Run one of cfemu's own statements past the user-SQL authorizer; returns every row.

        Use this (not the raw connection) for internal SQL: the statement text gets the
        per-process nonce, so a user statement can never reuse its cached, already-authorized
        prepared form.  Does not open the implicit transaction; call `begin_write()` first for
        writes that must commit with the object's turn.
        """
        previous, self._trusted = self._trusted, True
        try:
            return self._db.execute(_NONCE + sql, bindings).fetchall()
        finally:
            self._trusted = previous

    def _run(self, sql: str) -> None:
        previous, self._trusted = self._trusted, True
        try:
            self._db.execute(_NONCE + sql)
        finally:
            self._trusted = previous

    # --- authorizer ----------------------------------------------------------------------------

    def _authorize(self, code: int, p1: str | None, p2: str | None, dbname: str | None, trigger: str | None) -> int:
        if self._trusted:
            return _OK
        if code == apsw.SQLITE_TRANSACTION or code == apsw.SQLITE_SAVEPOINT:
            # Raised from the callback so the user sees workerd's explanation, not "not authorized".
            raise JsException(E.SQL_USE_TRANSACTION_API)
        if code == apsw.SQLITE_ALTER_TABLE or code == apsw.SQLITE_DETACH:
            # SQLite passes the database name in p1 for these two (workerd swaps them too).
            p1, p2, dbname = p2, None, p1
        if dbname == "temp":
            if code in (apsw.SQLITE_READ, apsw.SQLITE_UPDATE) and _allowed_name(p1):
                return _OK
            return _DENY
        if dbname is not None and dbname != "main":
            return _DENY
        allowed = self._allowed(code, p1, p2)
        return _OK if allowed else _DENY

    @staticmethod
    def _allowed(code: int, p1: str | None, p2: str | None) -> bool:
        if code == apsw.SQLITE_SELECT or code == apsw.SQLITE_RECURSIVE or code == apsw.SQLITE_ANALYZE:
            return True
        if code in (apsw.SQLITE_READ, apsw.SQLITE_UPDATE, apsw.SQLITE_INSERT, apsw.SQLITE_DELETE,
                    apsw.SQLITE_CREATE_TABLE, apsw.SQLITE_DROP_TABLE, apsw.SQLITE_CREATE_VIEW,
                    apsw.SQLITE_DROP_VIEW, apsw.SQLITE_REINDEX, apsw.SQLITE_ALTER_TABLE):
            return _allowed_name(p1)
        if code in (apsw.SQLITE_CREATE_INDEX, apsw.SQLITE_DROP_INDEX, apsw.SQLITE_CREATE_TRIGGER,
                    apsw.SQLITE_DROP_TRIGGER):
            return _allowed_name(p1) and _allowed_name(p2)
        if code == apsw.SQLITE_FUNCTION:
            return p2 in _ALLOWED_FUNCTIONS
        if code == apsw.SQLITE_PRAGMA:
            return _pragma_allowed(p1 or "", p2)
        if code in (apsw.SQLITE_CREATE_VTABLE, apsw.SQLITE_DROP_VTABLE):
            return _allowed_name(p1) and (p2 or "").lower() in ("fts5", "fts5vocab")
        # ATTACH, DETACH, temp objects, COPY and anything unknown.
        return False


def _pragma_allowed(name: str, arg: str | None) -> bool:
    name = name.lower()
    if name == "table_list":
        return True
    if name in ("table_info", "table_xinfo"):
        return arg is not None and _allowed_name(arg)
    signature = _ALLOWED_PRAGMAS.get(name)
    if signature is None:
        return False
    if signature == _NO_ARG:
        return arg is None
    if arg is None:
        return signature in (_BOOLEAN, _OPT_OBJECT, _OPT_NUMBER, _OPT_NUMBER_OR_OBJECT)
    if signature == _BOOLEAN:
        value = arg
        if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
            value = value[1:-1]
        return value.lower().startswith(_BOOLEAN_WORDS)
    if signature in (_OBJECT, _OPT_OBJECT):
        return _allowed_name(arg)
    if signature == _OPT_NUMBER:
        return _is_int(arg)
    return _is_int(arg) or _allowed_name(arg)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
