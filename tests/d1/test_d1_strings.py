"""Strings reach D1 as workerd sends them: a lone surrogate (which Python strings can hold and JS strings
too) becomes U+FFFD in SQL text and bound values, instead of a Python UnicodeEncodeError."""

from __future__ import annotations

import pytest

from cfemu.d1 import D1Database, D1Storage


@pytest.fixture
async def db(tmp_path):
    storage = D1Storage(tmp_path / "s.sqlite")
    yield D1Database(storage)
    storage.close()


async def test_lone_surrogates_in_bindings_and_sql(db):
    await db.exec("CREATE TABLE t (v TEXT)")
    await db.prepare("INSERT INTO t VALUES (?)").bind("a\ud800b").run()
    await db.prepare("INSERT INTO t VALUES ('c\udc00')").run()
    await db.exec("INSERT INTO t VALUES ('d\ud800')")
    rows = (await db.prepare("SELECT v FROM t ORDER BY rowid").all())["results"]
    assert [r["v"] for r in rows] == ["a\ufffdb", "c\ufffd", "d\ufffd"]
    assert await db.prepare("SELECT count(*) AS n FROM t WHERE v = ?").bind("a\udfffb").first("n") == 1
    results = await db.batch([db.prepare("SELECT ? AS v").bind("\ud83d\ude00")])
    assert results[0]["results"] == [{"v": "\U0001F600"}]


async def test_exec_and_with_session_of_a_non_string_are_type_errors(db):
    from cfemu.errors import JsTypeError

    for call, method in [(lambda: db.exec(5), "exec"), (lambda: db.exec(None), "exec"),
                         (lambda: db.withSession(5), "withSession")]:
        with pytest.raises(JsTypeError) as info:
            result = call()
            if hasattr(result, "__await__"):
                await result
        assert str(info.value) == f"Failed to execute '{method}' on 'D1Database': parameter 1 is not of type 'string'."
