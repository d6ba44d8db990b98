"""Opening the SQLite files bindings keep their state in, with one commit policy.

WAL with `synchronous=NORMAL` by default: a commit that has returned survives `kill -9` of the
process (FULL adds power-loss safety at a large cost).  Connections are in autocommit mode; code
that needs a multi-statement transaction says BEGIN/COMMIT itself.

`secure_delete` is on: deleted rows are overwritten rather than left in free pages, so once a file
is closed (the last connection checkpoints and removes the WAL) nothing deleted can be read back
from the state directory.  An app that erases a user's data can rely on it being gone from disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import apsw

__all__ = ["open_sqlite3", "open_apsw", "check_synchronous", "SYNCHRONOUS_LEVELS", "BUSY_TIMEOUT_MS"]

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_MS = 5000  # the CLI may open a file a running server holds


def check_synchronous(synchronous: str) -> str:
    """The PRAGMA synchronous level named (any case), upper-cased; ValueError for an unknown one."""
    level = synchronous.upper()
    if level not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {synchronous!r}")
    return level


def open_sqlite3(path: str | Path | None, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A `sqlite3` connection (None: in memory) in autocommit mode, usable from the loop's thread."""
    level = check_synchronous(synchronous)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None, check_same_thread=False)
    if path is not None:
        db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={level}")
    db.execute("PRAGMA secure_delete=ON")
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return db


def open_apsw(path: str | Path, *, synchronous: str = "NORMAL") -> apsw.Connection:
    """An `apsw` connection (several statements per call, authorizers, limits) with the same policy."""
    level = check_synchronous(synchronous)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={level}")
    conn.execute("PRAGMA secure_delete=ON")
    return conn
