"""ctx.storage.sql: exec, cursors, the authorizer's refusals, limits, bindings, transactions."""

from __future__ import annotations

import pytest

from cfemu.durable import errors as E
from cfemu.durable.engine import StorageEngine
from cfemu.durable.storage import DurableObjectStorage
from cfemu.errors import JsException, JsTypeError


class Obj:
    def __init__(self, tmp_path, sqlite_backed=True):
        self.dirty = 0
        self.engine = StorageEngine(tmp_path / "o.sqlite", on_dirty=self._dirty)
        self.storage = DurableObjectStorage(self.engine, sqlite_backed=sqlite_backed)
        self.sql = self.storage.sql

    def _dirty(self):
        self.dirty += 1


@pytest.fixture
def o(tmp_path):
    obj = Obj(tmp_path)
    obj.sql.exec("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
    obj.sql.exec("INSERT INTO users(name, score) VALUES ('ann', 1.5), ('bob', 2.0), ('cy', NULL)")
    obj.engine.commit()
    yield obj
    obj.engine.close()


def error(call) -> str:
    with pytest.raises(JsException) as info:
        call()
    return str(info.value)


# --- exec and cursors ----------------------------------------------------------------------------

def test_multi_statement_exec_returns_the_last_cursor(o):
    cur = o.sql.exec("INSERT INTO users(name) VALUES ('dee'); SELECT name FROM users WHERE id > ? ORDER BY id", 2)
    assert cur.columnNames == ["name"]
    assert [r["name"] for r in cur] == ["cy", "dee"]


def test_to_array_one_raw_next(o):
    sql = o.sql
    rows = sql.exec("SELECT id, name, score FROM users ORDER BY id").toArray()
    assert rows == [{"id": 1, "name": "ann", "score": 1.5}, {"id": 2, "name": "bob", "score": 2.0},
                    {"id": 3, "name": "cy", "score": None}]
    assert rows[0].name == "ann"
    assert sql.exec("SELECT name FROM users WHERE id = ?", 2).one() == {"name": "bob"}
    assert list(sql.exec("SELECT id, name FROM users ORDER BY id").raw()) == [[1, "ann"], [2, "bob"], [3, "cy"]]
    cur = sql.exec("SELECT id FROM users WHERE id <= 2 ORDER BY id")
    assert cur.next() == {"done": False, "value": {"id": 1}}
    assert cur.next().value == {"id": 2}
    assert cur.next() == {"done": True, "value": None}
    cur = sql.exec("SELECT id FROM users ORDER BY id")
    assert next(cur) == {"id": 1}
    assert cur.raw().next().value == [2]
    assert cur.toArray() == [{"id": 3}]
    assert cur.toArray() == []


def test_one_requires_exactly_one_row(o):
    assert error(lambda: o.sql.exec("SELECT * FROM users WHERE id = 99").one()) == \
        "Expected exactly one result from SQL query, but got no results."
    assert error(lambda: o.sql.exec("SELECT * FROM users").one()) == \
        "Expected exactly one result from SQL query, but got multiple results."


def test_column_names_and_duplicates(o):
    cur = o.sql.exec("SELECT 1 AS a, 2 AS a, 'x' AS b")
    assert cur.columnNames == ["a", "a", "b"]
    assert cur.one() == {"a": 2, "b": "x"}
    assert o.sql.exec("INSERT INTO users(name) VALUES ('e')").columnNames == []


def test_rows_read_and_written(o):
    cur = o.sql.exec("UPDATE users SET score = 0 WHERE id <= 2")
    assert cur.rowsWritten == 2 and cur.rowsRead >= 2
    cur = o.sql.exec("SELECT * FROM users")
    assert cur.rowsRead == 3 and cur.rowsWritten == 0
    cur = o.sql.exec("INSERT INTO users(name) VALUES ('a'), ('b') RETURNING id")
    assert cur.rowsWritten == 2 and len(cur.toArray()) == 2


def test_value_types_and_bindings(o):
    sql = o.sql
    sql.exec("CREATE TABLE v(x)")
    for value in (None, 7, -(2**63), 2**63 - 1, 2.5, "text", b"\x00\xff", bytearray(b"ab"), memoryview(b"cd")):
        sql.exec("DELETE FROM v")
        sql.exec("INSERT INTO v VALUES (?)", value)
        expected = bytes(value) if isinstance(value, (bytearray, memoryview)) else value
        assert sql.exec("SELECT x FROM v").one()["x"] == expected
    # workerd binds a JS boolean as its string (workers-sdk #9964).
    sql.exec("DELETE FROM v")
    sql.exec("INSERT INTO v VALUES (?), (?)", True, False)
    assert [r["x"] for r in sql.exec("SELECT x FROM v")] == ["true", "false"]


@pytest.mark.parametrize("bad", [(1, 2), [1], {"a": 1}, object(), {1}])
def test_unbindable_values_are_type_errors(o, bad):
    with pytest.raises(JsTypeError) as info:
        o.sql.exec("SELECT ?", bad)
    assert str(info.value) == E.SQL_BAD_BINDING.format(index=1, type=type(bad).__name__)
    with pytest.raises(TypeError):
        o.sql.exec("SELECT ?", 2**64)


def test_binding_errors(o):
    assert error(lambda: o.sql.exec("SELECT ?; SELECT ?", 1, 2)) == (
        "When executing multiple SQL statements in a single call, only the last statement can have parameters.")
    assert error(lambda: o.sql.exec("SELECT ?, ?", 1)) == "Wrong number of parameter bindings for SQL query."
    assert error(lambda: o.sql.exec("SELECT 1", 1)) == "Wrong number of parameter bindings for SQL query."


def test_statement_splitting_respects_strings_comments_and_triggers(o):
    sql = o.sql
    sql.exec("""
        CREATE TABLE log(msg TEXT);
        -- a comment; with a semicolon
        CREATE TRIGGER t_ins AFTER INSERT ON users BEGIN
            INSERT INTO log VALUES ('added; ' || new.name);
            INSERT INTO log VALUES ('second');
        END;
        /* block; comment */
        INSERT INTO users(name) VALUES ('semi;colon');
    """)
    assert [r["msg"] for r in sql.exec("SELECT msg FROM log")] == ["added; semi;colon", "second"]
    assert sql.exec("SELECT 1 AS one; -- trailing comment").one() == {"one": 1}
    assert sql.exec("SELECT 2 AS two;;  ").one() == {"two": 2}
    for blank in ("", "   ", "-- nothing", ";"):
        assert error(lambda: sql.exec(blank)) == "SQL code did not contain a statement."


def test_sqlite_errors_use_workerds_format(o):
    assert error(lambda: o.sql.exec("SELEC 1")) == 'near "SELEC": syntax error at offset 0: SQLITE_ERROR'
    assert error(lambda: o.sql.exec("SELECT * FROM nope")) == "no such table: nope: SQLITE_ERROR"
    assert error(lambda: o.sql.exec("SELECT nope FROM users")) == "no such column: nope at offset 7: SQLITE_ERROR"
    o.sql.exec("CREATE TABLE u(x UNIQUE)")
    o.sql.exec("INSERT INTO u VALUES (1)")
    assert error(lambda: o.sql.exec("INSERT INTO u VALUES (1)")) == "UNIQUE constraint failed: u.x: SQLITE_CONSTRAINT"


# --- the authorizer ------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "BEGIN", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT sp", "RELEASE sp", "ROLLBACK TO sp",
    "SELECT 1; BEGIN",
])
def test_transaction_statements_are_refused(o, statement):
    assert error(lambda: o.sql.exec(statement)) == E.SQL_USE_TRANSACTION_API


@pytest.mark.parametrize("statement", [
    "SELECT * FROM _cf_KV",
    "SELECT key FROM _CF_kv",
    "SELECT count(*) FROM _cf_METADATA",
    "INSERT INTO _cf_KV VALUES ('k', x'00')",
    "DELETE FROM _cf_KV",
    "UPDATE _cf_KV SET value = NULL",
    "DROP TABLE _cf_KV",
    "CREATE TABLE _cf_mine(x)",
    "CREATE TABLE _CF_Mine(x)",
    "CREATE INDEX i ON _cf_KV(value)",
    "CREATE INDEX _cf_idx ON users(name)",
    "CREATE TRIGGER tr AFTER INSERT ON _cf_KV BEGIN SELECT 1; END",
    "ALTER TABLE _cf_KV ADD COLUMN y",
    "PRAGMA table_info(_cf_KV)",
    "PRAGMA index_list(_cf_KV)",
    "CREATE VIEW v AS SELECT * FROM _cf_KV; SELECT * FROM v",
    "ATTACH DATABASE 'other.sqlite' AS other",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA synchronous = OFF",
    "PRAGMA writable_schema = 1",
    "PRAGMA foreign_keys = maybe",
    "CREATE TEMP TABLE t(x)",
    "SELECT sqlite_version()",
    "SELECT load_extension('x')",
])
def test_forbidden_statements_are_refused_and_change_nothing(o, statement):
    before = o.sql.exec("SELECT name FROM sqlite_schema WHERE name != 'v' ORDER BY name").toArray()
    message = error(lambda: o.sql.exec(statement))
    assert message.endswith(("SQLITE_AUTH", "SQLITE_ERROR")), message
    assert "not authorized" in message or "prohibited" in message, message
    assert o.sql.exec("SELECT name FROM sqlite_schema WHERE name != 'v' ORDER BY name").toArray() == before


def test_denied_table_read_message(o):
    assert error(lambda: o.sql.exec("SELECT * FROM _cf_KV")) == "access to _cf_KV.key is prohibited: SQLITE_AUTH"
    assert error(lambda: o.sql.exec("PRAGMA journal_mode")) == "not authorized: SQLITE_AUTH"


@pytest.mark.parametrize("statement", [
    "PRAGMA table_info(users)", "PRAGMA table_list", "PRAGMA foreign_keys = ON", "PRAGMA foreign_keys",
    "PRAGMA data_version", "PRAGMA index_list(users)", "PRAGMA quick_check", "PRAGMA optimize",
    "SELECT name FROM sqlite_schema", "SELECT json_extract('{\"a\":1}', '$.a')",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT x FROM c",
    "CREATE VIRTUAL TABLE docs USING fts5(body)",
    "SELECT datetime('now'), upper('x'), coalesce(NULL, 1), count(*) FROM users",
])
def test_allowed_statements(o, statement):
    o.sql.exec(statement).toArray()


def test_user_cannot_reach_kv_data_through_sql(o):
    o.storage.kv.put("secret", "value")
    o.storage.kv.get("secret")
    message = error(lambda: o.sql.exec("SELECT value FROM _cf_KV WHERE key = ?", "secret"))
    assert message == "access to _cf_KV.value is prohibited: SQLITE_AUTH"


# --- limits --------------------------------------------------------------------------------------

def test_statement_length_limit(o):
    o.sql.exec("SELECT 1" + " " * (100_000 - 8))
    assert error(lambda: o.sql.exec("SELECT 1" + " " * 100_000)) == "statement too long: SQLITE_TOOBIG"


def test_bound_parameter_limit(o):
    hundred = ", ".join("?" * 100)
    assert o.sql.exec(f"SELECT {hundred}", *range(100)).raw().toArray() == [list(range(100))]
    many = ", ".join("?" * 101)
    assert error(lambda: o.sql.exec(f"SELECT {many}", *range(101))).startswith("too many SQL variables")


def test_string_and_row_size_limits(o):
    o.sql.exec("CREATE TABLE big(b)")
    o.sql.exec("INSERT INTO big VALUES (?)", b"x" * 2_000_000)
    assert error(lambda: o.sql.exec("INSERT INTO big VALUES (?)", b"x" * 2_300_000)) == \
        "string or blob too big: SQLITE_TOOBIG"
    assert error(lambda: o.sql.exec("SELECT zeroblob(3000000)")) == "string or blob too big: SQLITE_TOOBIG"


def test_column_limit(o):
    cols = ", ".join(f"c{i}" for i in range(101))
    assert error(lambda: o.sql.exec(f"CREATE TABLE wide({cols})")).startswith("too many columns")


# --- transactions and the implicit transaction ---------------------------------------------------

def test_reads_do_not_open_a_transaction_but_writes_do(o):
    before = o.dirty
    o.sql.exec("SELECT * FROM users").toArray()
    o.sql.exec("PRAGMA table_info(users)").toArray()
    assert o.dirty == before and not o.engine.in_transaction
    o.sql.exec("INSERT INTO users(name) VALUES ('z')")
    o.sql.exec("UPDATE users SET name = 'zz' WHERE name = 'z'")
    o.sql.exec("CREATE TABLE more(x)")
    assert o.dirty == before + 1 and o.engine.in_transaction


def test_uncommitted_sql_writes_are_lost_and_committed_survive(tmp_path):
    obj = Obj(tmp_path)
    obj.sql.exec("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
    obj.engine.commit()
    obj.sql.exec("INSERT INTO t VALUES (2); CREATE TABLE gone(y)")
    obj.engine.close()
    obj = Obj(tmp_path)
    try:
        assert obj.sql.exec("SELECT x FROM t").raw().toArray() == [[1]]
        assert obj.sql.exec("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'gone'").one().n == 0
    finally:
        obj.engine.close()


def test_failed_commit_rolls_back_sql(o):
    o.sql.exec("DELETE FROM users")
    o.engine.fail_next_commit()
    with pytest.raises(JsException):
        o.engine.commit()
    assert len(o.sql.exec("SELECT * FROM users").toArray()) == 3


async def test_sql_inside_storage_transaction_rolls_back(o):
    async def closure(txn):
        txn.sql.exec("INSERT INTO users(name) VALUES ('txn')")
        await txn.put("k", 1)
        raise RuntimeError()

    with pytest.raises(RuntimeError):
        await o.storage.transaction(closure)
    assert o.sql.exec("SELECT count(*) AS n FROM users").one().n == 3
    assert await o.storage.get("k") is None


async def test_delete_all_drops_user_tables(o):
    o.sql.exec("CREATE VIEW names AS SELECT name FROM users; CREATE INDEX ix ON users(name)")
    o.sql.exec("CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, p INTEGER REFERENCES users(id))")
    o.sql.exec("INSERT INTO seq(p) VALUES (1)")
    o.sql.exec("CREATE VIRTUAL TABLE docs USING fts5(body)")
    await o.storage.put("k", 1)
    o.engine.commit()
    await o.storage.deleteAll()
    o.engine.commit()
    assert o.sql.exec("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite%' AND name NOT LIKE '\\_cf\\_%' "
                      "ESCAPE '\\'").raw().toArray() == []
    assert await o.storage.list() == {}
    o.sql.exec("CREATE TABLE users(x)")


def test_database_size(o):
    size = o.sql.databaseSize
    assert size > 0
    o.sql.exec("CREATE TABLE blobs(b); INSERT INTO blobs VALUES (zeroblob(500000))")
    assert o.sql.databaseSize > size + 400_000


def test_kv_backed_class_has_no_sql(tmp_path):
    obj = Obj(tmp_path, sqlite_backed=False)
    try:
        sql = obj.storage.sql
        assert error(lambda: sql.exec("SELECT 1")) == E.SQL_NOT_ENABLED
        assert error(lambda: sql.databaseSize) == E.SQL_NOT_ENABLED
        assert E.SQL_NOT_ENABLED.startswith(
            "SQL is not enabled for this Durable Object class. To enable it, change `new_classes` to "
            "`new_sqlite_classes` within the 'migrations' field in your wrangler.jsonc or wrangler.toml file.")
    finally:
        obj.engine.close()


def test_query_must_be_a_string(o):
    with pytest.raises(TypeError):
        o.sql.exec(b"SELECT 1")
