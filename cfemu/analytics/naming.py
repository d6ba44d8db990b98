"""Result column names of unaliased expressions, written the way ClickHouse names them.

ClickHouse names a column by formatting its parsed expression, not by the text the user typed:
operators become their functions (`a + b` -> `plus(a, b)`), `count(*)` becomes `count()`,
`count(DISTINCT x)` becomes `countDistinct(x)` and `INTERVAL 1 MINUTE` becomes
`toIntervalMinute(1)`.  Function names keep the case they were written in.
"""

from __future__ import annotations

from sqlglot import exp

__all__ = ["column_name", "CAST_TYPES"]

_OPERATORS = {
    exp.Add: "plus", exp.Sub: "minus", exp.Mul: "multiply", exp.Div: "divide", exp.Mod: "modulo",
    exp.EQ: "equals", exp.NEQ: "notEquals", exp.GT: "greater", exp.GTE: "greaterOrEquals", exp.LT: "less",
    exp.LTE: "lessOrEquals", exp.Like: "like", exp.ILike: "ilike",
}
_FLATTENED = {exp.And: "and", exp.Or: "or"}  # ClickHouse's parser folds a AND b AND c into and(a, b, c)
# ClickHouse's type name for each SQL type name a CAST may use.
CAST_TYPES = {
    "TEXT": "String", "VARCHAR": "String", "CHAR": "String", "DOUBLE": "Float64", "FLOAT": "Float32",
    "TINYINT": "Int8", "SMALLINT": "Int16", "INT": "Int32", "BIGINT": "Int64", "UTINYINT": "UInt8",
    "USMALLINT": "UInt16", "UINT": "UInt32", "UBIGINT": "UInt64", "DATETIME": "DateTime", "TIMESTAMP": "DateTime",
    "DATE": "Date",
}


def _string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number(text: str) -> str:
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    if value.is_integer() and abs(value) < 1e16:
        return f"{int(value)}."  # ClickHouse writes a whole Float64 literal with a trailing dot
    return repr(value)


def _args(nodes: list[exp.Expression]) -> str:
    return ", ".join(column_name(n) for n in nodes)


def _flatten(node: exp.Expression, kind: type) -> list[exp.Expression]:
    if isinstance(node, kind):
        return _flatten(node.this, kind) + _flatten(node.expression, kind)
    return [node]


def _interval(node: exp.Interval) -> str:
    unit = node.args.get("unit")
    unit_name = unit.name.upper() if unit is not None else ""
    value = node.this
    if isinstance(value, exp.Literal) and value.is_string:
        text = value.this
        if unit is None and len(text.split()) == 2:  # INTERVAL '5 MINUTE': ClickHouse reads the number out
            text, unit_name = text.split()
            argument = _number(text)
        elif value.meta.get("start") is not None:
            # INTERVAL '5' MINUTE keeps the string ('5'); INTERVAL 5 MINUTE reaches here as a string
            # literal made by sqlglot, which carries no source position.
            argument = _string(text)
        else:
            argument = _number(text)
    else:
        argument = column_name(value)
    unit_name = unit_name.upper()
    if unit_name.endswith("S") and len(unit_name) > 1:  # INTERVAL 2 DAYS
        unit_name = unit_name[:-1]
    return f"toInterval{unit_name.capitalize()}({argument})"


def _call(name: str, args: list[exp.Expression]) -> str:
    if len(args) == 1 and isinstance(args[0], exp.Star):
        return f"{name}()"  # count(*) is count()
    if len(args) == 1 and isinstance(args[0], exp.Distinct):
        return f"{name}Distinct({_args(args[0].expressions)})"
    return f"{name}({_args(args)})"


def column_name(node: exp.Expression) -> str:
    """ClickHouse's name for the result column of `node` (an unaliased SELECT item)."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column):
        return f"{node.table}.{node.name}" if node.table else node.name
    if isinstance(node, exp.Literal):
        return _string(node.this) if node.is_string else _number(node.this)
    if isinstance(node, exp.Null):
        return "NULL"
    if isinstance(node, exp.Boolean):
        return "true" if node.this else "false"
    if isinstance(node, exp.Paren):
        return column_name(node.this)
    if isinstance(node, exp.Neg):
        if isinstance(node.this, exp.Literal) and not node.this.is_string:
            return "-" + _number(node.this.this)  # -1 is parsed as a negative literal
        return f"negate({column_name(node.this)})"
    if isinstance(node, exp.Not):
        inner = node.this
        if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
            return f"isNotNull({column_name(inner.this)})"
        if isinstance(inner, exp.In):
            return column_name(inner).replace("in(", "notIn(", 1)
        if isinstance(inner, exp.Like):
            return f"notLike({_args([inner.this, inner.expression])})"
        return f"not({column_name(inner)})"
    for kind, name in _FLATTENED.items():
        if isinstance(node, kind):
            return f"{name}({_args(_flatten(node, kind))})"
    name = _OPERATORS.get(type(node))
    if name is not None:
        return f"{name}({_args([node.this, node.expression])})"
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return f"isNull({column_name(node.this)})"
    if isinstance(node, exp.In):
        items = node.expressions
        values = column_name(items[0]) if len(items) == 1 else f"({_args(items)})"
        return f"in({column_name(node.this)}, {values})"
    if isinstance(node, exp.Between):
        value = column_name(node.this)
        return (f"and(greaterOrEquals({value}, {column_name(node.args['low'])}), "
                f"lessOrEquals({value}, {column_name(node.args['high'])}))")
    if isinstance(node, exp.Interval):
        return _interval(node)
    if isinstance(node, exp.Array):
        return f"[{_args(node.expressions)}]"
    if isinstance(node, exp.Cast):
        to = node.args["to"]
        type_name = to.this.name if hasattr(to.this, "name") else str(to.this)
        return f"CAST({column_name(node.this)}, {_string(CAST_TYPES.get(type_name, type_name))})"
    if isinstance(node, exp.If):
        parts = [node.this, node.args.get("true"), node.args.get("false") or exp.Null()]
        return f"if({_args(parts)})"
    if isinstance(node, exp.Case):
        parts: list[exp.Expression] = []
        for branch in node.args.get("ifs") or []:
            parts += [branch.this, branch.args["true"]]
        parts.append(node.args.get("default") or exp.Null())
        if node.this is not None:
            return f"caseWithExpression({_args([node.this, *parts])})"
        return f"multiIf({_args(parts)})"
    if isinstance(node, exp.StrPosition):  # position(needle IN haystack) is parsed as position(haystack, needle)
        return f"position({_args([node.this, node.args['substr']])})"
    if isinstance(node, exp.Extract):  # extract(SECOND FROM t) is parsed as toSecond(t)
        unit = node.this.name.capitalize() if isinstance(node.this, (exp.Var, exp.Column)) else "Second"
        return f"to{unit}({column_name(node.expression)})"
    if isinstance(node, exp.ParameterizedAgg):
        return f"{node.name}({_args(list(node.expressions))})({_args(list(node.args.get('params') or []))})"
    if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)):
        return _call(node.name, list(node.expressions))
    return node.sql(dialect="clickhouse")
