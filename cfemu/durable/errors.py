"""Durable Object storage error texts, word for word as workerd / Cloudflare production give them.

Each constant names its source.  Texts with `{}` fields are formatted by the caller; tests assert
the formatted result exactly.
"""

from __future__ import annotations

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "ENFORCED_MAX_VALUE_BYTES",
    "MAX_KEYS_PER_CALL",
    "MAX_SQLITE_ROW_BYTES",
    "MAX_SQL_STATEMENT_BYTES",
    "MAX_SQL_BOUND_PARAMETERS",
    "MAX_SQL_COLUMNS",
    "KEY_TOO_LARGE",
    "VALUE_TOO_LARGE",
    "TOO_MANY_PAIRS",
    "LIST_START_AND_START_AFTER",
    "LIST_LIMIT_NOT_POSITIVE",
    "PUT_UNDEFINED_VALUE",
    "PUT_OVERLOAD",
    "SET_ALARM_NOT_POSITIVE",
    "DELETE_ALL_IN_TRANSACTION",
    "TXN_ROLLED_BACK",
    "TXN_COMMITTED",
    "NOT_BACKED_BY_SQL",
    "SQL_NOT_ENABLED",
    "SQL_USE_TRANSACTION_API",
    "SQL_MULTI_STATEMENT_PARAMS",
    "SQL_WRONG_BINDING_COUNT",
    "SQL_NO_STATEMENT",
    "SQL_ONE_NO_RESULTS",
    "SQL_ONE_MULTIPLE_RESULTS",
    "SQL_NOT_AUTHORIZED",
    "SQL_TOO_BIG",
    "SQL_BAD_BINDING",
    "STORAGE_RESET",
    "STORAGE_CLOSED",
]

# --- limits ------------------------------------------------------------------------------------
# workerd io/actor-storage.h (KV-backed classes): advertised 128 KiB, enforced with a 34-byte
# cushion for serialization headers; keys 2048 bytes; rpc ActorStorage.MAX_KEYS = 128.
MAX_KEY_BYTES = 2048
MAX_VALUE_BYTES = 131072
ENFORCED_MAX_VALUE_BYTES = MAX_VALUE_BYTES + 34
MAX_KEYS_PER_CALL = 128
# workerd util/sqlite.c++ setupSecurity(): SQLITE_LIMIT_LENGTH is 2,200,000 ("2 MB" in the docs,
# padded so a 2 MB value plus its key and record header still fits).
MAX_SQLITE_ROW_BYTES = 2_200_000
MAX_SQL_STATEMENT_BYTES = 100_000
MAX_SQL_BOUND_PARAMETERS = 100
MAX_SQL_COLUMNS = 100

# --- KV API (workerd io/actor-storage.c++, api/actor-state.c++) --------------------------------
KEY_TOO_LARGE = "Keys cannot be larger than 2048 bytes. A key of size {size} was provided."
VALUE_TOO_LARGE = "Values cannot be larger than 131072 bytes. A value of size {size} was provided."
TOO_MANY_PAIRS = "Maximum number of key value pairs is 128. {count} pairs were provided."
LIST_START_AND_START_AFTER = "list() cannot be called with both start and startAfter values."
LIST_LIMIT_NOT_POSITIVE = "List limit must be positive."
PUT_UNDEFINED_VALUE = "put() called with undefined value."
PUT_OVERLOAD = (
    "put() may only be called with a single key-value pair and optional options as "
    "put(key, value, options) or with multiple key-value pairs and optional options as "
    "put(entries, options)"
)
SET_ALARM_NOT_POSITIVE = "setAlarm() cannot be called with an alarm time <= 0"
DELETE_ALL_IN_TRANSACTION = "Cannot call deleteAll() within a transaction"
# `{op}` is workerd's OpName: "get()", "list()", "put()", "delete()", "getAlarm()", "setAlarm()",
# "deleteAlarm()", "rollback()".
TXN_ROLLED_BACK = "Cannot {op} on rolled back transaction"
TXN_COMMITTED = (
    "Cannot call {op} on transaction that has already committed: did you move `txn` outside of "
    "the closure?"
)
NOT_BACKED_BY_SQL = "Durable Object is not backed by SQL."

# --- SQL API (workerd api/actor-state.c++, api/sql.c++, util/sqlite.c++) ------------------------
# Verbatim, including workerd's missing space after "directly,".
SQL_NOT_ENABLED = (
    "SQL is not enabled for this Durable Object class. To enable it, change `new_classes` to "
    "`new_sqlite_classes` within the 'migrations' field in your wrangler.jsonc or wrangler.toml "
    "file. If using workerd directly,set `enableSql = true` in your workerd config for the class. "
    "Note that this change cannot be made after the class is already deployed to production."
)
SQL_USE_TRANSACTION_API = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing."
)
SQL_MULTI_STATEMENT_PARAMS = (
    "When executing multiple SQL statements in a single call, only the last statement can have "
    "parameters."
)
SQL_WRONG_BINDING_COUNT = "Wrong number of parameter bindings for SQL query."
SQL_NO_STATEMENT = "SQL code did not contain a statement."
SQL_ONE_NO_RESULTS = "Expected exactly one result from SQL query, but got no results."
SQL_ONE_MULTIPLE_RESULTS = "Expected exactly one result from SQL query, but got multiple results."
# SQLite's sqlite3_errmsg() for SQLITE_AUTH plus workerd's ": <code name>" suffix.
SQL_NOT_AUTHORIZED = "not authorized: SQLITE_AUTH"
SQL_TOO_BIG = "string or blob too big: SQLITE_TOOBIG"
# cfemu's own text: in JS the binding would be coerced by jsg; Python values that have no JS
# counterpart SQLite can store get a clear TypeError instead.
SQL_BAD_BINDING = (
    "Failed to execute 'exec' on 'SqlStorage': binding {index} has type {type}; SQL bindings must "
    "be None, bool, int, float, str or bytes."
)

# --- engine ------------------------------------------------------------------------------------
# Production's text when a storage write fails and the object is reset (production appends
# "; reference = <id>").
STORAGE_RESET = "Internal error in Durable Object storage caused object to be reset."
# cfemu's own text: the object's storage was closed (evicted, reset, shut down) but code kept a
# reference to it.
STORAGE_CLOSED = (
    "Durable Object storage is closed: the object was evicted, reset or shut down, so this "
    "storage handle can no longer be used."
)
