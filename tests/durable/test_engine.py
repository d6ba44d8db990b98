"""StorageEngine: implicit transactions, coalesced commits, durability, fault injection, alarm."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import apsw
import pytest

from cfemu.durable import errors as E
from cfemu.durable.engine import StorageEngine
from cfemu.errors import JsException


class Dirty:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def path(tmp_path):
    return tmp_path / "objects" / "abc.sqlite"


@pytest.fixture
def dirty():
    return Dirty()


@pytest.fixture
def engine(path, dirty):
    eng = StorageEngine(path, on_dirty=dirty)
    yield eng
    eng.close()


def keys(engine):
    return [k for k, _ in engine.kv_list("", None, None, False)]


def test_creates_directories_wal_and_synchronous(path, dirty):
    eng = StorageEngine(path, on_dirty=dirty, synchronous="FULL")
    try:
        assert path.exists()
        assert eng.execute_trusted("PRAGMA journal_mode") == [("wal",)]
        assert eng.execute_trusted("PRAGMA synchronous") == [(2,)]
    finally:
        eng.close()
    eng = StorageEngine(path, on_dirty=dirty)
    try:
        assert eng.execute_trusted("PRAGMA synchronous") == [(1,)]
    finally:
        eng.close()
    with pytest.raises(ValueError):
        StorageEngine(path, on_dirty=dirty, synchronous="SOMETIMES")


def test_writes_coalesce_into_one_transaction(engine, dirty):
    assert not engine.in_transaction
    assert engine.kv_get("a") is None
    assert not engine.in_transaction, "reads must not open a transaction"
    for i in range(50):
        engine.kv_put(f"k{i:02}", b"v")
    engine.kv_delete("k00")
    engine.set_alarm(123)
    assert dirty.calls == 1
    assert engine.in_transaction
    assert engine.kv_get("k01") == b"v", "reads inside the transaction see its writes"
    assert engine.commit() is True
    assert not engine.in_transaction
    engine.kv_put("x", b"1")
    assert dirty.calls == 2
    engine.commit()
    assert engine.commit() is True, "commit with nothing open is a no-op"
    assert dirty.calls == 2


def test_rollback_discards_the_open_transaction(engine):
    engine.kv_put("kept", b"1")
    engine.commit()
    engine.kv_put("lost", b"2")
    engine.kv_delete("kept")
    engine.rollback()
    assert not engine.in_transaction
    assert keys(engine) == ["kept"]


def test_uncommitted_writes_are_lost_on_close_and_committed_ones_survive(path, dirty):
    eng = StorageEngine(path, on_dirty=dirty)
    eng.kv_put("committed", b"1")
    eng.set_alarm(1000)
    eng.commit()
    eng.kv_put("uncommitted", b"2")
    eng.set_alarm(2000)
    eng.close()
    eng = StorageEngine(path, on_dirty=dirty)
    try:
        assert keys(eng) == ["committed"]
        assert eng.get_alarm() == 1000
    finally:
        eng.close()


def test_committed_writes_survive_a_killed_process(path):
    # The child commits, starts another write and dies without closing anything (like kill -9).
    code = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from cfemu.durable.engine import StorageEngine
        eng = StorageEngine(Path({str(path)!r}), on_dirty=lambda: None)
        for i in range(20):
            eng.kv_put(f"k{{i:02}}", b"x")
            eng.commit()
        eng.kv_put("never", b"y")
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    eng = StorageEngine(path, on_dirty=lambda: None)
    try:
        assert keys(eng) == [f"k{i:02}" for i in range(20)]
    finally:
        eng.close()


def test_fail_next_commit_rolls_back_and_raises(engine, dirty):
    engine.kv_put("a", b"1")
    engine.commit()
    engine.fail_next_commit()
    assert engine.commit() is True, "nothing open: the fault waits for a real commit"
    engine.kv_put("b", b"2")
    engine.set_alarm(5)
    with pytest.raises(JsException) as info:
        engine.commit()
    assert str(info.value) == E.STORAGE_RESET
    assert str(info.value) == "Internal error in Durable Object storage caused object to be reset."
    assert not engine.in_transaction
    assert keys(engine) == ["a"]
    assert engine.get_alarm() is None
    engine.kv_put("c", b"3")
    assert engine.commit() is True
    assert keys(engine) == ["a", "c"]


def test_alarm_is_stored_in_the_object_file(path, dirty):
    eng = StorageEngine(path, on_dirty=dirty)
    assert eng.get_alarm() is None
    eng.set_alarm(1_700_000_000_123)
    assert eng.get_alarm() == 1_700_000_000_123
    eng.commit()
    eng.set_alarm(None)
    assert eng.get_alarm() is None
    eng.rollback()
    assert eng.get_alarm() == 1_700_000_000_123
    eng.close()
    with apsw.Connection(str(path)) as raw:
        assert raw.execute("SELECT value FROM _cf_METADATA WHERE key = 'alarm'").fetchall() == [(1_700_000_000_123,)]


def test_commit_is_deferred_while_a_savepoint_is_open(engine, dirty):
    engine.kv_put("before", b"1")
    name = engine.savepoint()
    engine.kv_put("inside", b"2")
    assert engine.commit() is False, "half a transaction must not become durable"
    assert engine.in_transaction
    calls = dirty.calls
    engine.release(name)
    assert dirty.calls == calls + 1, "the owed commit is asked for again"
    assert engine.commit() is True
    assert keys(engine) == ["before", "inside"]


def test_savepoint_rollback_keeps_the_outer_writes(engine):
    engine.kv_put("outer", b"1")
    outer = engine.savepoint()
    engine.kv_put("a", b"1")
    inner = engine.savepoint()
    engine.kv_put("b", b"1")
    engine.rollback_to(inner)
    engine.release(outer)
    engine.commit()
    assert keys(engine) == ["a", "outer"]


def test_deferred_foreign_key_violation_at_commit_resets(engine):
    db = engine.connection
    db.execute("CREATE TABLE p(id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE c(pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
    engine.commit()
    db.execute("PRAGMA foreign_keys = ON")
    engine.begin_write()
    db.execute("INSERT INTO c VALUES (42)")
    with pytest.raises(JsException) as info:
        engine.commit()
    assert str(info.value) == (
        "Durable Object was reset and rolled back to its last known good state because the application "
        "left the database in a state where constraints were violated: FOREIGN KEY constraint failed: "
        "SQLITE_CONSTRAINT")
    assert db.execute("SELECT count(*) FROM c").fetchall() == [(0,)]


def test_database_size_counts_used_pages(engine):
    empty = engine.database_size
    assert empty > 0 and empty % 4096 == 0
    for i in range(200):
        engine.kv_put(f"k{i}", b"x" * 1000)
    engine.commit()
    assert engine.database_size > empty + 150_000


def test_using_a_closed_engine_raises_a_clear_error(engine):
    engine.kv_put("a", b"1")
    engine.close()
    assert engine.closed
    for call in (lambda: engine.kv_get("a"), lambda: engine.kv_put("a", b"1"), engine.commit,
                 lambda: engine.set_alarm(1), lambda: engine.database_size):
        with pytest.raises(JsException) as info:
            call()
        assert str(info.value) == E.STORAGE_CLOSED
    engine.rollback()
    engine.close()


def test_user_statements_cannot_reuse_cached_internal_statements(engine):
    engine.kv_put("secret", b"1")
    engine.kv_get("secret")
    db = engine.connection
    # The same SQL text without cfemu's nonce: prepared afresh, so the authorizer sees it.
    with pytest.raises(apsw.AuthError):
        db.execute("SELECT value FROM _cf_KV WHERE key = ?", ("secret",)).fetchall()
    assert engine.execute_trusted("SELECT count(*) FROM _cf_KV") == [(1,)]
    # Internal transaction control is cached too, but never under the text a user can type.
    engine.commit()
    engine.kv_put("x", b"1")
    with pytest.raises(JsException):
        db.execute("COMMIT")
    with pytest.raises(JsException):
        db.execute("ROLLBACK")
    with pytest.raises(apsw.AuthError):
        db.execute("PRAGMA journal_mode=WAL")
