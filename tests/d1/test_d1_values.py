"""Values crossing D1's JSON boundary as production's do (workerd's d1-api.ts JSON-encodes params and
parses results into JS numbers, which Pyodide hands to Python)."""

from __future__ import annotations

import math

import pytest

from cfemu.d1 import D1Database, D1Storage
from cfemu.errors import JsException


@pytest.fixture
async def db(tmp_path):
    storage = D1Storage(tmp_path / "values.sqlite")
    yield D1Database(storage)
    storage.close()


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
async def test_non_finite_floats_bind_as_null(db, value):
    # JSON.stringify(Infinity) and JSON.stringify(NaN) are both "null".
    row = await db.prepare("SELECT ? AS v, typeof(?) AS t").bind(value, value).first()
    assert dict(row) == {"v": None, "t": "null"}


async def test_integers_beyond_2_53_come_back_as_js_numbers_do(db):
    # A JS number cannot hold 2**63 - 1: the result is the nearest double, an integer-valued float
    # that Pyodide turns into a Python int.
    row = await db.prepare("SELECT 9223372036854775807 AS big, -9007199254740993 AS neg, 9007199254740991 AS safe").first()
    assert dict(row) == {"big": 9223372036854775808, "neg": -9007199254740992, "safe": 9007199254740991}
    assert type(row["big"]) is int
    raw = await db.prepare("SELECT 9223372036854775807").raw()
    assert raw == [[9223372036854775808]]


async def test_whole_reals_come_back_as_ints(db):
    # SQLite REAL 2.0 crosses as the JS number 2, which Pyodide converts to the int 2.
    row = await db.prepare("SELECT 2.0 AS whole, 2.5 AS half").first()
    assert dict(row) == {"whole": 2, "half": 2.5}
    assert type(row["whole"]) is int and type(row["half"]) is float


async def test_column_not_found_cause_is_the_bare_text(db):
    with pytest.raises(JsException) as info:
        await db.prepare("SELECT 1 AS a").first("b")
    assert str(info.value) == "D1_COLUMN_NOTFOUND: Column not found (b)"
    assert str(info.value.cause) == "Column not found"


async def test_raw_column_names_of_the_last_statement_after_a_schema_change(db):
    # The column names come from the statement that ran, even when its SQL cannot be prepared again.
    assert await db.prepare("CREATE TABLE x (a INTEGER, b TEXT); SELECT a, b FROM x").raw(columnNames=True) == [["a", "b"]]


async def test_exec_splits_on_newlines_like_workerd(db):
    # workerd's exec() sends each line as its own query, so a statement spread over lines fails.
    with pytest.raises(JsException) as info:
        await db.exec("CREATE TABLE users (\n  id INTEGER\n)")
    assert str(info.value) == "D1_EXEC_ERROR: Error in line 1: CREATE TABLE users (: incomplete input: SQLITE_ERROR"
    assert (await db.exec("CREATE TABLE users (id INTEGER);\nINSERT INTO users VALUES (1)"))["count"] == 2


async def test_statement_longer_than_100_kb_is_sqlites_statement_too_long(db):
    # SQLite's own text for SQLITE_LIMIT_SQL_LENGTH (what workerd's prepare reports), counted in UTF-8 bytes.
    with pytest.raises(JsException) as info:
        await db.prepare("SELECT '" + "x" * 100_000 + "'").all()
    assert str(info.value) == "D1_ERROR: statement too long: SQLITE_TOOBIG"
    with pytest.raises(JsException) as info:
        await db.batch([db.prepare("SELECT 1"), db.prepare("SELECT '" + "é" * 50_000 + "'")])
    assert str(info.value) == "D1_ERROR: statement too long: SQLITE_TOOBIG"
    exactly = "SELECT '" + "x" * (100_000 - 9) + "'"
    assert len(exactly) == 100_000
    assert len((await db.prepare(exactly).raw())[0][0]) == 100_000 - 9
