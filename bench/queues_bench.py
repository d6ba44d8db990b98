"""Queue end-to-end throughput (send -> consumer -> ack) next to raw sqlite3 doing the same writes.

Run: .venv/bin/python bench/queues_bench.py [messages]
The baseline is what the broker's storage must at least do per message under the same commit
policy (WAL, synchronous=NORMAL): one committed INSERT per send, then one committed UPDATE of the
attempt counter and one committed DELETE per batch of acked messages.  Cloudflare's documented
per-queue limit is 5,000 messages/s; the aim is to stay above it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from cfemu.clock import VirtualClock
from cfemu.config import load_config
from cfemu.runtime import Runtime

BATCH = 100
WORKER = """
from workers import WorkerEntrypoint

class Default(WorkerEntrypoint):
    acked = 0

    async def queue(self, batch):
        Default.acked += len(batch.messages)
"""


def raw_sqlite(path: Path, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE m (seq INTEGER PRIMARY KEY, queue TEXT, id TEXT, ts INTEGER, ct TEXT, body BLOB, vis REAL, attempts INTEGER DEFAULT 0)")
    body = b'{"n":1,"payload":"hello"}'
    start = time.perf_counter()
    seqs = []
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        seqs.append(db.execute("INSERT INTO m (queue, id, ts, ct, body, vis) VALUES ('q', ?, 0, 'json', ?, 0)", (f"{i:032x}", body)).lastrowid)
        db.execute("COMMIT")
    for k in range(0, n, BATCH):
        chunk = seqs[k:k + BATCH]
        marks = ",".join("?" * len(chunk))
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"UPDATE m SET attempts = attempts + 1 WHERE seq IN ({marks})", chunk)
        db.execute(f"SELECT * FROM m WHERE seq IN ({marks})", chunk).fetchall()
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        db.executemany("DELETE FROM m WHERE seq = ?", [(s,) for s in chunk])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return n / elapsed


async def cfemu_queue(tmp: Path, n: int, *, batched: bool) -> float:
    (tmp / "worker.py").write_text(textwrap.dedent(WORKER))
    (tmp / "wrangler.toml").write_text(textwrap.dedent(f"""
        name = "bench"
        main = "worker.py"
        [[queues.producers]]
        binding = "Q"
        queue = "q"
        [[queues.consumers]]
        queue = "q"
        max_batch_size = {BATCH}
        max_batch_timeout = 1
    """))
    rt = Runtime(load_config(tmp / "wrangler.toml"), state_dir=tmp / "state", clock=VirtualClock(0))
    await rt.start()
    worker = rt.worker_class("Default")
    worker.acked = 0
    body = {"n": 1, "payload": "hello"}
    start = time.perf_counter()
    if batched:
        for _ in range(0, n, BATCH):
            await rt.env.Q.sendBatch([{"body": body}] * BATCH)
            await asyncio.sleep(0)  # let full batches be delivered as they fill, as a server would
    else:
        for i in range(n):
            await rt.env.Q.send(body)
            if i % BATCH == BATCH - 1:
                await asyncio.sleep(0)
    await rt.advance(1)  # the last partial batch, then wait for every handler and ack
    await rt.service("queues").idle()
    elapsed = time.perf_counter() - start
    assert worker.acked == n, (worker.acked, n)
    assert rt.service("queues").pending("q") == 0
    await rt.close()
    return n / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = 3
    results: dict[str, list[float]] = {"raw sqlite3": [], "cfemu send()": [], "cfemu sendBatch(100)": []}
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            results["raw sqlite3"].append(raw_sqlite(tmp / "raw.sqlite3", n))
            (tmp / "a").mkdir()
            (tmp / "b").mkdir()
            results["cfemu send()"].append(asyncio.run(cfemu_queue(tmp / "a", n, batched=False)))
            results["cfemu sendBatch(100)"].append(asyncio.run(cfemu_queue(tmp / "b", n, batched=True)))
    base = statistics.median(results["raw sqlite3"])
    print(f"queue end-to-end (send -> deliver -> ack), {n} messages, batches of {BATCH}, median of {rounds}")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med:>10,.0f} msg/s   {med / base:5.2f}x raw sqlite3")
    print("  target: >= 5,000 msg/s per queue (Cloudflare's documented limit)")


if __name__ == "__main__":
    main()
