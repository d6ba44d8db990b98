"""Buffering, durability across restarts and crashes, retention, and bucketing under the virtual clock."""

from __future__ import annotations

import pytest

from cfemu.analytics.service import AnalyticsService
from cfemu.analytics.storage import retention_cutoff
from cfemu.testing import Runtime

T0 = 1768471200.0  # 2026-01-15 10:00:00 UTC, the start of the `rt` fixture (conftest.py)

DAY = 86400


def stored(rt) -> int:
    """Rows in the DuckDB table, without flushing the buffer first (unlike a query)."""
    rt.analytics.wait_for_batches()  # batches are inserted by a writer thread
    store = rt.analytics.store
    if "events" not in store.tables():
        return 0
    return store.execute('SELECT count(*) FROM "events"')[1][0][0]


async def test_writes_are_buffered_then_flushed_by_the_clock(rt):
    rt.env.AE.writeDataPoint({"blobs": ["a"]})
    rt.env.AE.writeDataPoint({"blobs": ["b"]})
    assert stored(rt) == 0
    await rt.advance(AnalyticsService.FLUSH_DELAY)
    assert stored(rt) == 2


async def test_a_full_buffer_is_flushed_in_one_batch(rt, monkeypatch):
    monkeypatch.setattr(AnalyticsService, "FLUSH_POINTS", 5)
    inserts = []
    original = rt.analytics.store.insert
    monkeypatch.setattr(rt.analytics.store, "insert",
                        lambda ds, rows, **kw: (inserts.append(len(rows)), original(ds, rows, **kw)))
    for i in range(12):
        rt.env.AE.writeDataPoint({"doubles": [i]})
    assert stored(rt) == 10 and inserts == [5, 5]
    assert rt.analytics.query("SELECT count() AS n FROM events")["data"] == [{"n": "12"}]  # a query flushes first
    assert inserts == [5, 5, 2]


async def test_points_survive_a_clean_restart(worker_config, tmp_path):
    async with Runtime.from_config(worker_config, persist_to=tmp_path / "s", start=T0) as rt:
        for i in range(3):
            rt.env.AE.writeDataPoint({"blobs": [f"p{i}"], "doubles": [i]})
    async with Runtime.from_config(worker_config, persist_to=tmp_path / "s", start=T0 + 60) as rt:
        assert rt.analytics.query("SELECT blob1, double1 FROM events ORDER BY double1")["data"] == [
            {"blob1": "p0", "double1": 0}, {"blob1": "p1", "double1": 1}, {"blob1": "p2", "double1": 2}]
        rt.env.AE.writeDataPoint({"blobs": ["p3"]})
        await rt.restart()
        assert rt.analytics.query("SELECT count() AS n FROM events")["data"] == [{"n": "4"}]


async def test_a_crash_loses_only_the_points_not_yet_flushed(rt):
    rt.env.AE.writeDataPoint({"blobs": ["flushed"]})
    await rt.advance(1)
    rt.env.AE.writeDataPoint({"blobs": ["buffered"]})
    await rt.crash()
    await rt.restart()
    assert rt.analytics.query("SELECT blob1 FROM events")["data"] == [{"blob1": "flushed"}]


async def test_per_minute_buckets_from_a_worker_under_the_virtual_clock(rt):
    # 3 requests in the first minute, 1 in the second, 2 in the fourth
    for step in (0, 10, 20, 70, 130, 150):
        await rt.advance(step - (rt.now() - T0))
        assert (await rt.fetch("/?n=1")).status == 200
    result = rt.analytics.query(
        "SELECT toStartOfInterval(timestamp, INTERVAL '1' MINUTE) AS minute, sum(_sample_interval) AS requests "
        "FROM events GROUP BY minute ORDER BY minute")
    assert result["data"] == [{"minute": "2026-01-15 10:00:00", "requests": "3"},
                              {"minute": "2026-01-15 10:01:00", "requests": "1"},
                              {"minute": "2026-01-15 10:02:00", "requests": "2"}]


def test_retention_cutoff_is_three_calendar_months():
    import datetime as dt

    def at(text):
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()

    assert retention_cutoff(at("2026-04-15 10:00:00")) == dt.datetime(2026, 1, 15, 10, 0, 0)
    assert retention_cutoff(at("2026-05-31 00:00:00")) == dt.datetime(2026, 2, 28, 0, 0, 0)
    assert retention_cutoff(at("2026-02-10 08:30:00")) == dt.datetime(2025, 11, 10, 8, 30, 0)


async def test_data_older_than_three_months_is_dropped(rt):
    rt.env.AE.writeDataPoint({"blobs": ["old"]})            # 2026-01-15 10:00:00
    await rt.advance(40 * DAY)
    rt.env.AE.writeDataPoint({"blobs": ["newer"]})          # 2026-02-24 10:00:00
    # 2026-04-15 10:00:00: the first point is exactly three months old and still kept
    await rt.advance(T0 + 90 * DAY - rt.now())
    assert rt.analytics.query("SELECT blob1 FROM events ORDER BY timestamp")["data"] == [
        {"blob1": "old"}, {"blob1": "newer"}]
    await rt.advance(1)
    assert rt.analytics.query("SELECT blob1 FROM events")["data"] == [{"blob1": "newer"}]
    assert stored(rt) == 1  # deleted from the store, not only filtered


async def test_retention_applies_at_start(worker_config, tmp_path):
    async with Runtime.from_config(worker_config, persist_to=tmp_path / "s", start=T0) as rt:
        rt.env.AE.writeDataPoint({"blobs": ["old"]})
    async with Runtime.from_config(worker_config, persist_to=tmp_path / "s", start=T0 + 100 * DAY) as rt:
        assert stored(rt) == 0


async def test_abandoned_service_refuses_new_points(rt):
    service = rt.analytics
    await rt.crash()
    with pytest.raises(RuntimeError):
        service.append("events", "", [], [])


async def test_queries_running_while_the_writer_thread_inserts_see_every_earlier_point(rt, monkeypatch):
    import asyncio

    monkeypatch.setattr(AnalyticsService, "FLUSH_POINTS", 50)  # keep the writer thread busy with many batches
    written = 0

    async def writer():
        nonlocal written
        for _ in range(40):
            for _ in range(60):
                rt.env.AE.writeDataPoint({"doubles": [1.0]})
                written += 1
            await asyncio.sleep(0)

    async def reader():
        seen = []
        for _ in range(30):
            before = written
            n = int((await rt.analytics.aquery("SELECT count() AS n FROM events"))["data"][0]["n"])
            assert n >= before  # a query flushes and waits for every point written before it started
            seen.append(n)
            await asyncio.sleep(0)
        return seen

    _, seen, seen2 = await asyncio.gather(writer(), reader(), reader())
    assert seen == sorted(seen) and seen2 == sorted(seen2)
    assert rt.analytics.query("SELECT count() AS n, sum(double1) AS s FROM events")["data"] == [
        {"n": "2400", "s": 2400}]
