"""Query results written the way ClickHouse (and so the Analytics Engine SQL API) writes them."""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import math
from typing import Any

__all__ = ["clickhouse_type", "render", "to_json_value"]

_DUCK_TO_CLICKHOUSE = {
    "VARCHAR": "String", "DOUBLE": "Float64", "FLOAT": "Float32", "BIGINT": "Int64", "UBIGINT": "UInt64",
    "INTEGER": "Int32", "UINTEGER": "UInt32", "SMALLINT": "Int16", "USMALLINT": "UInt16", "TINYINT": "Int8",
    "UTINYINT": "UInt8", "BOOLEAN": "Bool", "TIMESTAMP": "DateTime", "DATE": "Date", "HUGEINT": "Int128",
    "UHUGEINT": "UInt128", '"NULL"': "Nullable(Nothing)", "NULL": "Nullable(Nothing)",
    "TIMESTAMP WITH TIME ZONE": "DateTime",
}


def clickhouse_type(duck: str) -> str:
    """ClickHouse's name for a DuckDB result type (DECIMAL literals are Float64 in ClickHouse)."""
    duck = duck.upper()
    if duck.endswith("[]"):
        return f"Array({clickhouse_type(duck[:-2])})"
    if duck.startswith("DECIMAL"):
        return "Float64"
    return _DUCK_TO_CLICKHOUSE.get(duck, "String")


_QUOTED_INTS = ("Int64", "UInt64", "Int128", "UInt128")


def _float(value: float) -> Any:
    if math.isnan(value) or math.isinf(value):
        return None  # JSON has no NaN/Infinity; ClickHouse writes null for them by default
    if value.is_integer() and abs(value) < 1e15:
        return int(value)  # ClickHouse prints 1.0 as 1
    return value


def to_json_value(value: Any, kind: str) -> Any:
    """One value as ClickHouse's JSON formats write it (64-bit integers quoted, dates as text)."""
    if value is None:
        return None
    if kind.startswith("Nullable("):
        kind = kind[9:-1]
    if kind.startswith("Array(") and isinstance(value, (list, tuple)):
        inner = kind[6:-1]
        return [to_json_value(v, inner) for v in value]
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, _dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, decimal.Decimal):
        return _float(float(value))
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int):
        return str(value) if kind in _QUOTED_INTS else value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


_TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\0": "\\0",
                "'": "\\'"}


def _tsv_string(text: str) -> str:
    return "".join(_TSV_ESCAPES.get(ch, ch) for ch in text)


def _tsv_scalar(value: Any, quote_strings: bool) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, _dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        return f"'{text}'" if quote_strings else text
    if isinstance(value, _dt.date):
        text = value.strftime("%Y-%m-%d")
        return f"'{text}'" if quote_strings else text
    if isinstance(value, (float, decimal.Decimal)):
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return str(_float(number))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_tsv_scalar(v, True) for v in value) + "]"
    if isinstance(value, str):
        return f"'{_tsv_string(value)}'" if quote_strings else _tsv_string(value)
    return str(value)


def render(names: list[str], kinds: list[str], rows: list[tuple], fmt: str) -> dict | str:
    """The response body: a dict for JSON, text for JSONEachRow and TabSeparated."""
    if fmt == "TabSeparated":
        return "".join("\t".join(_tsv_scalar(v, False) for v in row) + "\n" for row in rows)
    objects = [{name: to_json_value(v, kind) for name, kind, v in zip(names, kinds, row)} for row in rows]
    if fmt == "JSONEachRow":
        return "".join(json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n" for o in objects)
    return {"meta": [{"name": n, "type": k} for n, k in zip(names, kinds)], "data": objects, "rows": len(objects)}
