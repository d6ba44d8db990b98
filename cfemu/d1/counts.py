"""`meta.rows_read` and `meta.rows_written` estimated the way production D1 counts them.

Production runs SQLite with workerd's row-count patch (from libsql): every cursor Rewind/Last, every
seek and every successful Next/Prev (sorter steps included) adds a row read, COUNT(*) adds the
table's row count; every table insert, counted delete and index insert adds a row written.  Stock
SQLite has no such counters, so cfemu reads the statement's bytecode once (EXPLAIN, cached per SQL
text) and combines it with the one counter SQLite does keep, full-scan steps:

    rows_read    = Rewind/Last ops + full-scan steps + seek ops + COUNT(*)'s result
                   + sorter steps (result rows - 1); with seeks or virtual tables, at least
                   the rows returned (a statement touching no table, like SELECT 1, reads 0)
    rows_written = changes x (1 + index inserts per row)

Exact for full scans (with or without a WHERE on an unindexed column, on an empty table too),
primary-key lookups, COUNT(*) and single-row writes; index range scans, joins and subqueries that
repeat a seek are counted low (steps through an index and repeated seeks are not seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import apsw

__all__ = ["Plan", "plan_of", "rows_read", "rows_written", "FullScanSteps"]

_SCANS = frozenset({"Rewind", "Last"})
_SEEKS = frozenset({"SeekLT", "SeekLE", "SeekGE", "SeekGT", "SeekRowid", "NotExists"})
_EPHEMERAL_OPENS = frozenset({"OpenEphemeral", "OpenAutoindex", "SorterOpen", "OpenPseudo", "OpenDup"})


@dataclass(frozen=True, slots=True)
class Plan:
    """What a statement's bytecode says about the rows it touches."""

    scans: int  # Rewind/Last ops: a full scan starts with one (counted even on an empty table)
    seeks: int  # seek ops (a primary-key or index lookup)
    count: bool  # an exact COUNT(*) (OP_Count), which production counts as the table's size
    sorter: bool  # a sorter, whose steps production counts as reads too
    index_inserts: int  # inserts into real (not temporary) indexes per row written
    hidden_steps: bool  # seeks or virtual tables: loops whose steps SQLite does not count for us


def plan_of(conn: apsw.Connection, sql: str, params: Sequence[Any]) -> Plan | None:
    """The statement's Plan from EXPLAIN, or None when it cannot be explained (e.g. DDL whose
    effect already happened)."""
    try:
        program = conn.execute("EXPLAIN " + sql, params).fetchall()
    except apsw.Error:
        return None
    scans = seeks = index_inserts = 0
    count = sorter = virtual = False
    temporary: set[int] = set()
    for row in program:
        op, p1, p3 = row[1], row[2], row[4]
        if op in _EPHEMERAL_OPENS:
            temporary.add(p1)
        elif op in _SCANS:
            scans += 1
        elif op in _SEEKS:
            seeks += 1
        elif op == "Count" and not p3:
            count = True
        elif op == "SorterSort":
            sorter = True
        elif op == "VFilter":
            virtual = True
        elif op == "IdxInsert" and p1 not in temporary:
            index_inserts += 1
    return Plan(scans, seeks, count, sorter, index_inserts, seeks > 0 or virtual)


class FullScanSteps:
    """A profile trace that keeps SQLite's full-scan step counter of the statement just run."""

    __slots__ = ("steps",)
    TRACE_ID = "cfemu-d1-rows-read"

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, event: dict[str, Any]) -> None:
        status = event.get("stmt_status")
        if status:
            self.steps += status.get("SQLITE_STMTSTATUS_FULLSCAN_STEP", 0)


def rows_read(plan: Plan | None, rows: list[tuple[Any, ...]], full_scan_steps: int, readonly: bool,
              changes: int) -> int:
    """The rows a statement read, as production would report them (see the module docstring)."""
    if plan is None:
        return len(rows) if readonly else max(len(rows), changes)
    estimate = plan.scans + full_scan_steps if plan.scans else 0
    estimate += plan.seeks
    if plan.count and len(rows) == 1 and len(rows[0]) == 1 and type(rows[0][0]) is int:
        estimate += rows[0][0]
    if plan.sorter and rows:
        estimate += len(rows) - 1
    # Index and virtual-table steps are invisible here; each row returned took at least one.
    return max(estimate, len(rows)) if plan.hidden_steps else estimate


def rows_written(plan: Plan | None, changes: int) -> int:
    """The rows a statement wrote: each changed row, and each index entry it inserted."""
    if plan is None:
        return changes
    return changes * (1 + plan.index_inserts)
