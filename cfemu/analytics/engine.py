"""Running one SQL API statement against a store: translate, execute, present."""

from __future__ import annotations

import duckdb

from .errors import AnalyticsQueryError
from .formats import clickhouse_type, render
from .functions import DIVISION_BY_ZERO
from .sql import FORMATS, translate
from .storage import AnalyticsStore, execute_detached, retention_cutoff

__all__ = ["run_query", "normalise_format"]


def normalise_format(fmt: str | None) -> str | None:
    """'json' / 'jsoneachrow' / 'tsv' ... -> the canonical FORMAT name; raises for unknown ones."""
    if fmt is None:
        return None
    try:
        return FORMATS[fmt.lower()]
    except KeyError:
        raise AnalyticsQueryError(f"Unsupported FORMAT {fmt}: use JSON, JSONEachRow or TabSeparated") from None


def run_query(store: AnalyticsStore | None, sql: str, *, now: float, fmt: str | None = None) -> dict | str:
    """Answer `sql` from `store` as the SQL API would; `fmt` overrides the query's FORMAT clause."""
    datasets = set(store.tables()) if store is not None else set()
    # A writable store deletes expired rows before queries; a read-only one (the CLI's) hides them.
    oldest = retention_cutoff(now) if store is not None and store.read_only else None
    plan = translate(sql, datasets=datasets, now=now, oldest=oldest)
    out_format = normalise_format(fmt) or plan.format
    if plan.show == "tables":
        return render(plan.names, ["String"], [(t,) for t in sorted(datasets)], out_format)
    if plan.show == "timezone":
        return render(plan.names, ["String"], [("Etc/UTC",)], out_format)
    execute = execute_detached if store is None else store.execute  # no store: only table-less queries run
    before_limit = None
    try:
        duck_types, rows = execute(plan.sql)
        if plan.unlimited_sql is not None and out_format == "JSON":
            before_limit = execute(f"SELECT count(*) FROM ({plan.unlimited_sql})")[1][0][0]
    except duckdb.Error as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Division by zero" in message:  # DuckDB's text adds advice about its own settings
            message = DIVISION_BY_ZERO
        raise AnalyticsQueryError(message) from None
    kinds = []
    for i, (inferred, duck) in enumerate(zip(plan.types, duck_types)):
        if inferred and inferred not in ("Interval", "Bool") and "None" not in inferred:
            kinds.append(inferred)
        elif duck.upper() == "HUGEINT":  # DuckDB widens integer sums; ClickHouse keeps 64 bits
            kinds.append("Int64" if any(r[i] is not None and r[i] < 0 for r in rows) else "UInt64")
        else:
            kinds.append(clickhouse_type(duck))
    body = render(plan.names, kinds, rows, out_format)
    if before_limit is not None:
        body["rows_before_limit_at_least"] = before_limit
    return body
