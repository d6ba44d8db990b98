"""The queue broker's SQLite file: every message not yet acked, and per-queue counters.

One file holds all the queues of a state directory.  Each call is one transaction committed before
it returns (WAL, synchronous=NORMAL), so a message whose `send()` returned survives `kill -9`.
A message is a row until it is acked, dropped or purged; moving it to a dead-letter queue only
changes its `queue` column, so no step can lose it.  Which messages are in flight lives in memory
only: after a crash every row is simply pending again, which is what at-least-once needs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..sqlite import open_sqlite3

__all__ = ["QueueStore", "StoredMessage", "QueueCounts"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY,
    queue        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    visible_at   REAL    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, visible_at, seq);
CREATE TABLE IF NOT EXISTS queue_counters (
    queue         TEXT PRIMARY KEY,
    acked         INTEGER NOT NULL DEFAULT 0,
    retried       INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    dropped       INTEGER NOT NULL DEFAULT 0
);
"""

_COUNTERS = ("acked", "retried", "dead_lettered", "dropped")


@dataclass(frozen=True)
class StoredMessage:
    """One row of the messages table; `attempts` counts deliveries started so far."""

    seq: int
    queue: str
    id: str
    timestamp_ms: int
    content_type: str
    body: bytes
    visible_at: float
    attempts: int


@dataclass(frozen=True)
class QueueCounts:
    """What `cfemu queues list` shows for one queue."""

    queue: str
    depth: int  # stored, not yet acked (includes delayed and in-flight messages)
    delayed: int  # not deliverable before a later time
    acked: int
    retried: int
    dead_lettered: int
    dropped: int
    in_flight: int = 0  # known only to a running broker; 0 when read from the file


class QueueStore:
    """SQLite persistence of the queue broker; every method commits before it returns."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        # The broker runs on one event loop thread; autocommit mode with explicit transactions.
        self._db = open_sqlite3(self.path, synchronous=synchronous)
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a CLI writing the same file waits, not fails midway.
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- writes ---------------------------------------------------------------------------------

    def insert(self, queue: str, rows: Sequence[tuple[str, int, str, bytes, float]]) -> list[int]:
        """Store (id, timestamp_ms, content_type, body, visible_at) rows; returns their seqs."""
        seqs = []
        with self._transaction() as db:
            for message_id, ts, ctype, body, visible_at in rows:
                cur = db.execute(
                    "INSERT INTO messages (queue, id, timestamp_ms, content_type, body, visible_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (queue, message_id, ts, ctype, body, visible_at),
                )
                seqs.append(cur.lastrowid)
        return seqs

    def start_delivery(self, seqs: Sequence[int]) -> list[StoredMessage]:
        """Count a delivery attempt for each message (durably, so a crash mid-handler counts) and return them."""
        marks = ",".join("?" * len(seqs))
        with self._transaction() as db:
            db.execute(f"UPDATE messages SET attempts = attempts + 1 WHERE seq IN ({marks})", tuple(seqs))
            rows = db.execute(
                f"SELECT seq, queue, id, timestamp_ms, content_type, body, visible_at, attempts FROM messages WHERE seq IN ({marks})",
                tuple(seqs),
            ).fetchall()
        by_seq = {row[0]: StoredMessage(*row) for row in rows}
        return [by_seq[s] for s in seqs if s in by_seq]

    def settle(self, queue: str, *, acked: Iterable[int] = (), retried: Iterable[tuple[int, float]] = (),
               dead_lettered: Iterable[tuple[int, str, float]] = (), dropped: Iterable[int] = ()) -> None:
        """Apply a batch's outcome in one transaction.

        acked/dropped: seqs to delete; retried: (seq, visible_at); dead_lettered: (seq, dlq, visible_at),
        which moves the row to the dead-letter queue with its attempts reset.
        """
        acked, retried, dead_lettered, dropped = list(acked), list(retried), list(dead_lettered), list(dropped)
        with self._transaction() as db:
            gone = [(s,) for s in acked + dropped]
            if gone:
                db.executemany("DELETE FROM messages WHERE seq = ?", gone)
            if retried:
                db.executemany("UPDATE messages SET visible_at = ? WHERE seq = ?", [(v, s) for s, v in retried])
            if dead_lettered:
                db.executemany(
                    "UPDATE messages SET queue = ?, attempts = 0, visible_at = ? WHERE seq = ?",
                    [(dlq, v, s) for s, dlq, v in dead_lettered],
                )
            self._count(queue, acked=len(acked), retried=len(retried), dead_lettered=len(dead_lettered), dropped=len(dropped))

    def _count(self, queue: str, **deltas: int) -> None:
        if not any(deltas.values()):
            return
        self._db.execute(
            "INSERT INTO queue_counters (queue, acked, retried, dead_lettered, dropped) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (queue) DO UPDATE SET acked = acked + excluded.acked, retried = retried + excluded.retried, "
            "dead_lettered = dead_lettered + excluded.dead_lettered, dropped = dropped + excluded.dropped",
            (queue, *(deltas.get(c, 0) for c in _COUNTERS)),
        )

    def purge(self, queue: str, *, keep: Iterable[int] = ()) -> list[int]:
        """Delete every message of `queue` except the seqs in `keep` (in flight); returns the deleted seqs."""
        keep = set(keep)
        with self._transaction() as db:
            seqs = [s for (s,) in db.execute("SELECT seq FROM messages WHERE queue = ?", (queue,)) if s not in keep]
            db.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in seqs])
        return seqs

    # -- reads ----------------------------------------------------------------------------------

    def pending(self, queue: str | None = None) -> list[StoredMessage]:
        """Stored messages (of one queue, or all), in delivery order."""
        sql = "SELECT seq, queue, id, timestamp_ms, content_type, body, visible_at, attempts FROM messages"
        args: tuple = ()
        if queue is not None:
            sql += " WHERE queue = ?"
            args = (queue,)
        sql += " ORDER BY visible_at, seq"
        return [StoredMessage(*row) for row in self._db.execute(sql, args)]

    def index(self) -> list[tuple[int, str, float]]:
        """(seq, queue, visible_at) of every stored message in delivery order: what a starting broker needs."""
        return self._db.execute("SELECT seq, queue, visible_at FROM messages ORDER BY visible_at, seq").fetchall()

    def visible_at(self, seqs: Sequence[int]) -> list[tuple[int, float]]:
        """(seq, visible_at) of those of `seqs` still stored."""
        marks = ",".join("?" * len(seqs))
        return self._db.execute(
            f"SELECT seq, visible_at FROM messages WHERE seq IN ({marks}) ORDER BY seq", tuple(seqs)).fetchall()

    def depth(self, queue: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM messages WHERE queue = ?", (queue,)).fetchone()[0]

    def counts(self, now: float, queues: Iterable[str] = ()) -> list[QueueCounts]:
        """Depth, delayed and lifetime counters of every queue seen (plus `queues`, even if empty)."""
        names = set(queues)
        depth: dict[str, tuple[int, int]] = {}
        for queue, total, delayed in self._db.execute(
            "SELECT queue, COUNT(*), SUM(visible_at > ?) FROM messages GROUP BY queue", (now,)
        ):
            depth[queue] = (total, delayed or 0)
        counters = {row[0]: row[1:] for row in self._db.execute(
            "SELECT queue, acked, retried, dead_lettered, dropped FROM queue_counters")}
        names |= set(depth) | set(counters)
        return [
            QueueCounts(name, *depth.get(name, (0, 0)), *counters.get(name, (0, 0, 0, 0)))
            for name in sorted(names)
        ]

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
