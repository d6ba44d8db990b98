"""Running one SQL API statement against a store: translate, execute, present."""

from __future__ import annotations

import duckdb

from .errors import AnalyticsQueryError
from .formats import clickhouse_type, render
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
    try:
        if store is None:  # nothing stored yet: only a query without a table can run
            duck_types, rows = execute_detached(plan.sql)
        else:
            duck_types, rows = store.execute(plan.sql)
    except duckdb.Error as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AnalyticsQueryError(message) from None
    kinds = []
    for i, (inferred, duck) in enumerate(zip(plan.types, duck_types)):
        if inferred and inferred not in ("Interval", "Bool") and "None" not in inferred:
            kinds.append(inferred)
        elif duck.upper() == "HUGEINT":  # DuckDB widens integer sums; ClickHouse keeps 64 bits
            kinds.append("Int64" if any(r[i] is not None and r[i] < 0 for r in rows) else "UInt64")
        else:
            kinds.append(clickhouse_type(duck))
    return render(plan.names, kinds, rows, out_format)
