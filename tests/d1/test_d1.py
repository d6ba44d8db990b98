"""D1 through a worker and directly on the binding: result shapes, bind types, errors, batch, exec."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfemu.d1.errors import NO_STATEMENTS, PARAMS_ONLY_LAST, TRANSACTION_NOT_ALLOWED, WRONG_BINDINGS
from cfemu.errors import JsException
from cfemu.objects import JsObject
from cfemu.testing import Runtime

APP = Path(__file__).parent / "workers" / "app" / "wrangler.toml"
META_KEYS = {"duration", "changes", "last_row_id", "changed_db", "size_after", "rows_read", "rows_written", "served_by"}


@pytest.fixture
async def rt(tmp_path):
    async with Runtime.from_config(APP, persist_to=tmp_path / "state") as runtime:
        yield runtime


async def sql(rt, sql, *params, mode="all", **extra):
    resp = await rt.fetch("/", method="POST", json={"sql": sql, "params": list(params), "mode": mode, **extra})
    return resp.status, await resp.json()


async def test_worker_create_insert_select_shapes(rt):
    status, body = await sql(rt, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, flag BOOLEAN, data BLOB)", mode="run")
    assert status == 200
    run = body["result"]
    assert run["success"] is True and run["results"] == []
    assert META_KEYS <= set(run["meta"])
    assert run["meta"]["changed_db"] is True

    status, body = await sql(rt, "INSERT INTO t (name, flag) VALUES (?, ?), (?, ?) RETURNING id, name, flag",
                             "a", True, "b", False, mode="run")
    assert body["result"]["results"] == [{"id": 1, "name": "a", "flag": 1}, {"id": 2, "name": "b", "flag": 0}]
    meta = body["result"]["meta"]
    assert (meta["changes"], meta["last_row_id"], meta["rows_written"]) == (2, 2, 2)

    _, body = await sql(rt, "SELECT name FROM t ORDER BY id", mode="all")
    assert body["result"]["results"] == [{"name": "a"}, {"name": "b"}]
    assert body["result"]["meta"]["changed_db"] is False
    assert body["result"]["meta"]["rows_written"] == 0

    _, body = await sql(rt, "SELECT id, name FROM t ORDER BY id", mode="raw", columnNames=True)
    assert body["result"] == [["id", "name"], [1, "a"], [2, "b"]]
    _, body = await sql(rt, "SELECT name FROM t WHERE id = ?1", 2, mode="first", column="name")
    assert body["result"] == "b"
    _, body = await sql(rt, "SELECT name FROM t WHERE id = 99", mode="first")
    assert body["result"] is None


async def test_error_texts_reach_the_worker(rt):
    status, body = await sql(rt, "SELECT * FROM nope")
    assert status == 500
    assert body["error"] == "D1_ERROR: no such table: nope: SQLITE_ERROR"
    _, body = await sql(rt, "SELEC 1")
    assert body["error"] == 'D1_ERROR: near "SELEC": syntax error at offset 0: SQLITE_ERROR'


async def test_results_are_js_objects_and_blobs_are_byte_arrays(rt):
    db = rt.env.DB
    await db.prepare("CREATE TABLE b (k TEXT PRIMARY KEY, v BLOB, n REAL)").run()
    await db.prepare("INSERT INTO b VALUES (?, ?, ?)").bind("x", b"\x00\xff", 1.5).run()
    row = await db.prepare("SELECT * FROM b").first()
    assert isinstance(row, JsObject)
    assert row.k == "x" and row["v"] == [0, 255] and row.n == 1.5
    result = await db.prepare("SELECT * FROM b").all()
    assert isinstance(result, JsObject) and isinstance(result.meta, JsObject)
    # A list of byte values binds as a BLOB too, as an array of uint8 does in JS.
    await db.prepare("INSERT INTO b VALUES (?, ?, NULL)").bind("y", [1, 2, 3]).run()
    assert await db.prepare("SELECT typeof(v) AS t FROM b WHERE k = 'y'").first("t") == "blob"


async def test_bind_types(rt):
    db = rt.env.DB
    row = await db.prepare("SELECT ? AS n, ? AS t, ? AS f, ? AS i, ? AS r, typeof(?) AS b").bind(
        None, True, False, 7, 2.25, b"\x01").first()
    assert dict(row) == {"n": None, "t": 1, "f": 0, "i": 7, "r": 2.25, "b": "blob"}


@pytest.mark.parametrize(("value", "message"), [
    ({"a": 1}, "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'"),
    (["a", "b"], "D1_TYPE_ERROR: Type 'object' not supported for value 'a,b'"),
    (2**60, "D1_TYPE_ERROR: Type 'bigint' not supported for value '1152921504606846976'"),
])
async def test_bind_rejects_unsupported_types(rt, value, message):
    with pytest.raises(JsException) as info:
        rt.env.DB.prepare("SELECT ?").bind(value)
    assert str(info.value) == message


async def test_bind_returns_a_new_statement(rt):
    stmt = rt.env.DB.prepare("SELECT ? AS v")
    one, two = stmt.bind(1), stmt.bind(2)
    assert await one.first("v") == 1 and await two.first("v") == 2
    with pytest.raises(JsException) as info:
        await stmt.first()
    assert str(info.value) == f"D1_ERROR: {WRONG_BINDINGS}"


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT * FROM missing", "D1_ERROR: no such table: missing: SQLITE_ERROR"),
    ("SELECT nope FROM sqlite_master", "D1_ERROR: no such column: nope at offset 7: SQLITE_ERROR"),
    ("BEGIN TRANSACTION", f"D1_ERROR: {TRANSACTION_NOT_ALLOWED}"),
    ("SAVEPOINT sp", f"D1_ERROR: {TRANSACTION_NOT_ALLOWED}"),
    ("PRAGMA journal_mode=DELETE", "D1_ERROR: not authorized: SQLITE_AUTH"),
    ("CREATE TABLE _cf_mine (a)", "D1_ERROR: not authorized: SQLITE_AUTH"),
    ("   ", f"D1_ERROR: {NO_STATEMENTS}"),
])
async def test_error_texts(rt, query, message):
    with pytest.raises(JsException) as info:
        await rt.env.DB.prepare(query).all()
    assert str(info.value) == message
    assert str(info.value.cause) == message.split(": ", 1)[1]


async def test_constraint_error_and_column_not_found(rt):
    db = rt.env.DB
    await db.prepare("CREATE TABLE u (email TEXT UNIQUE)").run()
    await db.prepare("INSERT INTO u VALUES ('a@x')").run()
    with pytest.raises(JsException) as info:
        await db.prepare("INSERT INTO u VALUES ('a@x')").run()
    assert str(info.value) == "D1_ERROR: UNIQUE constraint failed: u.email: SQLITE_CONSTRAINT"
    with pytest.raises(JsException) as info:
        await db.prepare("SELECT email FROM u").first("nope")
    assert str(info.value) == "D1_COLUMN_NOTFOUND: Column not found (nope)"
    # No rows: no error even for an unknown column, as in workerd.
    assert await db.prepare("SELECT email FROM u WHERE 0").first("nope") is None


async def test_allowed_pragma_and_limits(rt):
    db = rt.env.DB
    await db.prepare("CREATE TABLE p (a INTEGER, b TEXT)").run()
    info = await db.prepare("PRAGMA table_info(p)").all()
    assert [r["name"] for r in info["results"]] == ["a", "b"]
    many = ", ".join("?" for _ in range(101))
    with pytest.raises(JsException) as err:
        await db.prepare(f"SELECT {many}").bind(*range(101)).all()
    assert str(err.value).startswith("D1_ERROR: too many SQL variables")


async def test_batch_is_all_or_nothing(rt):
    db = rt.env.DB
    await db.prepare("CREATE TABLE k (v INTEGER)").run()
    results = await db.batch([db.prepare("INSERT INTO k VALUES (?)").bind(1), db.prepare("SELECT count(*) AS c FROM k")])
    assert [r["success"] for r in results] == [True, True]
    assert results[1]["results"] == [{"c": 1}]
    with pytest.raises(JsException) as info:
        await db.batch([
            db.prepare("INSERT INTO k VALUES (2)"),
            db.prepare("INSERT INTO k VALUES (3)"),
            db.prepare("INSERT INTO missing VALUES (4)"),
        ])
    assert str(info.value) == "D1_ERROR: no such table: missing: SQLITE_ERROR"
    assert await db.prepare("SELECT group_concat(v) AS vs FROM k").first("vs") == "1"
    with pytest.raises(JsException) as info:
        await db.batch([])
    assert str(info.value) == f"D1_ERROR: {NO_STATEMENTS}"


async def test_exec_counts_lines_and_reports_the_failing_line(rt):
    db = rt.env.DB
    result = await db.exec("CREATE TABLE e (v);\nINSERT INTO e VALUES (1);\n\n-- a comment\nINSERT INTO e VALUES (2); INSERT INTO e VALUES (3)")
    assert result["count"] == 3 and result["duration"] >= 0
    assert await db.prepare("SELECT count(*) AS c FROM e").first("c") == 3
    with pytest.raises(JsException) as info:
        await db.exec("INSERT INTO e VALUES (4);\nINSERT INTO nope VALUES (5);")
    assert str(info.value) == (
        "D1_EXEC_ERROR: Error in line 2: INSERT INTO nope VALUES (5);: no such table: nope: SQLITE_ERROR")
    assert await db.prepare("SELECT count(*) AS c FROM e").first("c") == 3  # the failed exec rolled back


async def test_multiple_statements_in_prepare_return_the_last(rt):
    db = rt.env.DB
    result = await db.prepare("CREATE TABLE m (v); INSERT INTO m VALUES (1); SELECT v FROM m").all()
    assert result["results"] == [{"v": 1}]
    assert await db.prepare("INSERT INTO m VALUES (2); SELECT max(v) AS v FROM m WHERE v < ?").bind(9).first("v") == 2
    with pytest.raises(JsException) as info:
        await db.prepare("INSERT INTO m VALUES (?); SELECT 1").bind(3).all()
    assert str(info.value) == f"D1_ERROR: {PARAMS_ONLY_LAST}"
    assert await db.prepare("SELECT count(*) AS c FROM m").first("c") == 2  # nothing of it stayed


async def test_with_session_and_dump(rt):
    db = rt.env.DB
    session = db.withSession()
    assert session.getBookmark() is None
    await session.prepare("CREATE TABLE s (v)").run()
    first = session.getBookmark()
    await session.batch([session.prepare("INSERT INTO s VALUES (1)")])
    assert first is not None and session.getBookmark() > first
    assert (await db.dump())[:16] == b"SQLite format 3\x00"


async def test_persists_across_close_and_crash(tmp_path):
    state = tmp_path / "state"
    async with Runtime.from_config(APP, persist_to=state) as rt:
        await rt.env.DB.prepare("CREATE TABLE d (v)").run()
        await rt.env.DB.prepare("INSERT INTO d VALUES (1)").run()
    async with Runtime.from_config(APP, persist_to=state) as rt:
        assert await rt.env.DB.prepare("SELECT v FROM d").first("v") == 1
        await rt.env.DB.prepare("INSERT INTO d VALUES (2)").run()
        await rt.crash()
        await rt.restart()
        assert await rt.env.DB.prepare("SELECT count(*) AS c FROM d").first("c") == 2
    assert (state / "d1" / "app-db-id.sqlite").is_file()


async def test_migrations_python_api(rt):
    service = rt.service("d1")
    assert [m.name for m in service.pending_migrations("DB")] == ["0001_users.sql", "0002_posts.sql"]
    applied = await service.apply_migrations("app-db")
    assert [m.name for m in applied] == ["0001_users.sql", "0002_posts.sql"]
    assert await service.apply_migrations("DB") == []
    rows = await rt.env.DB.prepare("SELECT id, name, applied_at FROM d1_migrations ORDER BY id").all()
    assert [r["name"] for r in rows["results"]] == ["0001_users.sql", "0002_posts.sql"]
    assert await rt.env.DB.prepare("SELECT name FROM users").first("name") == "alice"
    # D1 enforces foreign keys.
    with pytest.raises(JsException) as info:
        await rt.env.DB.prepare("INSERT INTO posts (user_id, body) VALUES (42, 'x')").run()
    assert str(info.value) == "D1_ERROR: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"


async def test_raw_column_names_without_rows_and_positional_options(rt):
    db = rt.env.DB
    await db.prepare("CREATE TABLE r (a INTEGER, b TEXT)").run()
    assert await db.prepare("SELECT a, b FROM r").raw(columnNames=True) == [["a", "b"]]
    assert await db.prepare("SELECT a, b FROM r").raw({"columnNames": True}) == [["a", "b"]]
    assert await db.prepare("SELECT a, b FROM r").raw() == []
    # Looking up column names must not loosen D1's rules.
    with pytest.raises(JsException) as info:
        await db.prepare("BEGIN").run()
    assert str(info.value) == f"D1_ERROR: {TRANSACTION_NOT_ALLOWED}"


async def test_standalone_use_without_a_worker(tmp_path):
    from cfemu.d1 import D1Database, D1Storage

    storage = D1Storage(tmp_path / "standalone.sqlite")
    db = D1Database(storage)
    await db.exec("CREATE TABLE s (v TEXT)")
    await db.prepare("INSERT INTO s VALUES (?)").bind("hi").run()
    assert await db.prepare("SELECT v FROM s").first("v") == "hi"
    storage.close()
