"""Durable Objects through the runtime, next to raw sqlite3 doing the same work in the same run.

    python bench/durable_bench.py [--n 20000]

Prints operations per second and the ratio to raw sqlite3 (WAL, synchronous=NORMAL, the same commit
policy): storage get/s, coalesced put/s (many puts, one commit), awaited put/s (an RPC per put, each
held at the output gate until its commit), RPC calls/s (no storage) and stub.fetch/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cfemu.testing import Runtime  # noqa: E402

WORKER = '''
from workers import DurableObject, Response, WorkerEntrypoint


class Bench(DurableObject):
    async def gets(self, n):
        get = self.ctx.storage.get
        for i in range(n):
            await get(f"k{i % 1000}")
        return n

    async def puts(self, n):
        put = self.ctx.storage.put
        for i in range(n):
            await put(f"p{i}", i)
        return n

    async def put_one(self, i):
        await self.ctx.storage.put(f"a{i}", i)

    def noop(self):
        return 1

    async def fetch(self, request):
        return Response("ok")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")
'''

TOML = '''
name = "bench"
main = "worker.py"
[[durable_objects.bindings]]
name = "B"
class_name = "Bench"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["Bench"]
'''


def raw_sqlite(path: Path, n: int, n_awaited: int) -> dict[str, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
    import msgpack

    db.execute("BEGIN")
    for i in range(1000):
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k{i}", msgpack.packb(i)))
    db.execute("COMMIT")
    out = {}
    t = time.perf_counter()
    for i in range(n):
        row = db.execute("SELECT value FROM kv WHERE key = ?", (f"k{i % 1000}",)).fetchone()
        msgpack.unpackb(row[0])
    out["get"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    db.execute("BEGIN")
    for i in range(n):
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"p{i}", msgpack.packb(i)))
    db.execute("COMMIT")
    out["coalesced put"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n_awaited):
        db.execute("BEGIN")
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"a{i}", msgpack.packb(i)))
        db.execute("COMMIT")
    out["awaited put"] = n_awaited / (time.perf_counter() - t)
    db.close()
    return out


async def cfemu_run(root: Path, n: int, n_awaited: int, n_calls: int) -> dict[str, float]:
    async with Runtime.from_config(root / "wrangler.toml", persist_to=root / "state") as rt:
        stub = rt.env.B.getByName("bench")
        await stub.puts(1000)
        await stub.gets(10)
        out = {}
        t = time.perf_counter()
        await stub.gets(n)
        out["get"] = n / (time.perf_counter() - t)
        t = time.perf_counter()
        await stub.puts(n)
        out["coalesced put"] = n / (time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(n_awaited):
            await stub.put_one(i)
        out["awaited put"] = n_awaited / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(n_calls):
            await stub.noop()
        out["rpc call"] = n_calls / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(n_calls):
            await (await stub.fetch("http://do/")).text()
        out["stub.fetch"] = n_calls / (time.perf_counter() - t)
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--awaited", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    baseline: dict[str, list[float]] = {}
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "worker.py").write_text(textwrap.dedent(WORKER))
            (root / "wrangler.toml").write_text(TOML)
            for k, v in raw_sqlite(root / "raw.sqlite", args.n, args.awaited).items():
                baseline.setdefault(k, []).append(v)
            for k, v in asyncio.run(cfemu_run(root, args.n, args.awaited, args.calls)).items():
                results.setdefault(k, []).append(v)
    print(f"{'operation':<16}{'cfemu ops/s':>14}{'raw sqlite3 ops/s':>20}{'ratio':>8}   (median of {args.repeat})")
    for k, values in results.items():
        mine = statistics.median(values)
        base = statistics.median(baseline[k]) if k in baseline else None
        ratio = f"{mine / base:.2f}" if base else "-"
        print(f"{k:<16}{mine:>14,.0f}{(f'{base:,.0f}' if base else '-'):>20}{ratio:>8}")


if __name__ == "__main__":
    main()
