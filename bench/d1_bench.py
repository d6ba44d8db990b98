"""D1 query overhead next to raw sqlite3 under the same commit policy (WAL, synchronous=NORMAL).

For each operation the raw and the D1 version run interleaved (one raw, one D1, repeat), so load
from other processes hits both alike; printed are medians in µs and their ratio.  Operations: a
primary-key SELECT via `first()`, a 100-row SELECT via `all()`, and a single-row INSERT via `run()`
(each INSERT its own committed transaction).  Aim: ratio <= 1.5.

    .venv/bin/python bench/d1_bench.py [--n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cfemu.d1 import D1Database, D1Storage


async def run(tmp: Path, n: int) -> list[tuple[str, float, float]]:
    raw = sqlite3.connect(tmp / "raw.sqlite", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    storage = D1Storage(tmp / "d1.sqlite")
    db = D1Database(storage)
    schema = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"
    raw.execute(schema)
    await db.prepare(schema).run()
    seed = [(f"name{i}", i) for i in range(1000)]
    raw.executemany("INSERT INTO t (name, n) VALUES (?, ?)", seed)
    await db.batch([db.prepare("INSERT INTO t (name, n) VALUES (?, ?)").bind(*row) for row in seed])

    def raw_first(i: int) -> None:
        cur = raw.execute("SELECT * FROM t WHERE id = ?", (i % 1000 + 1,))
        cols = [d[0] for d in cur.description]
        dict(zip(cols, cur.fetchone()))

    def raw_all(i: int) -> None:
        cur = raw.execute("SELECT * FROM t WHERE id > ? LIMIT 100", (i % 900,))
        cols = [d[0] for d in cur.description]
        [dict(zip(cols, r)) for r in cur.fetchall()]

    def raw_insert(i: int) -> None:
        raw.execute("INSERT INTO t (name, n) VALUES (?, ?)", (f"x{i}", i))

    first = db.prepare("SELECT * FROM t WHERE id = ?")
    many = db.prepare("SELECT * FROM t WHERE id > ? LIMIT 100")
    insert = db.prepare("INSERT INTO t (name, n) VALUES (?, ?)")
    cases = [
        ("first() by primary key", raw_first, lambda i: first.bind(i % 1000 + 1).first(), n),
        ("all() 100 rows", raw_all, lambda i: many.bind(i % 900).all(), n // 10),
        ("run() INSERT (committed)", raw_insert, lambda i: insert.bind(f"x{i}", i).run(), n),
    ]
    results = []
    for name, raw_op, d1_op, count in cases:
        raw_t, d1_t = [], []
        for i in range(count):
            t = time.perf_counter()
            raw_op(i)
            raw_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            await d1_op(i)
            d1_t.append(time.perf_counter() - t)
        results.append((name, statistics.median(raw_t) * 1e6, statistics.median(d1_t) * 1e6))
    raw.close()
    storage.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(run(Path(tmp), args.n))
    print(f"{'operation':28} {'raw sqlite3 µs':>15} {'cfemu D1 µs':>12} {'ratio':>7}")
    for name, raw_us, d1_us in results:
        print(f"{name:28} {raw_us:15.1f} {d1_us:12.1f} {d1_us / raw_us:7.2f}")


if __name__ == "__main__":
    main()
