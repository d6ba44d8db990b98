"""The SQLite files bindings keep state in: deleted data does not stay readable on disk."""

from __future__ import annotations

import pytest

from cfemu.sqlite import open_apsw, open_sqlite3

SECRET = "a-secret-that-was-deleted-7f3a"


def _connect(kind, path):
    if kind == "sqlite3":
        return open_sqlite3(path)
    conn = open_apsw(path)
    return conn


@pytest.mark.parametrize("kind", ["sqlite3", "apsw"])
def test_deleted_rows_leave_no_bytes_in_the_files_once_closed(tmp_path, kind):
    path = tmp_path / "state.sqlite"
    db = _connect(kind, path)
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    for i in range(200):  # enough rows to span pages, so freed pages exist after the delete
        db.execute("INSERT INTO t VALUES (?, ?)", (f"k{i}", f"{SECRET}-{i}" * 4))
    db.execute("INSERT INTO t VALUES ('keep', 'still here')")
    db.execute("DELETE FROM t WHERE k != 'keep'")
    db.close()
    leftovers = [p.name for p in tmp_path.iterdir() if SECRET.encode() in p.read_bytes()]
    assert leftovers == []
    db = _connect(kind, path)
    assert list(db.execute("SELECT v FROM t")) == [("still here",)]
    db.close()
