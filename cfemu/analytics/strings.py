"""The string functions of Analytics Engine SQL (Cloudflare's SQL reference, "String functions")."""

from __future__ import annotations

from sqlglot import exp

from .functions import _Call, _fn, to_datetime
from .sql import Typed, fail

__all__: list[str] = []


@_fn("length", "lengthUTF8")
def _length(c: _Call) -> Typed:
    # Cloudflare's length counts characters (ClickHouse's lengthUTF8), not bytes
    c.no_params()
    c.arity(1)
    return Typed(f"CAST(length({c.arg(0).sql}) AS UBIGINT)", "UInt64")


@_fn("empty", "notEmpty")
def _empty(c: _Call) -> Typed:
    c.no_params()
    c.arity(1)
    op = "=" if c.name.lower() == "empty" else "<>"
    return Typed(f"CAST(({c.arg(0).sql} {op} '') AS UTINYINT)", "UInt8")


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@_fn("lower", "lowerUTF8", "toLower", "upper", "upperUTF8", "toUpper")
def _case(c: _Call) -> Typed:
    c.no_params()
    c.arity(1)
    value = c.arg(0).sql
    name = c.name.lower()
    to_lower = "lower" in name
    if name in ("lower", "upper"):
        # Cloudflare's lower/upper change ASCII letters only (the UTF8 forms change every letter)
        a, b = (_UPPER, _UPPER.lower()) if to_lower else (_UPPER.lower(), _UPPER)
        return Typed(f"translate({value}, '{a}', '{b}')", "String")
    return Typed(f"{'lower' if to_lower else 'upper'}({value})", "String")


@_fn("startsWith", "endsWith")
def _starts_ends(c: _Call) -> Typed:
    c.no_params()
    c.arity(2)
    fn = "starts_with" if c.name.lower() == "startswith" else "ends_with"
    return Typed(f"CAST({fn}({c.arg(0).sql}, {c.arg(1).sql}) AS UTINYINT)", "UInt8")


@_fn("position")
def _position(c: _Call) -> Typed:
    # 1-based, 0 when the needle is absent; counted in characters (equal to ClickHouse's bytes for ASCII)
    c.no_params()
    c.arity(2)
    return Typed(f"CAST(strpos({c.arg(0).sql}, {c.arg(1).sql}) AS UBIGINT)", "UInt64")


@_fn("substring", "substr", "substringUTF8", "mid")
def _substring(c: _Call) -> Typed:
    # offsets and lengths count Unicode code points, from 1 (negative offsets count from the end)
    c.no_params()
    c.arity(2, 3)
    parts = [c.arg(0).sql] + [f"CAST({c.arg(i).sql} AS BIGINT)" for i in range(1, len(c.args))]
    return Typed(f"substring({', '.join(parts)})", "String")


@_fn("concat")
def _concat(c: _Call) -> Typed:
    c.no_params()
    if len(c.args) < 2:
        raise fail("concat() takes at least 2 arguments")
    return Typed("concat(" + ", ".join(c.arg(i).sql for i in range(len(c.args))) + ")", "String")


@_fn("format")
def _format(c: _Call) -> Typed:
    # '{}' takes the next argument and '{n}' the n-th (from 0); DuckDB's format() reads the same syntax
    c.no_params()
    if not c.args:
        raise fail("format() takes a pattern and the values to put in it")
    pattern = c.string_constant(0, "the pattern")
    if pattern.replace("{}", "").count("{") != sum(pattern.count("{%d}" % i) for i in range(len(c.args))):
        raise fail("format(): the pattern may only hold {} or {n} placeholders")
    values = []
    for i in range(1, len(c.args)):
        value = c.arg(i)
        if value.sql == "NULL":
            raise fail("format() does not take NULL")
        if value.type == "DateTime":
            value = Typed(f"strftime({value.sql}, '%Y-%m-%d %H:%M:%S')", "String")
        elif value.type in ("Float64", "Float32"):  # ClickHouse writes whole floats without ".0"
            v = value.sql
            value = Typed(f"(CASE WHEN {v} = trunc({v}) AND abs({v}) < 1e15 THEN CAST(CAST({v} AS BIGINT) AS VARCHAR) "
                          f"ELSE CAST({v} AS VARCHAR) END)", "String")
        values.append(value.sql)
    return Typed("format(" + ", ".join([c.arg(0).sql, *values]) + ")", "String")


_EXTRACT = {"YEAR": ("year", "UInt16"), "MONTH": ("month", "UInt8"), "DAY": ("day", "UInt8"),
            "HOUR": ("hour", "UInt8"), "MINUTE": ("minute", "UInt8"), "SECOND": ("second", "UInt8")}


@_fn("extract")
def _extract(c: _Call) -> Typed:
    c.no_params()
    c.arity(2)
    unit = c.args[0]
    name = unit.name.upper() if isinstance(unit, (exp.Var, exp.Column)) else ""
    if name not in _EXTRACT:
        raise fail(f"extract() takes YEAR, MONTH, DAY, HOUR, MINUTE or SECOND, not {name or unit.sql()}")
    fn, kind = _EXTRACT[name]
    return Typed(f"{fn}({to_datetime(c, 1).sql})", kind)
