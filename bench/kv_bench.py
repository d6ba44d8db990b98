"""KV get/s and put/s next to raw sqlite3 under the same commit policy (WAL, synchronous=NORMAL,
one autocommitted statement per write), measured in the same run.

    .venv/bin/python bench/kv_bench.py [--n 20000] [--rounds 5] [--value-size 100]

Prints medians over rounds and the ratio cfemu/raw (the aim is >= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cfemu.clock import VirtualClock
from cfemu.kv import KVNamespace


def raw_round(path: Path, n: int, value: bytes) -> tuple[float, float]:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, expiration INTEGER, metadata TEXT)")
    keys = [f"key-{i:08d}".encode() for i in range(n)]
    t = time.perf_counter()
    for k in keys:
        db.execute("INSERT OR REPLACE INTO kv (key, value, expiration, metadata) VALUES (?, ?, ?, ?)", (k, value, None, None))
    put = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for k in keys:
        row = db.execute("SELECT value, expiration, metadata FROM kv WHERE key = ?", (k,)).fetchone()
        row[0].decode()
    get = n / (time.perf_counter() - t)
    db.close()
    return put, get


async def cfemu_round(path: Path, n: int, value: bytes) -> tuple[float, float]:
    kv = KVNamespace.open(path, clock=VirtualClock(1_800_000_000))
    keys = [f"key-{i:08d}" for i in range(n)]
    text = value.decode()
    t = time.perf_counter()
    for k in keys:
        await kv.put(k, text)
    put = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for k in keys:
        await kv.get(k)
    get = n / (time.perf_counter() - t)
    kv.close()
    return put, get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--value-size", type=int, default=100)
    args = parser.parse_args()
    value = b"x" * args.value_size
    raw_put, raw_get, kv_put, kv_get = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # Alternate the order so neither side always runs on a warmer cache.
            for which in (("raw", "kv") if r % 2 == 0 else ("kv", "raw")):
                path = Path(tmp) / f"{which}-{r}.sqlite"
                if which == "raw":
                    p, g = raw_round(path, args.n, value)
                    raw_put.append(p)
                    raw_get.append(g)
                else:
                    p, g = asyncio.run(cfemu_round(path, args.n, value))
                    kv_put.append(p)
                    kv_get.append(g)
    med = statistics.median
    print(f"KV benchmark: {args.n} keys x {args.rounds} rounds, {args.value_size}-byte values, WAL + synchronous=NORMAL")
    print(f"{'':6} {'raw sqlite3 ops/s':>18} {'cfemu KV ops/s':>16} {'ratio':>7}")
    for name, raw, ours in (("put", raw_put, kv_put), ("get", raw_get, kv_get)):
        print(f"{name:6} {med(raw):18,.0f} {med(ours):16,.0f} {med(ours) / med(raw):7.2f}")


if __name__ == "__main__":
    main()
