"""Analytics Engine: ingestion through writeDataPoint and a per-minute query over 1,000,000 points.

Each number is printed next to a baseline measured in the same run on the same machine:
  ingest   env.AE.writeDataPoint(...) for every point, then the final flush, vs. inserting the same
           rows straight into DuckDB in one batch (the floor for this store) and row by row;
  query    the SQL API query (parse + translate + DuckDB + ClickHouse-style JSON) vs. the same
           question asked of DuckDB directly in its own SQL.  Medians of several runs.

    .venv/bin/python bench/analytics_bench.py [--points 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from cfemu.testing import Runtime

START = 1768471200.0  # 2026-01-15 10:00:00 UTC
STEP = 0.05  # virtual seconds between points: 1M points span ~833 minutes

QUERY = ("SELECT toStartOfInterval(timestamp, INTERVAL '1' MINUTE) AS minute, count() AS n, "
         "quantileExactWeighted(0.95)(double1, _sample_interval) AS p95 FROM bench GROUP BY minute ORDER BY minute")
RAW_QUERY = ("SELECT time_bucket(INTERVAL 1 MINUTE, timestamp) AS minute, count(*) AS n, "
             "quantile_disc(double1, 0.95) AS p95 FROM bench GROUP BY minute ORDER BY minute")

PATHS = ["/", "/api/users", "/api/rooms", "/login", "/static/app.js"]
METHODS = ["GET", "POST"]


def make_points(n: int) -> list[dict]:
    rng = random.Random(7)
    return [{"blobs": [rng.choice(PATHS), rng.choice(METHODS), str(rng.choice((200, 200, 200, 404, 500)))],
             "doubles": [rng.expovariate(1 / 40), float(rng.randint(100, 5000))],
             "indexes": [f"customer{rng.randint(1, 50)}"]} for _ in range(n)]


def write_worker(directory: Path) -> Path:
    (directory / "worker.py").write_text(
        "from workers import WorkerEntrypoint, Response\n"
        "class Default(WorkerEntrypoint):\n"
        "    async def fetch(self, request):\n"
        "        return Response('ok')\n")
    config = directory / "wrangler.toml"
    config.write_text('name = "bench"\nmain = "worker.py"\n\n[[analytics_engine_datasets]]\nbinding = "AE"\ndataset = "bench"\n')
    return config


def rows_of(points: list[dict]) -> list[tuple]:
    return [(int(START + i * STEP), p["indexes"][0], *p["blobs"], *[""] * 17, *p["doubles"], *[0.0] * 18)
            for i, p in enumerate(points)]


def raw_batch_insert(path: Path, rows: list[tuple]) -> float:
    """The same rows into a fresh DuckDB table in one INSERT (the store's own fastest path, unvalidated)."""
    from cfemu.analytics.storage import AnalyticsStore

    store = AnalyticsStore(path)
    store.ensure_table("bench")
    started = time.perf_counter()
    store.insert("bench", rows, blobs=3, doubles=2)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def raw_row_by_row(path: Path, rows: list[tuple]) -> float:
    con = duckdb.connect(str(path / "rows.duckdb"))
    con.execute("CREATE TABLE t (timestamp BIGINT, index1 VARCHAR, blob1 VARCHAR, blob2 VARCHAR, blob3 VARCHAR, "
                "double1 DOUBLE, double2 DOUBLE)")
    sample = [(r[0], r[1], r[2], r[3], r[4], r[22], r[23]) for r in rows]
    started = time.perf_counter()
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", sample)
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


async def main(n_points: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = write_worker(tmp_path)
        points = make_points(n_points)

        async with Runtime.from_config(config, persist_to=tmp_path / "state", start=START) as rt:
            dataset, clock = rt.env.AE, rt.clock
            started = time.perf_counter()
            for i, point in enumerate(points):
                clock.set(START + i * STEP)  # the virtual clock moves without running timers
                dataset.writeDataPoint(point)
            rt.analytics.sync()  # flush and wait until the store holds every point
            ingest = time.perf_counter() - started
            total = rt.analytics.query("SELECT count() AS n FROM bench")["data"][0]["n"]
            assert int(total) == n_points, total

            rt.analytics.query(QUERY)  # warm up
            latencies = []
            for _ in range(runs):
                started = time.perf_counter()
                result = rt.analytics.query(QUERY)
                latencies.append(time.perf_counter() - started)
            store = rt.analytics.store
            store.execute(RAW_QUERY)
            raw_latencies = []
            for _ in range(runs):
                started = time.perf_counter()
                raw = store.execute(RAW_QUERY)[1]
                raw_latencies.append(time.perf_counter() - started)
            assert len(raw) == result["rows"], (len(raw), result["rows"])
            assert all(float(r["p95"]) == pytest_round(raw_row[2]) for r, raw_row in zip(result["data"], raw))

        rows = rows_of(points)
        batch = raw_batch_insert(tmp_path / "raw", rows)
        sample = rows[: min(len(rows), 2_000)]
        row_by_row = raw_row_by_row(tmp_path, sample)

    ingest_rate = n_points / ingest
    batch_rate = n_points / batch
    row_rate = len(sample) / row_by_row
    q, rq = statistics.median(latencies), statistics.median(raw_latencies)
    print(f"points: {n_points:,} over {result['rows']} minutes; query runs: {runs} (median)")
    print(f"ingest  writeDataPoint + flush        {ingest_rate:12,.0f} points/s   ({ingest:.2f} s)")
    print(f"        baseline: raw DuckDB batch    {batch_rate:12,.0f} points/s   (ratio {ingest_rate / batch_rate:.2f}x)")
    print(f"        baseline: raw row-by-row      {row_rate:12,.0f} points/s   (ratio {ingest_rate / row_rate:.1f}x)")
    print(f"query   SQL API per-minute count()/p95 {q * 1000:10.1f} ms")
    print(f"        baseline: DuckDB SQL directly {rq * 1000:11.1f} ms        (ratio {q / rq:.2f}x)")
    print(f"aims    ingest >= 50,000 points/s: {'yes' if ingest_rate >= 50_000 else 'NO'}; "
          f"query < 1 s: {'yes' if q < 1 else 'NO'}")


def pytest_round(value: float) -> float:
    return int(value) if float(value).is_integer() and abs(value) < 1e15 else value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.points, args.runs))
