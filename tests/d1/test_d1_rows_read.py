"""D1 `meta.rows_read` / `rows_written` for the common cases, as production counts them.

Production D1 runs SQLite with workerd's row-count patch (workerd patches/sqlite/0001-row-counts*.patch,
from libsql): a read is counted at each cursor Rewind/Last, each successful Next/Prev, each seek, and
COUNT(*) adds the table's row count; a write at each table insert, counted delete and index insert.
"""

from __future__ import annotations

import pytest

from cfemu.d1 import D1Database, D1Storage

N = 20


@pytest.fixture
async def db(tmp_path):
    storage = D1Storage(tmp_path / "rows.sqlite")
    database = D1Database(storage)
    await database.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)")
    await database.exec("CREATE TABLE empty (v)")
    await database.exec("CREATE TABLE indexed (id INTEGER PRIMARY KEY, k TEXT)")
    await database.exec("CREATE INDEX indexed_k ON indexed (k)")
    for i in range(N):
        await database.prepare("INSERT INTO t (name, n) VALUES (?, ?)").bind(f"x{i}", i).run()
    yield database
    storage.close()


async def _meta(db, sql, *params):
    return (await db.prepare(sql).bind(*params).all())["meta"]


async def test_a_full_select_reads_every_row(db):
    meta = await _meta(db, "SELECT * FROM t")
    assert (meta["rows_read"], meta["rows_written"]) == (N, 0)


async def test_a_primary_key_lookup_reads_one_row(db):
    assert (await _meta(db, "SELECT * FROM t WHERE id = ?", 3))["rows_read"] == 1


async def test_count_reads_the_whole_table(db):
    assert (await _meta(db, "SELECT count(*) FROM t"))["rows_read"] == N


async def test_a_filter_on_an_unindexed_column_reads_the_whole_table(db):
    meta = await _meta(db, "SELECT * FROM t WHERE name = ?", "x5")
    assert meta["rows_read"] == N


async def test_an_empty_table_scan_counts_its_rewind(db):
    assert (await _meta(db, "SELECT * FROM empty"))["rows_read"] == 1
    assert (await _meta(db, "SELECT 1"))["rows_read"] == 0


async def test_writes(db):
    meta = (await db.prepare("INSERT INTO t (name, n) VALUES ('new', 0)").run())["meta"]
    assert (meta["rows_read"], meta["rows_written"]) == (0, 1)
    meta = (await db.prepare("UPDATE t SET n = 1 WHERE name = 'x5'").run())["meta"]
    assert (meta["rows_read"], meta["rows_written"]) == (N + 1, 1)  # a full scan, one row rewritten
    meta = (await db.prepare("UPDATE t SET n = 2 WHERE id = 1").run())["meta"]
    assert (meta["rows_read"], meta["rows_written"]) == (1, 1)
    meta = (await db.prepare("DELETE FROM t WHERE id = 2").run())["meta"]
    assert (meta["rows_read"], meta["rows_written"]) == (1, 1)
    # An index entry is a row written too.
    meta = (await db.prepare("INSERT INTO indexed (k) VALUES ('a'), ('b')").run())["meta"]
    assert meta["rows_written"] == 4


async def test_a_new_index_changes_the_count_of_a_cached_statement(db):
    sql = "SELECT * FROM t WHERE name = ?"
    assert (await _meta(db, sql, "x5"))["rows_read"] == N
    await db.exec("CREATE INDEX t_name ON t (name)")
    assert (await _meta(db, sql, "x5"))["rows_read"] < N


async def test_sorting_and_returning_and_first(db):
    # An unindexed ORDER BY: the scan, then the sorter's steps.
    assert (await _meta(db, "SELECT * FROM t ORDER BY n DESC"))["rows_read"] == 2 * N - 1
    # first()/raw() carry no meta; they still work on the same statements.
    assert (await db.prepare("SELECT count(*) AS c FROM t").first("c")) == N
    meta = (await db.prepare("INSERT INTO t (name, n) VALUES ('r', 1) RETURNING id").all())["meta"]
    assert meta["rows_written"] == 1 and meta["changes"] == 1


async def test_batch_statements_get_their_own_counts(db):
    results = await db.batch([db.prepare("SELECT * FROM t"), db.prepare("SELECT * FROM t WHERE id = 1"),
                              db.prepare("SELECT count(*) FROM t")])
    assert [r["meta"]["rows_read"] for r in results] == [N, 1, N]


async def test_a_refused_pragma_is_not_compiled_for_its_counts(db, tmp_path):
    from cfemu.errors import JsException

    with pytest.raises(JsException) as info:
        await db.prepare("PRAGMA journal_mode=DELETE").run()
    assert str(info.value) == "D1_ERROR: not authorized: SQLITE_AUTH"
    mode = db._storage.run_internal("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
