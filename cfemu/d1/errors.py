"""D1's error texts (workerd's d1-api and the SQLite layer under it), kept in one place.

Production prefixes every failure with a code (`D1_ERROR`, `D1_TYPE_ERROR`, `D1_EXEC_ERROR`,
`D1_COLUMN_NOTFOUND`) and ends SQLite's own message with the SQLite result code name, adding
"at offset N" when SQLite knows where in the statement the problem is.
"""

from __future__ import annotations

from typing import Any

import apsw

from ..durable.errors import SQL_MULTI_STATEMENT_PARAMS, SQL_USE_TRANSACTION_API, SQL_WRONG_BINDING_COUNT
from ..errors import JsException

__all__ = [
    "D1_ERROR",
    "D1_TYPE_ERROR",
    "D1_EXEC_ERROR",
    "D1_COLUMN_NOTFOUND",
    "NO_STATEMENTS",
    "WRONG_BINDINGS",
    "TRANSACTION_NOT_ALLOWED",
    "NOT_AUTHORIZED",
    "PARAMS_ONLY_LAST",
    "SESSION_ERROR",
    "d1_error",
    "type_error",
    "sqlite_message",
]

D1_ERROR = "D1_ERROR"
D1_TYPE_ERROR = "D1_TYPE_ERROR"
D1_EXEC_ERROR = "D1_EXEC_ERROR"
D1_COLUMN_NOTFOUND = "D1_COLUMN_NOTFOUND"

NO_STATEMENTS = "No SQL statements detected."
# D1 runs on a SQLite-backed Durable Object in production, so these texts are workerd's SQL API's.
WRONG_BINDINGS = SQL_WRONG_BINDING_COUNT
TRANSACTION_NOT_ALLOWED = SQL_USE_TRANSACTION_API
NOT_AUTHORIZED = "not authorized: SQLITE_AUTH"
PARAMS_ONLY_LAST = SQL_MULTI_STATEMENT_PARAMS
COLUMN_NOT_FOUND = "Column not found ({column})"
COLUMN_NOT_FOUND_CAUSE = "Column not found"
TYPE_NOT_SUPPORTED = "Type '{type}' not supported for value '{value}'"
EXEC_LINE = "Error in line {line}: {text}: {error}"
SESSION_ERROR = "D1_SESSION_ERROR: invalid bookmark or constraint"


def d1_error(code: str, message: str) -> JsException:
    """`Error("<CODE>: <message>")` with `.cause` carrying the bare message, as workerd builds it."""
    error = JsException(f"{code}: {message}")
    error.cause = JsException(message)  # type: ignore[attr-defined]
    return error


def _js_type_and_text(value: Any) -> tuple[str, str]:
    """What `typeof value` and `${value}` give for the JS value Pyodide would make of `value`."""
    if callable(value):
        return "function", f"{getattr(value, '__name__', 'function')}"
    if isinstance(value, int):  # only big ints reach here: Pyodide turns them into BigInt
        return "bigint", str(value)
    if isinstance(value, dict):
        return "object", "[object Object]"
    if isinstance(value, (list, tuple)):
        return "object", ",".join("" if v is None else str(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return "object", "[object Set]"
    return "object", f"[object {type(value).__name__}]"


def type_error(value: Any) -> JsException:
    """D1's `D1_TYPE_ERROR` for a bound value D1 cannot store ("Type '...' not supported for value '...'")."""
    js_type, text = _js_type_and_text(value)
    return d1_error(D1_TYPE_ERROR, TYPE_NOT_SUPPORTED.format(type=js_type, value=text))


def sqlite_message(error: apsw.Error, deny_reason: str | None = None) -> str:
    """SQLite's message the way D1 reports it: "<message>[ at offset N]: SQLITE_<CODE>"."""
    if isinstance(error, apsw.BindingsError):
        return WRONG_BINDINGS
    if isinstance(error, apsw.AuthError):
        return TRANSACTION_NOT_ALLOWED if deny_reason == "transaction" else NOT_AUTHORIZED
    message = str(error)
    # apsw prefixes some messages with the exception class name; D1 shows SQLite's text only.
    prefix = f"{type(error).__name__}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
    code = apsw.mapping_result_codes.get(getattr(error, "result", 1) & 0xFF, "SQLITE_ERROR")
    offset = getattr(error, "error_offset", -1)
    if isinstance(offset, int) and offset >= 0:
        message = f"{message} at offset {offset}"
    return f"{message}: {code}"
