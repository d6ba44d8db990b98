"""writeDataPoint(): production's validation limits and texts, and what gets stored."""

from __future__ import annotations

import pytest

from cfemu.analytics import errors as E
from cfemu.errors import JsException, JsTypeError


def test_limit_texts_are_workerds():
    assert E.TOO_MANY_BLOBS == "writeDataPoint(): Maximum of 20 blobs supported."
    assert E.TOO_MANY_DOUBLES == "writeDataPoint(): Maximum of 20 doubles supported."
    assert E.TOO_MANY_INDEXES == "writeDataPoint(): Maximum of 1 indexes supported."
    assert E.INDEX_TOO_BIG == "writeDataPoint(): Size of indexes[0] exceeds 96 bytes)."
    assert E.BLOBS_TOO_BIG == "writeDataPoint(): Cumulative size of blobs exceeds 16000 bytes)."
    assert E.WRITE_LIMIT_EXCEEDED == "Analytics Engine write limit exceeded."


@pytest.mark.parametrize("point, message", [
    ({"blobs": ["x"] * 21}, E.TOO_MANY_BLOBS),
    ({"doubles": [1.0] * 21}, E.TOO_MANY_DOUBLES),
    ({"indexes": ["a", "b"]}, E.TOO_MANY_INDEXES),
    ({"indexes": ["x" * 97]}, E.INDEX_TOO_BIG),
    ({"indexes": ["é" * 49]}, E.INDEX_TOO_BIG),  # 98 UTF-8 bytes
    ({"indexes": [b"x" * 97]}, E.INDEX_TOO_BIG),
    ({"blobs": ["x" * 8000, "y" * 8001]}, E.BLOBS_TOO_BIG),
    ({"blobs": [b"x" * 16001]}, E.BLOBS_TOO_BIG),
    ({"blobs": ["€" * 5334]}, E.BLOBS_TOO_BIG),  # 16,002 bytes: counted in bytes, not characters
])
async def test_each_limit_raises_a_type_error_with_workerds_text(rt, point, message):
    with pytest.raises(JsTypeError) as info:
        rt.env.AE.writeDataPoint(point)
    assert str(info.value) == message
    assert isinstance(info.value, TypeError)
    assert info.value.name == "TypeError"
    # nothing was stored: the dataset's table does not even exist yet (tables appear on first write)
    assert rt.analytics.query("SHOW TABLES")["data"] == []


async def test_values_at_the_limits_are_accepted(rt):
    rt.env.AE.writeDataPoint({
        "blobs": ["x" * 800] * 20,             # exactly 16,000 bytes
        "doubles": [float(i) for i in range(20)],
        "indexes": ["i" * 96],
    })
    rt.env.AE.writeDataPoint({"blobs": [None, b"\x00bin", "z"], "doubles": [1, 2.5], "indexes": [None]})
    rt.env.AE.writeDataPoint({})
    rt.env.AE.writeDataPoint()
    result = rt.analytics.query(
        "SELECT length(blob1) AS l1, blob2, blob3, blob20, double1, double2, double20, index1, _sample_interval, "
        "dataset FROM events ORDER BY l1 DESC, double2 DESC")
    assert result["data"] == [
        {"l1": "800", "blob2": "x" * 800, "blob3": "x" * 800, "blob20": "x" * 800, "double1": 0, "double2": 1,
         "double20": 19, "index1": "i" * 96, "_sample_interval": 1, "dataset": "events"},
        {"l1": "0", "blob2": "\x00bin", "blob3": "z", "blob20": "", "double1": 1, "double2": 2.5, "double20": 0,
         "index1": "", "_sample_interval": 1, "dataset": "events"},
        {"l1": "0", "blob2": "", "blob3": "", "blob20": "", "double1": 0, "double2": 0, "double20": 0,
         "index1": "", "_sample_interval": 1, "dataset": "events"},
        {"l1": "0", "blob2": "", "blob3": "", "blob20": "", "double1": 0, "double2": 0, "double20": 0,
         "index1": "", "_sample_interval": 1, "dataset": "events"},
    ]


@pytest.mark.parametrize("point, message", [
    ({"blobs": [1]}, "writeDataPoint(): blobs[0] must be a str, bytes or None, not int."),
    ({"doubles": ["1"]}, "writeDataPoint(): doubles[0] must be a number, not str."),
    ({"doubles": [True]}, "writeDataPoint(): doubles[0] must be a number, not bool."),
    ({"blobs": "abc"}, "writeDataPoint(): 'blobs' must be a list, not str."),
    ({"blob": ["a"]}, "writeDataPoint(): Unknown field 'blob' (expected 'blobs', 'doubles' or 'indexes')."),
    (["a"], "writeDataPoint(): The data point must be a dict with 'blobs', 'doubles' and 'indexes' lists."),
])
async def test_values_of_the_wrong_type_are_refused(rt, point, message):
    with pytest.raises(JsTypeError) as info:
        rt.env.AE.writeDataPoint(point)
    assert str(info.value) == message


async def test_points_carry_the_clock_time_in_whole_seconds(rt):
    rt.env.AE.writeDataPoint({"blobs": ["a"]})
    await rt.advance(90.7)
    rt.env.AE.writeDataPoint({"blobs": ["b"]})
    data = rt.analytics.query("SELECT blob1, timestamp, toUnixTimestamp(timestamp) AS u FROM events ORDER BY u")["data"]
    assert data == [
        {"blob1": "a", "timestamp": "2026-01-15 10:00:00", "u": 1768471200},
        {"blob1": "b", "timestamp": "2026-01-15 10:01:30", "u": 1768471290},
    ]


async def test_each_binding_writes_its_own_dataset(rt):
    rt.env.AE.writeDataPoint({"blobs": ["a"]})
    rt.env.OTHER.writeDataPoint({"blobs": ["b"]})
    rt.env.OTHER.writeDataPoint({"blobs": ["c"]})
    assert rt.analytics.query("SHOW TABLES")["data"] == [{"dataset": "events"}, {"dataset": "other_ds"}]
    assert rt.analytics.query("SELECT count() AS n FROM other_ds")["data"] == [{"n": "2"}]
    assert rt.analytics.query("SELECT blob1 FROM events")["data"] == [{"blob1": "a"}]


async def test_250_points_per_invocation(rt):
    assert (await rt.fetch("/?n=250")).status == 200
    # a new request has a fresh allowance
    assert (await rt.fetch("/?n=250")).status == 200
    resp = await rt.fetch("/?n=251")
    assert resp.status == 500
    assert await resp.text() == "JsException: Analytics Engine write limit exceeded."
    # the 250 points written before the limit was hit are kept, the 251st is not
    assert rt.analytics.query("SELECT count() AS n FROM events")["data"] == [{"n": "750"}]


async def test_the_limit_error_is_a_plain_js_error(rt):
    from cfemu.analytics.dataset import AnalyticsEngineDataset

    class Service:
        count = 250

        def count_invocation(self, _):
            self.count += 1
            return self.count

        def append(self, *args):
            raise AssertionError("must not store")

    dataset = AnalyticsEngineDataset(Service(), "events")
    import cfemu.analytics.dataset as module

    original = module.current_invocation
    module.current_invocation = lambda: object()
    try:
        with pytest.raises(JsException) as info:
            dataset.writeDataPoint({"blobs": ["x"]})
    finally:
        module.current_invocation = original
    assert not isinstance(info.value, TypeError)
    assert info.value.name == "Error"
    assert str(info.value) == "Analytics Engine write limit exceeded."


async def test_writes_outside_any_event_are_not_limited(rt):
    for i in range(600):
        rt.env.AE.writeDataPoint({"doubles": [i]})
    assert rt.analytics.query("SELECT count() AS n, sum(double1) AS s FROM events")["data"] == [
        {"n": "600", "s": 179700}]


WAIT_UNTIL_WORKER = """
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        for i in range(200):
            self.env.AE.writeDataPoint({"doubles": [i]})
        self.ctx.waitUntil(self.later())
        return Response("ok")

    async def later(self):
        try:
            for i in range(100):
                self.env.AE.writeDataPoint({"doubles": [i]})
        except Exception:
            pass  # past the limit: the rest of the background points are refused
"""


async def test_writes_from_wait_until_count_toward_the_invocation(tmp_path, write_worker):
    from cfemu.testing import Runtime

    config = write_worker(tmp_path / "w", WAIT_UNTIL_WORKER,
                          '[[analytics_engine_datasets]]\nbinding = "AE"\ndataset = "events"\n')
    async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
        assert (await rt.fetch("/")).status == 200
        await rt.advance(1)
        # 200 from the handler and the first 50 from its waitUntil work: 250 in all for the invocation
        assert rt.analytics.query("SELECT count() AS n FROM events")["data"] == [{"n": "250"}]
