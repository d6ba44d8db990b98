"""Durable Object storage throughput next to raw sqlite3 doing the same work in the same run.

Both sides use one SQLite file in WAL mode with synchronous=NORMAL, a `key TEXT PRIMARY KEY,
value BLOB` table, and msgpack-encoded values (the raw side encodes/decodes with msgpack too,
so "equivalent work" includes the value codec).  Each figure is the median of several rounds.

    .venv/bin/python bench/durable_storage_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import msgpack

from cfemu.durable.engine import StorageEngine
from cfemu.durable.storage import DurableObjectStorage

VALUE = {"user": "alice", "text": "hello there", "n": 42}


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
    return conn


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# --- raw sqlite3 -----------------------------------------------------------------------------------

def raw_get(conn: sqlite3.Connection, keys: list[str]) -> float:
    t = time.perf_counter()
    for key in keys:
        row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        msgpack.unpackb(row[0], raw=False)
    return rate(len(keys), time.perf_counter() - t)


def raw_coalesced_put(conn: sqlite3.Connection, keys: list[str]) -> float:
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for key in keys:
        conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, msgpack.packb(VALUE)))
    conn.execute("COMMIT")
    return rate(len(keys), time.perf_counter() - t)


def raw_committed_put(conn: sqlite3.Connection, keys: list[str]) -> float:
    t = time.perf_counter()
    for key in keys:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, msgpack.packb(VALUE)))
        conn.execute("COMMIT")
    return rate(len(keys), time.perf_counter() - t)


# --- cfemu storage -----------------------------------------------------------------------------------

async def do_get(storage: DurableObjectStorage, keys: list[str]) -> float:
    get = storage.get
    t = time.perf_counter()
    for key in keys:
        await get(key)
    return rate(len(keys), time.perf_counter() - t)


async def do_coalesced_put(storage: DurableObjectStorage, engine: StorageEngine, keys: list[str]) -> float:
    put = storage.put
    t = time.perf_counter()
    for key in keys:
        await put(key, VALUE)
    engine.commit()  # what the instance's call_soon commit does at the end of the turn
    return rate(len(keys), time.perf_counter() - t)


async def do_committed_put(storage: DurableObjectStorage, engine: StorageEngine, keys: list[str]) -> float:
    # An output-gated put: the write, then the commit the output gate waits for.
    put = storage.put
    t = time.perf_counter()
    for key in keys:
        await put(key, VALUE)
        engine.commit()
    return rate(len(keys), time.perf_counter() - t)


async def main(quick: bool) -> None:
    rounds = 3 if quick else 7
    n_get, n_put, n_sync = (2000, 2000, 200) if quick else (20000, 10000, 1000)
    with tempfile.TemporaryDirectory(prefix="cfemu-bench-") as tmp:
        tmp_path = Path(tmp)
        engine = StorageEngine(tmp_path / "do" / "object.sqlite", on_dirty=lambda: None)
        storage = DurableObjectStorage(engine, sqlite_backed=True)
        conn = raw_connection(tmp_path / "raw.sqlite")

        keys = [f"key:{i:06}" for i in range(n_get)]
        await do_coalesced_put(storage, engine, keys)
        raw_coalesced_put(conn, keys)

        results: dict[str, tuple[list[float], list[float]]] = {
            "get/s": ([], []), "coalesced put/s": ([], []), "awaited put/s (commit each)": ([], []),
        }
        for r in range(rounds):
            # Alternate which side goes first so cache warmth and disk state do not favour one.
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for side in order:
                if side == 0:
                    results["get/s"][0].append(await do_get(storage, keys))
                    put_keys = [f"put:{r}:{i}" for i in range(n_put)]
                    results["coalesced put/s"][0].append(await do_coalesced_put(storage, engine, put_keys))
                    sync_keys = [f"sync:{r}:{i}" for i in range(n_sync)]
                    results["awaited put/s (commit each)"][0].append(await do_committed_put(storage, engine, sync_keys))
                else:
                    results["get/s"][1].append(raw_get(conn, keys))
                    put_keys = [f"put:{r}:{i}" for i in range(n_put)]
                    results["coalesced put/s"][1].append(raw_coalesced_put(conn, put_keys))
                    sync_keys = [f"sync:{r}:{i}" for i in range(n_sync)]
                    results["awaited put/s (commit each)"][1].append(raw_committed_put(conn, sync_keys))
        engine.close()
        conn.close()

    print(f"Durable Object storage vs raw sqlite3 (WAL, synchronous=NORMAL, msgpack values), "
          f"median of {rounds} rounds")
    print(f"{'operation':<30}{'cfemu':>14}{'raw sqlite3':>14}{'ratio':>8}")
    for name, (ours, raw) in results.items():
        a, b = statistics.median(ours), statistics.median(raw)
        print(f"{name:<30}{a:>14,.0f}{b:>14,.0f}{a / b:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations and rounds")
    asyncio.run(main(parser.parse_args().quick))
