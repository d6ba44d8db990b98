"""Analytics Engine SQL (ClickHouse-flavoured) -> DuckDB SQL, by walking sqlglot's syntax tree.

The query is parsed with sqlglot's ClickHouse dialect, checked against the subset the Analytics
Engine SQL API documents, and written out as DuckDB SQL by this module's own generator: every
node kind the subset allows has a rule here, and anything else is refused with a message that
names it.  Function calls are translated by `functions.py`.  The ClickHouse type of each result
column is inferred along the way, so that `meta` reports ClickHouse's names.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import ParseError, TokenError
from sqlglot.parsers.clickhouse import ClickHouseParser
from sqlglot.tokens import TokenType

from .errors import AnalyticsQueryError
from .naming import CAST_TYPES, column_name
from .storage import COLUMN_TYPES

__all__ = ["Plan", "translate", "FORMATS"]

TOO_DEEP = "The query is nested too deeply (expressions nest at most a few hundred levels locally)"

FORMATS = {"json": "JSON", "jsoneachrow": "JSONEachRow", "tabseparated": "TabSeparated", "tsv": "TabSeparated"}

# Aggregates written ClickHouse's parametric way: name(params)(args).
PARAMETRIC = {"quantileexactweighted", "quantileweighted", "topk", "topkweighted"}


class _Parser(ClickHouseParser):
    # Leave every function call as written (name and case kept) so that this module decides what
    # each one means; keep only the parsers for syntax that is not a plain call.
    FUNCTIONS: dict = {}
    FUNCTION_PARSERS = {k: v for k, v in ClickHouseParser.FUNCTION_PARSERS.items()
                        if k in ("CAST", "TRY_CAST", "POSITION", "EXTRACT")}  # (a IN b), (UNIT FROM t)

    @classmethod
    def _resolve_clickhouse_agg(cls, name: str) -> Any:
        return (name, ()) if name.lower() in PARAMETRIC else None


class AnalyticsDialect(ClickHouse):
    """ClickHouse's dialect with function calls left uninterpreted."""

    parser_class = _Parser
    Parser = _Parser


@dataclass
class Plan:
    """A translated statement: DuckDB SQL plus what is needed to present its result."""

    sql: str
    names: list[str]
    types: list[str | None]  # ClickHouse type per column when inferred; None -> derive from DuckDB's
    format: str = "JSON"
    show: str | None = None  # "tables" | "timezone" for SHOW statements
    unlimited_sql: str | None = None  # the query without its LIMIT/OFFSET, when it has a LIMIT


@dataclass
class Typed:
    sql: str
    type: str | None = None


@dataclass
class Scope:
    """What names mean inside one SELECT."""

    columns: dict[str, str | None]
    qualifiers: set[str]
    base: bool  # reading a dataset table directly (so `_sample_interval` is the stored column)
    aliases: dict[str, exp.Expression] = field(default_factory=dict)
    resolving: set[str] = field(default_factory=set)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def fail(message: str) -> AnalyticsQueryError:
    return AnalyticsQueryError(message)


# -- ClickHouse types -----------------------------------------------------------------------------

_INT_BITS = {"UInt8": 8, "UInt16": 16, "UInt32": 32, "UInt64": 64, "Int8": 8, "Int16": 16, "Int32": 32, "Int64": 64}
DUCK_TYPES = {
    "UInt8": "UTINYINT", "UInt16": "USMALLINT", "UInt32": "UINTEGER", "UInt64": "UBIGINT",
    "Int8": "TINYINT", "Int16": "SMALLINT", "Int32": "INTEGER", "Int64": "BIGINT",
    "Float32": "FLOAT", "Float64": "DOUBLE", "String": "VARCHAR", "DateTime": "TIMESTAMP", "Date": "DATE",
}


def nullable(t: str) -> str:
    """ClickHouse's Nullable(T) (kept as is when T already is, or cannot be, Nullable)."""
    return t if t.startswith(("Nullable(", "Array(")) else f"Nullable({t})"


def is_int(t: str | None) -> bool:
    return t in _INT_BITS


def is_number(t: str | None) -> bool:
    return is_int(t) or t in ("Float32", "Float64")


def _int_type(unsigned: bool, bits: int) -> str:
    bits = min(64, max(8, bits))
    return f"{'UInt' if unsigned else 'Int'}{bits}"


def _literal_int_type(n: int) -> str:
    if n >= 0:
        for bits in (8, 16, 32, 64):
            if n < 2**bits:
                return f"UInt{bits}"
        return "UInt64"
    for bits in (8, 16, 32, 64):
        if n >= -(2 ** (bits - 1)):
            return f"Int{bits}"
    return "Int64"


def _arith_type(op: str, a: str | None, b: str | None) -> str | None:
    """ClickHouse's result type for + - * / % of two numbers (integers widen to the next size)."""
    if a in ("DateTime", "Date") and b == "Interval" and op in "+-":
        return a
    if a == "Interval" and b in ("DateTime", "Date") and op == "+":
        return b
    if not (is_number(a) and is_number(b)):
        return None
    if op == "/" or not (is_int(a) and is_int(b)):
        return "Float64"
    unsigned = a.startswith("U") and b.startswith("U")
    bits = max(_INT_BITS[a], _INT_BITS[b])
    if op == "%":
        return _int_type(unsigned, bits)
    if op == "-":
        return _int_type(False, bits * 2)
    return _int_type(unsigned, bits * 2)


_BINARY = {
    exp.And: ("AND", "UInt8"), exp.Or: ("OR", "UInt8"),
    exp.EQ: ("=", "UInt8"), exp.NEQ: ("<>", "UInt8"), exp.GT: (">", "UInt8"), exp.GTE: (">=", "UInt8"),
    exp.LT: ("<", "UInt8"), exp.LTE: ("<=", "UInt8"), exp.Like: ("LIKE", "UInt8"), exp.ILike: ("ILIKE", "UInt8"),
    exp.Add: ("+", None), exp.Sub: ("-", None), exp.Mul: ("*", None), exp.Div: ("/", None), exp.Mod: ("%", None),
}

_INTERVAL_UNITS = {
    "SECOND": "SECOND", "MINUTE": "MINUTE", "HOUR": "HOUR", "DAY": "DAY", "WEEK": "WEEK", "MONTH": "MONTH",
    "QUARTER": "QUARTER", "YEAR": "YEAR",
}

# SELECT clauses the subset has; any other clause that is present gets refused by name.
_SELECT_ARGS = {"expressions", "from_", "where", "group", "having", "order", "limit", "offset", "format", "distinct"}
_CLAUSE_NAMES = {
    "joins": "JOIN", "with_": "WITH (common table expressions)", "settings": "SETTINGS", "prewhere": "PREWHERE",
    "windows": "WINDOW", "qualify": "QUALIFY", "laterals": "LATERAL / ARRAY JOIN", "sample": "SAMPLE",
    "into": "SELECT ... INTO", "locks": "FOR UPDATE", "kind": "SELECT AS STRUCT", "connect": "CONNECT BY",
    "match": "MATCH_RECOGNIZE", "cluster": "CLUSTER BY", "distribute": "DISTRIBUTE BY", "sort": "SORT BY",
}


# -- the translator ---------------------------------------------------------------------------------


class Translator:
    """Translates one statement; `now` (seconds since the epoch) is the runtime clock's time."""

    def __init__(self, datasets: set[str], now: float, *, oldest: _dt.datetime | None = None) -> None:
        self.datasets = datasets
        self.now = _dt.datetime.fromtimestamp(int(now), _dt.timezone.utc).replace(tzinfo=None)
        self.oldest = oldest  # hide rows older than this (a read-only store cannot delete them)

    # statements

    def statement(self, sql: str) -> Plan:
        if not sql.strip():
            raise fail("The query is empty")
        try:
            tokens = AnalyticsDialect().tokenize(sql)
        except TokenError as e:
            raise fail(f"Syntax error: {str(e).splitlines()[0]}") from None
        if tokens and tokens[0].text.upper() == "SHOW":
            # sqlglot hands back what follows SHOW as one opaque token: split it into words
            return self._show([w for t in tokens if t.token_type != TokenType.SEMICOLON for w in t.text.split()])
        try:
            statements = [s for s in sqlglot.parse(sql, dialect=AnalyticsDialect) if s is not None]
        except (ParseError, TokenError) as e:
            raise fail(f"Syntax error: {str(e).splitlines()[0]}") from None
        if len(statements) != 1:
            raise fail("Only one statement per query is supported")
        node = statements[0]
        if isinstance(node, exp.Command):
            raise fail(f"{node.name.upper()} statements are not supported: only SELECT and SHOW TABLES")
        if isinstance(node, exp.SetOperation):
            raise fail(f"{type(node).__name__.upper()} is not supported: a query reads one table (or a subquery)")
        if not isinstance(node, exp.Select):
            kind = type(node).__name__.upper()
            raise fail(f"Only SELECT and SHOW TABLES statements are supported, not {kind}")
        fmt = "JSON"
        if node.args.get("format") is not None:
            name = node.args["format"].name
            if name.lower() not in FORMATS:
                raise fail(f"Unsupported FORMAT {name}: use JSON, JSONEachRow or TabSeparated")
            fmt = FORMATS[name.lower()]
        self._unlimited_sql = None
        select_sql, names, types = self.select(node, outer=True)
        return Plan(select_sql, names, types, fmt, unlimited_sql=self._unlimited_sql)

    def _show(self, words: list[str]) -> Plan:
        words = words[1:]
        text = " ".join(words)
        fmt = "JSON"
        if len(words) >= 3 and words[-2].upper() == "FORMAT":
            if words[-1].lower() not in FORMATS:
                raise fail(f"Unsupported FORMAT {words[-1]}: use JSON, JSONEachRow or TabSeparated")
            fmt = FORMATS[words[-1].lower()]
            words = words[:-2]
        what = " ".join(w.upper() for w in words)
        if what == "TABLES":
            return Plan("", ["dataset"], ["String"], fmt, show="tables")
        if what == "TIMEZONE":
            return Plan("", ["timezone"], ["String"], fmt, show="timezone")
        raise fail(f"SHOW {text} is not supported: only SHOW TABLES and SHOW TIMEZONE")

    # SELECT

    def select(self, node: exp.Select, *, outer: bool) -> tuple[str, list[str], list[str | None]]:
        for key, value in node.args.items():
            if key in _SELECT_ARGS or value in (None, False, []):
                continue
            name = _CLAUSE_NAMES.get(key, key.rstrip("_").upper())
            if key == "joins":
                raise fail("JOIN is not supported: a query reads one table (or a subquery)")
            raise fail(f"{name} is not supported")
        if not outer and node.args.get("format") is not None:
            raise fail("FORMAT is only allowed at the end of the outermost query")
        source, scope = self._from(node.args.get("from_"))
        for projection in node.expressions:
            if isinstance(projection, exp.Alias):
                scope.aliases[projection.alias] = projection.this

        names: list[str] = []
        types: list[str | None] = []
        parts: list[str] = []
        for projection in node.expressions:
            if isinstance(projection, exp.Star):
                if not scope.columns:
                    raise fail("SELECT * needs a FROM clause")
                for col, ctype in scope.columns.items():
                    names.append(col)
                    types.append(ctype)
                    parts.append(_quote(col))
                continue
            if isinstance(projection, exp.Alias):
                name = projection.alias
                scope.resolving.add(name)
                try:
                    value = self.expr(projection.this, scope)
                finally:
                    scope.resolving.discard(name)
            else:
                name = column_name(projection)  # as ClickHouse names it: count(*) -> count()
                value = self.expr(projection, scope)
            names.append(name)
            types.append(value.type)
            parts.append(value.sql)

        if outer:
            cols = []
            for i, (sql, ctype) in enumerate(zip(parts, types)):
                duck = DUCK_TYPES.get(ctype or "")
                if ctype and (is_number(ctype)) and duck:
                    sql = f"CAST({sql} AS {duck})"
                cols.append(f"{sql} AS {_quote(f'_c{i}')}")
        else:
            seen: set[str] = set()
            cols = []
            for sql, name in zip(parts, names):
                if name in seen:
                    raise fail(f"Column name {name!r} appears twice in a subquery; give the columns distinct aliases")
                seen.add(name)
                cols.append(f"{sql} AS {_quote(name)}")

        out = ["SELECT"]
        if node.args.get("distinct"):
            if node.args["distinct"].args.get("on"):
                raise fail("DISTINCT ON is not supported")
            out.append("DISTINCT")
        out.append(", ".join(cols))
        if source:
            out.append(f"FROM {source}")
        if node.args.get("where") is not None:
            out.append("WHERE " + self.expr(node.args["where"].this, scope).sql)
        group = node.args.get("group")
        if group is not None:
            for key in ("grouping_sets", "cube", "rollup", "totals"):
                if group.args.get(key):
                    raise fail(f"GROUP BY ... {key.upper().replace('_', ' ')} is not supported")
            out.append("GROUP BY " + ", ".join(self._group_item(e, scope) for e in group.expressions))
        if node.args.get("having") is not None:
            out.append("HAVING " + self.expr(node.args["having"].this, scope).sql)
        order = node.args.get("order")
        if order is not None:
            out.append("ORDER BY " + ", ".join(self._order_item(e, scope) for e in order.expressions))
        limit = node.args.get("limit")
        if limit is not None:
            if limit.args.get("expressions"):
                raise fail("LIMIT ... BY is not supported")
            value = limit.expression
            if isinstance(value, exp.Column) and value.name.upper() == "ALL":
                pass
            else:
                if outer:  # ClickHouse's JSON reports how many rows there were before the LIMIT
                    self._unlimited_sql = " ".join(out)
                out.append(f"LIMIT {self._count(value, 'LIMIT')}")
        offset = node.args.get("offset")
        if offset is not None:
            out.append(f"OFFSET {self._count(offset.expression, 'OFFSET')}")
        return " ".join(out), names, types

    def _count(self, node: Any, clause: str) -> int:
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            return min(int(node.this), 2**63 - 1)  # ClickHouse takes any UInt64; DuckDB's LIMIT is a BIGINT
        raise fail(f"{clause} takes a non-negative whole number")

    def _group_item(self, node: exp.Expression, scope: Scope) -> str:
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            return node.this  # a position in the SELECT list
        return self.expr(node, scope).sql

    def _order_item(self, node: exp.Expression, scope: Scope) -> str:
        if not isinstance(node, exp.Ordered):
            return self._group_item(node, scope)
        if node.args.get("with_fill"):
            raise fail("ORDER BY ... WITH FILL is not supported")
        text = self._group_item(node.this, scope)
        text += " DESC" if node.args.get("desc") else " ASC"
        if node.args.get("nulls_first") is not None:
            text += " NULLS FIRST" if node.args["nulls_first"] else " NULLS LAST"
        return text

    def _from(self, source: exp.From | None) -> tuple[str, Scope]:
        if source is None:
            return "", Scope({}, set(), base=False)
        node = source.this
        alias = node.alias if isinstance(node, (exp.Table, exp.Subquery)) else ""
        if isinstance(node, exp.Table):
            if isinstance(node.this, exp.Anonymous):
                raise fail(f"Table functions such as {node.this.name}() are not supported")
            if node.args.get("db") or node.args.get("catalog"):
                raise fail(f"Unknown table {node.sql(dialect=AnalyticsDialect)}: name the dataset alone")
            if node.args.get("sample"):
                raise fail("SAMPLE is not supported")
            name = node.name
            if name not in self.datasets:
                raise fail(f"Unknown table '{name}': no dataset of that name has been written to")
            scope = Scope(dict(COLUMN_TYPES), {name, alias} - {""}, base=True)
            if self.oldest is not None:
                kept = f"(SELECT * FROM {_quote(name)} WHERE timestamp >= TIMESTAMP '{self.oldest:%Y-%m-%d %H:%M:%S}')"
                return f"{kept} AS {_quote(alias or name)}", scope
            return _quote(name) + (f" AS {_quote(alias)}" if alias else ""), scope
        if isinstance(node, exp.Subquery):
            inner = node.this
            if not isinstance(inner, exp.Select):
                raise fail(f"{type(inner).__name__.upper()} is not supported in a subquery")
            sql, names, types = self.select(inner, outer=False)
            scope = Scope(dict(zip(names, types)), {alias} - {""}, base=False)
            return f"({sql})" + (f" AS {_quote(alias)}" if alias else ""), scope
        if isinstance(node, exp.Final):
            raise fail("FINAL is not supported")
        raise fail(f"Unsupported FROM: {node.sql(dialect=AnalyticsDialect)}")

    # expressions

    def expr(self, node: exp.Expression, scope: Scope) -> Typed:
        from .functions import call

        if isinstance(node, exp.Column):
            return self._column(node, scope)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return Typed(string_literal(node.this), "String")
            text = node.this
            try:
                return Typed(str(int(text)), _literal_int_type(int(text)))
            except ValueError:
                return Typed(f"CAST({float(text)!r} AS DOUBLE)", "Float64")
        if isinstance(node, exp.Null):
            return Typed("NULL", None)
        if isinstance(node, exp.Boolean):
            return Typed("TRUE" if node.this else "FALSE", "Bool")
        if isinstance(node, exp.Paren):
            inner = self.expr(node.this, scope)
            return Typed(f"({inner.sql})", inner.type)
        if isinstance(node, exp.Neg):
            inner = self.expr(node.this, scope)
            kind = inner.type
            if isinstance(node.this, exp.Literal) and kind and is_int(kind):
                kind = _literal_int_type(-int(node.this.this))
            elif is_int(kind) and kind.startswith("U"):
                kind = _int_type(False, _INT_BITS[kind] * 2)
            return Typed(f"(-{inner.sql})", kind)
        if isinstance(node, exp.Not):
            return Typed(f"(NOT {self.expr(node.this, scope).sql})", "UInt8")
        op = _BINARY.get(type(node))
        if op is not None:
            left, right = self.expr(node.this, scope), self.expr(node.expression, scope)
            kind = op[1] or _arith_type(op[0], left.type, right.type)
            return Typed(f"({left.sql} {op[0]} {right.sql})", kind)
        if isinstance(node, exp.Is):
            return Typed(f"({self.expr(node.this, scope).sql} IS {self.expr(node.expression, scope).sql})", "UInt8")
        if isinstance(node, exp.In):
            if node.args.get("query") is not None or node.args.get("field") is not None:
                raise fail("IN (subquery) is not supported: list the values")
            items = ", ".join(self.expr(e, scope).sql for e in node.expressions)
            return Typed(f"({self.expr(node.this, scope).sql} IN ({items}))", "UInt8")
        if isinstance(node, exp.Between):
            a, lo, hi = (self.expr(node.args[k], scope).sql for k in ("this", "low", "high"))
            return Typed(f"({a} BETWEEN {lo} AND {hi})", "UInt8")
        if isinstance(node, exp.Case):
            return self._case(node, scope)
        if isinstance(node, exp.Cast):
            return self._cast(node, scope)
        if isinstance(node, exp.Interval):
            return self.interval(node)
        if isinstance(node, exp.Array):
            items = [self.expr(e, scope) for e in node.expressions]
            inner = items[0].type if items else None
            return Typed("[" + ", ".join(i.sql for i in items) + "]", f"Array({inner})" if inner else None)
        if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc, exp.ParameterizedAgg, exp.If, exp.StrPosition,
                             exp.Extract)):
            return call(self, node, scope)
        if isinstance(node, exp.Window):
            raise fail("Window functions (OVER ...) are not supported")
        if isinstance(node, (exp.Subquery, exp.Select)):
            raise fail("Subqueries are only supported in FROM")
        if isinstance(node, exp.Star):
            raise fail("* is only allowed as SELECT * or count(*)")
        if isinstance(node, (exp.CombinedAggFunc, exp.CombinedParameterizedAgg)):
            raise fail(f"Aggregate function combinators such as {node.name} are not supported")
        raise fail(f"Unsupported expression: {node.sql(dialect=AnalyticsDialect)}")

    def _column(self, node: exp.Column, scope: Scope) -> Typed:
        name = node.name
        if node.table:
            if node.table not in scope.qualifiers:
                raise fail(f"Unknown table '{node.table}' in column {node.sql(dialect=AnalyticsDialect)}")
        elif name in scope.aliases and name not in scope.resolving:
            # ClickHouse lets an alias stand for its expression anywhere in the query (and prefers
            # it to a column of the same name); substitute it, guarding against cycles.
            scope.resolving.add(name)
            try:
                return self.expr(scope.aliases[name], scope)
            finally:
                scope.resolving.discard(name)
        if name not in scope.columns:
            if not scope.columns and not node.table:
                raise fail(f"Unknown column '{name}': there is no FROM clause")
            raise fail(f"Unknown column '{name}'")
        return Typed(_quote(name), scope.columns[name])

    def _case(self, node: exp.Case, scope: Scope) -> Typed:
        out = ["CASE"]
        if node.this is not None:
            out.append(self.expr(node.this, scope).sql)
        kind = None
        for branch in node.args.get("ifs") or []:
            value = self.expr(branch.args["true"], scope)
            kind = kind or value.type
            out.append(f"WHEN {self.expr(branch.this, scope).sql} THEN {value.sql}")
        default = node.args.get("default")
        if default is not None:
            otherwise = self.expr(default, scope)
            kind = kind or otherwise.type
            out.append(f"ELSE {otherwise.sql}")
        if kind and (default is None or isinstance(default, exp.Null)):
            kind = nullable(kind)  # no ELSE means ELSE NULL
        out.append("END")
        return Typed(" ".join(out), kind)

    def _cast(self, node: exp.Cast, scope: Scope) -> Typed:
        inner = self.expr(node.this, scope)
        to = node.args["to"]
        name = to.this.name if hasattr(to.this, "name") else str(to.this)
        kind = CAST_TYPES.get(name)
        if kind is None:
            raise fail(f"CAST to {to.sql(dialect=AnalyticsDialect)} is not supported")
        return Typed(f"CAST({inner.sql} AS {DUCK_TYPES[kind]})", kind)

    def interval(self, node: exp.Interval) -> Typed:
        amount, unit = self.interval_parts(node)
        return Typed(f"INTERVAL {amount} {unit}", "Interval")

    def interval_parts(self, node: exp.Expression) -> tuple[int, str]:
        if not isinstance(node, exp.Interval):
            raise fail("Expected an interval such as INTERVAL '5' MINUTE")
        value = node.this
        text = value.this if isinstance(value, exp.Literal) else None
        unit = node.args.get("unit")
        unit_name = unit.name.upper() if unit is not None else ""
        if text is not None and unit is None and len(str(text).split()) == 2:
            text, unit_name = str(text).split()
            unit_name = unit_name.upper()
        unit_name = unit_name[:-1] if unit_name.endswith("S") else unit_name
        if unit_name not in _INTERVAL_UNITS:
            raise fail(f"Unsupported interval unit {unit_name or '(none)'}")
        try:
            amount = int(str(text))
        except (TypeError, ValueError):
            raise fail("An INTERVAL needs a whole number, e.g. INTERVAL '1' DAY") from None
        return amount, _INTERVAL_UNITS[unit_name]

    # literal helpers for functions.py

    def now_sql(self) -> str:
        return f"TIMESTAMP '{self.now:%Y-%m-%d %H:%M:%S}'"

    def today_sql(self) -> str:
        return f"DATE '{self.now:%Y-%m-%d}'"


def translate(sql: str, *, datasets: set[str], now: float, oldest: _dt.datetime | None = None) -> Plan:
    """Translate one Analytics Engine SQL statement to a DuckDB `Plan`; raises AnalyticsQueryError.

    `now` (seconds since the epoch) is what now()/today() return; rows older than `oldest` are hidden.
    """
    try:
        return Translator(datasets, now, oldest=oldest).statement(sql)
    except RecursionError:  # sqlglot and the translator walk the tree recursively
        raise fail(TOO_DEEP) from None
