"""D1 `meta`: field types, and `size_after` always equal to the database's real size."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfemu.d1 import D1Database, D1Storage
from cfemu.errors import JsException


def real_size(storage: D1Storage) -> int:
    pages = storage.run_internal("PRAGMA page_count")[0][0]
    return pages * storage.run_internal("PRAGMA page_size")[0][0]


@pytest.fixture
def storage(tmp_path):
    s = D1Storage(tmp_path / "meta.sqlite")
    yield s
    s.close()


async def test_meta_field_types(storage):
    db = D1Database(storage)
    meta = (await db.prepare("CREATE TABLE t (v)").run())["meta"]
    assert isinstance(meta["duration"], float)
    for name in ("changes", "last_row_id", "size_after", "rows_read", "rows_written"):
        assert type(meta[name]) is int, name
    assert type(meta["changed_db"]) is bool
    assert meta["size_after"] == real_size(storage)


async def test_size_after_is_the_real_size_after_a_rolled_back_batch(storage):
    db = D1Database(storage)
    await db.prepare("CREATE TABLE a (v)").run()
    with pytest.raises(JsException):
        await db.batch([
            db.prepare("CREATE TABLE big (v)"),
            db.prepare("INSERT INTO big VALUES (zeroblob(100000))"),
            db.prepare("INSERT INTO nope VALUES (1)"),
        ])
    meta = (await db.prepare("SELECT 1").all())["meta"]
    assert meta["size_after"] == real_size(storage)
    assert meta["changed_db"] is False


async def test_size_after_sees_writes_made_by_another_connection(tmp_path):
    # The CLI writes to the file a running server has open; the server's next read reports the new size.
    one, two = D1Storage(tmp_path / "shared.sqlite"), D1Storage(tmp_path / "shared.sqlite")
    try:
        await D1Database(one).prepare("CREATE TABLE t (v)").run()
        await D1Database(two).prepare("INSERT INTO t VALUES (zeroblob(50000))").run()
        meta = (await D1Database(one).prepare("SELECT count(*) FROM t").all())["meta"]
        assert meta["size_after"] == real_size(one) == real_size(two)
    finally:
        one.close()
        two.close()


_OPS = st.lists(st.sampled_from([
    "INSERT INTO t VALUES (zeroblob(3000))",
    "INSERT INTO t VALUES (zeroblob(20000))",
    "DELETE FROM t WHERE rowid IN (SELECT rowid FROM t LIMIT 2)",
    "SELECT count(*) FROM t",
    "CREATE TABLE IF NOT EXISTS u (v)",
    "DROP TABLE IF EXISTS u",
    "BATCH",
    "FAILING BATCH",
]), max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
async def test_size_after_tracks_the_file_through_random_operations(tmp_path_factory, ops):
    storage = D1Storage(tmp_path_factory.mktemp("d1") / "random.sqlite")
    db = D1Database(storage)
    try:
        await db.prepare("CREATE TABLE t (v)").run()
        for op in ops:
            if op == "BATCH":
                results = await db.batch([db.prepare("INSERT INTO t VALUES (zeroblob(9000))"),
                                          db.prepare("SELECT 1")])
                meta = results[-1]["meta"]
            elif op == "FAILING BATCH":
                with pytest.raises(JsException):
                    await db.batch([db.prepare("INSERT INTO t VALUES (zeroblob(90000))"),
                                    db.prepare("SELECT * FROM missing")])
                meta = (await db.prepare("SELECT 1").all())["meta"]
            else:
                meta = (await db.prepare(op).run())["meta"]
            assert meta["size_after"] == real_size(storage), op
    finally:
        storage.close()


async def test_size_after_without_the_wal_index_falls_back_to_sqlite(storage):
    storage._committed.close()  # as if the -shm file could not be mapped
    db = D1Database(storage)
    meta = (await db.prepare("CREATE TABLE t (v)").run())["meta"]
    assert meta["size_after"] == real_size(storage) and meta["changed_db"] is True
    meta = (await db.prepare("INSERT INTO t VALUES (zeroblob(30000))").run())["meta"]
    assert meta["size_after"] == real_size(storage)
