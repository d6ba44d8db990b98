"""The functions of Analytics Engine SQL, each translated to DuckDB with ClickHouse's semantics."""

from __future__ import annotations

import datetime as _dt
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlglot import exp

from .sql import Typed, fail, is_int, is_number, nullable, string_literal

if TYPE_CHECKING:
    from .sql import Scope, Translator

__all__ = ["call", "SUPPORTED", "DIVISION_BY_ZERO"]

DIVISION_BY_ZERO = "Division by zero"  # ClickHouse's text for intDiv(x, 0) and integer x % 0

Handler = Callable[["_Call"], Typed]
_TABLE: dict[str, Handler] = {}


def _fn(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            _TABLE[name.lower()] = handler
        return handler

    return register


class _Call:
    """One call site: its name as written, its (q)-style parameters and its arguments."""

    def __init__(self, tr: Translator, node: exp.Expression, scope: Scope) -> None:
        self.tr, self.scope = tr, scope
        self.params: list[exp.Expression] | None = None
        if isinstance(node, exp.If):
            self.name = "if"
            self.args = [node.this, node.args.get("true"), node.args.get("false")]
            self.args = [a if a is not None else exp.Null() for a in self.args]
        elif isinstance(node, exp.StrPosition):  # position(needle IN haystack) / position(haystack, needle)
            self.name = "position"
            self.args = [node.this, node.args["substr"]]
        elif isinstance(node, exp.Extract):  # extract(UNIT FROM t)
            self.name = "extract"
            self.args = [node.this, node.expression]
        elif isinstance(node, exp.ParameterizedAgg):
            self.name = node.name
            self.params = list(node.expressions)
            self.args = list(node.args.get("params") or [])
        else:
            self.name = node.name
            self.args = list(node.expressions)

    def arity(self, *allowed: int) -> None:
        if len(self.args) not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise fail(f"Function {self.name} takes {want} argument{'s' if allowed != (1,) else ''}, "
                       f"not {len(self.args)}")

    def no_params(self) -> None:
        if self.params is not None:
            raise fail(f"Function {self.name} takes no (parameters)")

    def arg(self, i: int) -> Typed:
        node = self.args[i]
        if isinstance(node, exp.Distinct):
            raise fail(f"DISTINCT is not supported in {self.name}()")
        return self.tr.expr(node, self.scope)

    def literal_number(self, node: exp.Expression, what: str) -> float:
        sign = 1
        if isinstance(node, exp.Neg):
            sign, node = -1, node.this
        if isinstance(node, exp.Literal) and not node.is_string:
            return sign * float(node.this)
        raise fail(f"{self.name}: {what} must be a number written in the query")

    def string_constant(self, i: int, what: str) -> str:
        node = self.args[i]
        if isinstance(node, exp.Literal) and node.is_string:
            return node.this
        raise fail(f"{self.name}: {what} must be a string literal")

    def timezone(self, i: int) -> None:
        if len(self.args) > i:
            tz = self.string_constant(i, "the timezone")
            if tz not in ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z"):
                raise fail(f"{self.name}: only the UTC timezone is supported locally, not {tz!r}")


def call(tr: Translator, node: exp.Expression, scope: Scope) -> Typed:
    """Translate one Analytics Engine SQL function call to DuckDB SQL, typed as ClickHouse types it."""
    c = _Call(tr, node, scope)
    handler = _TABLE.get(c.name.lower())
    if handler is None:
        raise fail(f"Unknown function {c.name}: it is not among the functions Analytics Engine SQL supports")
    return handler(c)


# -- aggregates -------------------------------------------------------------------------------------

_EMPTY_DEFAULTS = {"String": "''", "DateTime": "TIMESTAMP '1970-01-01 00:00:00'", "Date": "DATE '1970-01-01'"}


def _or_default(sql: str, kind: str | None) -> str:
    """ClickHouse's aggregates over no rows give the type's default (0, '', 1970-01-01), not NULL,
    because Analytics Engine columns are not Nullable; DuckDB gives NULL."""
    default = "0" if is_number(kind) else _EMPTY_DEFAULTS.get(kind or "")
    return sql if default is None else f"coalesce({sql}, {default})"



def _distinct_arg(c: _Call) -> tuple[str, Typed]:
    c.no_params()
    c.arity(1)
    node = c.args[0]
    if isinstance(node, exp.Distinct):
        if len(node.expressions) != 1:
            raise fail(f"{c.name}(DISTINCT ...) takes one expression")
        return "DISTINCT ", c.tr.expr(node.expressions[0], c.scope)
    return "", c.tr.expr(node, c.scope)


@_fn("count")
def _count(c: _Call) -> Typed:
    c.no_params()
    if not c.args or (len(c.args) == 1 and isinstance(c.args[0], exp.Star)):
        return Typed("CAST(count(*) AS UBIGINT)", "UInt64")
    distinct, value = _distinct_arg(c)
    return Typed(f"CAST(count({distinct}{value.sql}) AS UBIGINT)", "UInt64")


@_fn("sum")
def _sum(c: _Call) -> Typed:
    distinct, value = _distinct_arg(c)
    if is_int(value.type):
        kind, duck = ("UInt64", "UBIGINT") if value.type.startswith("U") else ("Int64", "BIGINT")
        return Typed(_or_default(f"CAST(sum({distinct}{value.sql}) AS {duck})", kind), kind)
    if not is_number(value.type) and value.type is not None:
        raise fail(f"sum() needs numbers, not {value.type}")
    kind = "Float64" if value.type else None
    return Typed(_or_default(f"sum({distinct}{value.sql})", kind), kind)


@_fn("avg")
def _avg(c: _Call) -> Typed:
    distinct, value = _distinct_arg(c)
    if not is_number(value.type) and value.type is not None:
        raise fail(f"avg() needs numbers, not {value.type}")
    return Typed(f"avg({distinct}{value.sql})", "Float64")


# One-argument aggregates that keep their argument's type: ClickHouse name -> DuckDB function.
_SAME_TYPE_AGGREGATES = {"min": "min", "max": "max", "first_value": "first", "any": "first",
                         "last_value": "last", "anylast": "last"}


@_fn("min", "max", "first_value", "any", "last_value", "anyLast")
def _same_type_aggregate(c: _Call) -> Typed:
    c.no_params()
    c.arity(1)
    value = c.arg(0)
    fn = _SAME_TYPE_AGGREGATES[c.name.lower()]
    return Typed(_or_default(f"{fn}({value.sql})", value.type), value.type)


@_fn("argMax", "argMin")
def _arg_extreme(c: _Call) -> Typed:
    c.no_params()
    c.arity(2)
    value, by = c.arg(0), c.arg(1)
    fn = "arg_max" if c.name.lower() == "argmax" else "arg_min"
    return Typed(_or_default(f"{fn}({value.sql}, {by.sql})", value.type), value.type)


def _weight_is_sample_interval(c: _Call, node: exp.Expression) -> bool:
    # Every stored point has _sample_interval = 1 (cfemu never samples), so weighting by it is
    # weighting by one: the plain exact quantile, which DuckDB computes natively and fast.
    return c.scope.base and isinstance(node, exp.Column) and node.name == "_sample_interval" and not (
        node.name in c.scope.aliases)


def _quantile(c: _Call, q_node: exp.Expression | None, value_node: exp.Expression,
              weight_node: exp.Expression) -> Typed:
    q = 0.5 if q_node is None else c.literal_number(q_node, "the level")
    if not 0 <= q <= 1:
        raise fail(f"{c.name}: the level must be between 0 and 1, not {q:g}")
    value = c.tr.expr(value_node, c.scope)
    # the exact quantiles pick one of the values, so they keep the values' type
    kind = value.type if is_number(value.type) or value.type in ("DateTime", "Date") else "Float64"
    if _weight_is_sample_interval(c, weight_node):
        return Typed(f"quantile_disc({value.sql}, {q!r})", kind)
    # ClickHouse: sort by value, take the first whose cumulative weight reaches ceil(total * q).
    # Expanding each value `weight` times and indexing the sorted list gives exactly that.
    # A zero threshold (q = 0, or every weight 0) picks the smallest value, zero-weighted ones included.
    weight = c.tr.expr(weight_node, c.scope)
    w = f"CAST({weight.sql} AS UBIGINT)"
    if q == 0:
        return Typed(f"min({value.sql})", kind)
    expanded = f"list_sort(flatten(list(list_resize([{value.sql}], {w}, {value.sql}))))"
    index = f"greatest(CAST(ceil(CAST(sum({w}) AS DOUBLE) * {q!r}) AS BIGINT), 1)"
    return Typed(f"(CASE WHEN sum({w}) = 0 THEN min({value.sql}) ELSE {expanded}[{index}] END)", kind)


@_fn("quantileExactWeighted", "quantileWeighted", "medianExactWeighted")
def _quantile_weighted(c: _Call) -> Typed:
    if c.params is not None:
        if len(c.params) > 1:
            raise fail(f"{c.name} takes one level, e.g. {c.name}(0.95)(value, weight)")
        c.arity(2)
        return _quantile(c, c.params[0] if c.params else None, c.args[0], c.args[1])
    if len(c.args) == 3:  # quantileWeighted(q, value, weight), kept by Cloudflare for compatibility
        return _quantile(c, c.args[0], c.args[1], c.args[2])
    c.arity(2, 3)
    return _quantile(c, None, c.args[0], c.args[1])


def _top_n(c: _Call) -> int:
    if not c.params:
        return 10
    if len(c.params) != 1:
        raise fail(f"{c.name} takes one parameter, the number of values")
    n = c.literal_number(c.params[0], "N")
    if n != int(n) or n < 1:
        raise fail(f"{c.name}: N must be a whole number of at least 1")
    return int(n)


def _top_k_sql(value: Typed, n: int, weight: Typed | None = None) -> Typed:
    # Most frequent first; ties by value so that the answer is deterministic.  A weight counts a value
    # that many times (each value repeated `weight` times, then counted, as for the exact quantile).
    if weight is None:
        counts = f"histogram({value.sql})"
    else:
        w = f"CAST(greatest({weight.sql}, 0) AS UBIGINT)"
        counts = f"list_aggregate(flatten(list(list_resize([{value.sql}], {w}, {value.sql}))), 'histogram')"
    entries = f"list_transform(map_entries({counts}), lambda e: struct_pack(c := -CAST(e.value AS BIGINT), k := e.key))"
    return Typed(f"list_transform(list_slice(list_sort({entries}), 1, {n}), lambda e: e.k)",
                 f"Array({value.type})" if value.type else None)


@_fn("topK")
def _top_k(c: _Call) -> Typed:
    n = _top_n(c)
    c.arity(1)
    return _top_k_sql(c.arg(0), n)


@_fn("topKWeighted")
def _top_k_weighted(c: _Call) -> Typed:
    n = _top_n(c)
    c.arity(2)
    if _weight_is_sample_interval(c, c.args[1]):
        return _top_k_sql(c.arg(0), n)  # every stored weight is 1: a plain count, computed natively
    return _top_k_sql(c.arg(0), n, c.arg(1))


# -- conditionals and numbers -----------------------------------------------------------------------


@_fn("if")
def _if(c: _Call) -> Typed:
    c.no_params()
    c.arity(3)
    cond, yes, no = c.arg(0), c.arg(1), c.arg(2)
    kind = yes.type if yes.type == no.type else (
        "Float64" if is_number(yes.type) and is_number(no.type) else yes.type or no.type)
    if kind and (yes.sql == "NULL" or no.sql == "NULL"):
        kind = nullable(kind)  # if(c, x, NULL) is Nullable in ClickHouse
    return Typed(f"(CASE WHEN {cond.sql} THEN {yes.sql} ELSE {no.sql} END)", kind)


@_fn("intDiv")
def _int_div(c: _Call) -> Typed:
    c.no_params()
    c.arity(2)
    a, b = c.arg(0), c.arg(1)
    if not (is_number(a.type) or a.type is None) or not (is_number(b.type) or b.type is None):
        raise fail("intDiv() needs numbers")
    if is_int(a.type) and is_int(b.type):
        kind = a.type if a.type.startswith("U") and b.type.startswith("U") else (
            a.type if not a.type.startswith("U") else "Int" + a.type[4:])
    else:
        kind = "Int64"
    # ClickHouse rounds the quotient toward zero and refuses to divide by zero (an error, not NULL).
    divisor = f"(CASE WHEN {b.sql} = 0 THEN error('{DIVISION_BY_ZERO}') ELSE {b.sql} END)"
    return Typed(f"CAST(trunc({a.sql} / {divisor}) AS BIGINT)", kind)


@_fn("abs")
def _abs(c: _Call) -> Typed:
    c.no_params()
    c.arity(1)
    value = c.arg(0)
    return Typed(f"abs({value.sql})", value.type)


@_fn("round", "floor", "ceil")
def _round(c: _Call) -> Typed:
    c.no_params()
    c.arity(1, 2)
    value = c.arg(0)
    digits = f", {int(c.literal_number(c.args[1], 'the precision'))}" if len(c.args) == 2 else ""
    fn = c.name.lower()
    if digits and fn != "round":
        scale = 10 ** int(c.literal_number(c.args[1], "the precision"))
        return Typed(f"({fn}({value.sql} * {scale}) / {scale})", value.type)
    if fn == "round" and not is_int(value.type):
        # ClickHouse rounds a float halfway case to the even neighbour (round(2.5) = 2, round(5.5) = 6)
        return Typed(f"round_even({value.sql}, {digits[2:] or 0})", value.type)
    return Typed(f"{fn}({value.sql}{digits})", value.type)


@_fn("log", "ln")
def _log(c: _Call) -> Typed:
    c.no_params()
    c.arity(1)
    return Typed(f"ln(CAST({c.arg(0).sql} AS DOUBLE))", "Float64")


@_fn("pow", "power")
def _pow(c: _Call) -> Typed:
    c.no_params()
    c.arity(2)
    return Typed(f"pow(CAST({c.arg(0).sql} AS DOUBLE), CAST({c.arg(1).sql} AS DOUBLE))", "Float64")


# -- type conversion --------------------------------------------------------------------------------


def _parse_datetime_literal(c: _Call, text: str) -> _dt.datetime:
    text = text.strip()
    if text.isdigit():
        return _dt.datetime.fromtimestamp(int(text), _dt.timezone.utc).replace(tzinfo=None)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise fail(f"{c.name}: cannot parse {text!r} as a DateTime ('YYYY-MM-DD hh:mm:ss' or a unix timestamp)")


def to_datetime(c: _Call, i: int) -> Typed:
    """The i-th argument as a DateTime, converting numbers (unix seconds) and strings as ClickHouse does."""
    node = c.args[i]
    if isinstance(node, exp.Literal) and node.is_string:
        return Typed(f"TIMESTAMP '{_parse_datetime_literal(c, node.this):%Y-%m-%d %H:%M:%S}'", "DateTime")
    value = c.arg(i)
    if value.type == "DateTime":
        return value
    if value.type == "Date":
        return Typed(f"CAST({value.sql} AS TIMESTAMP)", "DateTime")
    if is_number(value.type):
        return Typed(f"make_timestamp(CAST(trunc({value.sql}) AS BIGINT) * 1000000)", "DateTime")
    text = f"CAST({value.sql} AS VARCHAR)"
    return Typed(f"date_trunc('second', coalesce(TRY_CAST({text} AS TIMESTAMP), "
                 f"make_timestamp(TRY_CAST({text} AS BIGINT) * 1000000)))", "DateTime")


@_fn("toDateTime")
def _to_datetime(c: _Call) -> Typed:
    c.no_params()
    c.arity(1, 2)
    c.timezone(1)
    value = to_datetime(c, 0)
    if value.sql.startswith("TIMESTAMP '") or value.sql.startswith("make_timestamp("):
        return value
    return Typed(f"date_trunc('second', {value.sql})", "DateTime")


@_fn("toDate")
def _to_date(c: _Call) -> Typed:
    c.no_params()
    c.arity(1, 2)
    c.timezone(1)
    return Typed(f"CAST({to_datetime(c, 0).sql} AS DATE)", "Date")


def _epoch(c: _Call, value: Typed) -> str:
    return f"CAST(floor(epoch({value.sql})) AS BIGINT)"


@_fn("toUnixTimestamp")
def _to_unix(c: _Call) -> Typed:
    c.no_params()
    c.arity(1, 2)
    c.timezone(1)
    return Typed(_epoch(c, to_datetime(c, 0)), "UInt32")


def _to_int(kind: str) -> Handler:
    def handler(c: _Call) -> Typed:
        c.no_params()
        c.arity(1)
        node = c.args[0]
        if isinstance(node, exp.Literal) and node.is_string:
            try:
                return Typed(str(int(float(node.this))), kind)
            except ValueError:
                raise fail(f"{c.name}: cannot parse {node.this!r} as a number") from None
        value = c.arg(0)
        if value.type in ("DateTime", "Date"):
            return Typed(_epoch(c, to_datetime(c, 0)), kind)
        if value.type == "String":
            return Typed(f"CAST(trunc(CAST({value.sql} AS DOUBLE)) AS BIGINT)", kind)
        return Typed(f"CAST(trunc({value.sql}) AS BIGINT)", kind)

    return handler


for _name, _kind in (("toUInt8", "UInt8"), ("toUInt16", "UInt16"), ("toUInt32", "UInt32"), ("toUInt64", "UInt64"),
                     ("toInt8", "Int8"), ("toInt16", "Int16"), ("toInt32", "Int32"), ("toInt64", "Int64")):
    _TABLE[_name.lower()] = _to_int(_kind)


@_fn("toFloat64", "toFloat32")
def _to_float(c: _Call) -> Typed:
    c.no_params()
    c.arity(1)
    value = c.arg(0)
    if value.type in ("DateTime", "Date"):
        return Typed(f"CAST({_epoch(c, value)} AS DOUBLE)", "Float64")
    return Typed(f"CAST({value.sql} AS DOUBLE)", "Float64")


@_fn("toString")
def _to_string(c: _Call) -> Typed:
    c.no_params()
    c.arity(1, 2)
    value = c.arg(0)
    if value.type == "DateTime":
        return Typed(f"strftime({value.sql}, '%Y-%m-%d %H:%M:%S')", "String")
    if value.type in ("Float64", "Float32"):
        # ClickHouse prints whole floats without ".0"
        return Typed(f"(CASE WHEN {value.sql} = trunc({value.sql}) AND abs({value.sql}) < 1e15 "
                     f"THEN CAST(CAST({value.sql} AS BIGINT) AS VARCHAR) ELSE CAST({value.sql} AS VARCHAR) END)",
                     "String")
    return Typed(f"CAST({value.sql} AS VARCHAR)", "String")


# -- strings ----------------------------------------------------------------------------------------


# in strings.py (registered at the bottom of this module)


# -- date and time ----------------------------------------------------------------------------------


@_fn("now")
def _now(c: _Call) -> Typed:
    c.no_params()
    c.arity(0, 1)
    c.timezone(0)
    return Typed(c.tr.now_sql(), "DateTime")


@_fn("today")
def _today(c: _Call) -> Typed:
    c.no_params()
    c.arity(0)
    return Typed(c.tr.today_sql(), "Date")


_UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60}


def start_of_interval(c: _Call, t: Typed, amount: int, unit: str) -> Typed:
    """ClickHouse's toStartOfInterval: epoch-aligned below a day, day-aligned for hours, calendar above."""
    if amount < 1:
        raise fail(f"{c.name}: the interval must be at least 1")
    if unit in _UNIT_SECONDS or unit == "DAY":
        size = amount * (_UNIT_SECONDS.get(unit) or 86400)
        return Typed(f"make_timestamp(CAST(floor(epoch({t.sql}) / {size}) AS BIGINT) * {size * 1_000_000})", "DateTime")
    if unit == "HOUR":
        return Typed(f"(date_trunc('day', {t.sql}) + to_hours(CAST(floor(hour({t.sql}) / {amount}) AS BIGINT) * {amount}))",
                     "DateTime")
    # ClickHouse answers a Date (not a DateTime) for week, month, quarter and year intervals
    if unit == "WEEK":
        # weeks start on Monday; 1970-01-05 was the first Monday after the epoch
        size = amount * 7 * 86400
        origin = 4 * 86400
        return Typed(f"CAST(make_timestamp((CAST(floor((epoch({t.sql}) - {origin}) / {size}) AS BIGINT) * {size} + {origin})"
                     f" * 1000000) AS DATE)", "Date")
    months = amount * (3 if unit == "QUARTER" else 12 if unit == "YEAR" else 1)
    index = f"((year({t.sql}) - 1970) * 12 + month({t.sql}) - 1)"
    start = f"(CAST(floor({index} / {months}) AS BIGINT) * {months})"
    return Typed(f"make_date(CAST(1970 + floor({start} / 12) AS INTEGER), CAST({start} % 12 + 1 AS INTEGER), 1)",
                 "Date")


@_fn("toStartOfInterval")
def _to_start_of_interval(c: _Call) -> Typed:
    c.no_params()
    c.arity(2, 3)
    c.timezone(2)
    amount, unit = c.tr.interval_parts(c.args[1])
    return start_of_interval(c, to_datetime(c, 0), amount, unit)


def _fixed(amount: int, unit: str) -> Handler:
    def handler(c: _Call) -> Typed:
        c.no_params()
        c.arity(1, 2)
        c.timezone(1)
        return start_of_interval(c, to_datetime(c, 0), amount, unit)

    return handler


for _name, _amount, _unit in (("toStartOfMinute", 1, "MINUTE"), ("toStartOfFiveMinutes", 5, "MINUTE"),
                              ("toStartOfFiveMinute", 5, "MINUTE"), ("toStartOfTenMinutes", 10, "MINUTE"),
                              ("toStartOfFifteenMinutes", 15, "MINUTE"), ("toStartOfHour", 1, "HOUR"),
                              ("toStartOfDay", 1, "DAY")):
    _TABLE[_name.lower()] = _fixed(_amount, _unit)


def _calendar(part: str) -> Handler:
    def handler(c: _Call) -> Typed:
        c.no_params()
        c.arity(1, 2)
        c.timezone(1)
        # Cloudflare documents toStartOfWeek as Monday-based; these return Date, as in ClickHouse.
        return Typed(f"CAST(date_trunc('{part}', {to_datetime(c, 0).sql}) AS DATE)", "Date")

    return handler


for _name, _part in (("toStartOfWeek", "week"), ("toMonday", "week"), ("toStartOfMonth", "month"),
                     ("toStartOfQuarter", "quarter"), ("toStartOfYear", "year")):
    _TABLE[_name.lower()] = _calendar(_part)


def _part(sql_fn: str, kind: str) -> Handler:
    def handler(c: _Call) -> Typed:
        c.no_params()
        c.arity(1, 2)
        c.timezone(1)
        return Typed(f"{sql_fn}({to_datetime(c, 0).sql})", kind)

    return handler


for _name, _sql_fn, _kind in (("toYear", "year", "UInt16"), ("toMonth", "month", "UInt8"),
                              ("toDayOfMonth", "day", "UInt8"), ("toDayOfWeek", "isodow", "UInt8"),
                              ("toHour", "hour", "UInt8"), ("toMinute", "minute", "UInt8"),
                              ("toSecond", "second", "UInt8")):
    _TABLE[_name.lower()] = _part(_sql_fn, _kind)


@_fn("toYYYYMM")
def _yyyymm(c: _Call) -> Typed:
    c.no_params()
    c.arity(1, 2)
    c.timezone(1)
    t = to_datetime(c, 0).sql
    return Typed(f"(year({t}) * 100 + month({t}))", "UInt32")


# ClickHouse formatDateTime specifiers -> a DuckDB strftime piece, or an expression template over {t}.
_STRFTIME = {
    "a": "%a", "b": "%b", "c": "%m", "d": "%d", "D": "%m/%d/%y", "F": "%Y-%m-%d", "G": "%G", "H": "%H",
    "h": "%I", "I": "%I", "i": "%M", "j": "%j", "m": "%m", "M": "%B", "p": "%p", "r": "%I:%M %p", "R": "%H:%M",
    "s": "%S", "S": "%S", "T": "%H:%M:%S", "u": "%u", "V": "%V", "w": "%w", "W": "%A", "y": "%y", "Y": "%Y",
    "z": "+0000", "n": "\n", "t": "\t", "%": "%%", "f": "000000",
}
_EXPRESSIONS = {
    "e": "lpad(CAST(day({t}) AS VARCHAR), 2, ' ')",
    "k": "lpad(CAST(hour({t}) AS VARCHAR), 2, ' ')",
    "l": "lpad(CAST(((hour({t}) + 11) % 12) + 1 AS VARCHAR), 2, ' ')",
    "Q": "CAST(quarter({t}) AS VARCHAR)",
    "C": "lpad(CAST(year({t}) // 100 AS VARCHAR), 2, '0')",
    "g": "lpad(CAST(isoyear({t}) % 100 AS VARCHAR), 2, '0')",
}


@_fn("formatDateTime")
def _format_datetime(c: _Call) -> Typed:
    c.no_params()
    c.arity(2, 3)
    c.timezone(2)
    t = to_datetime(c, 0).sql
    fmt = c.string_constant(1, "the format")
    pieces: list[str] = []
    pending = ""

    def flush() -> None:
        nonlocal pending
        if pending:
            pieces.append(f"strftime({t}, {string_literal(pending)})")
            pending = ""

    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            pending += "%%" if ch == "%" else ch
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise fail("formatDateTime: the format ends with a lone '%'")
        spec = fmt[i + 1]
        if spec in _STRFTIME:
            pending += _STRFTIME[spec]
        elif spec in _EXPRESSIONS:
            flush()
            pieces.append(_EXPRESSIONS[spec].format(t=t))
        else:
            raise fail(f"formatDateTime: the format specifier %{spec} is not supported")
        i += 2
    flush()
    if not pieces:
        return Typed("''", "String")
    return Typed(pieces[0] if len(pieces) == 1 else "concat(" + ", ".join(pieces) + ")", "String")


# The string functions live in their own module, which registers them in _TABLE as it is imported;
# it imports this module, so it can only be loaded once everything above exists.
importlib.import_module(f"{__package__}.strings")

SUPPORTED = sorted(_TABLE)
