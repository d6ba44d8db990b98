"""Real-user monitoring: the web client's cookie-less beacon reports LCP, INP and CLS to Analytics Engine."""

from __future__ import annotations

import json

from messenger_client import api


def _rum_rows(rt):
    from cfemu.analytics.errors import AnalyticsQueryError

    try:
        rows = rt.analytics.query("SELECT blob1, blob2, double1 FROM messenger_events WHERE blob1 = 'rum' FORMAT JSON")
    except AnalyticsQueryError as error:
        assert "no dataset of that name has been written to" in str(error)
        return []  # nothing written at all
    rows = rows["data"] if isinstance(rows, dict) else json.loads(rows)["data"]
    return sorted((r["blob2"], r["double1"]) for r in rows)


async def test_a_beacon_writes_one_point_per_metric_and_nothing_identifying(rt):
    resp = await rt.fetch("/api/rum", method="POST", headers={"cf-connecting-ip": "203.0.113.9"},
                          json={"lcp": 812.4, "inp": 48, "cls": 0.031})
    assert resp.status == 200 and "set-cookie" not in resp.headers
    await rt.settle()
    assert _rum_rows(rt) == [("cls", 0.031), ("inp", 48.0), ("lcp", 812.4)]
    assert "203.0.113.9" not in json.dumps(rt.analytics.query("SELECT * FROM messenger_events FORMAT JSON"))


async def test_bad_beacons_get_a_400_and_write_nothing(rt):
    for body in ({"lcp": -1}, {"lcp": "fast"}, {"cls": 1e9}, {"inp": True}, {"lcp": 1, "user": "alice"}, [], {}):
        bad = await api(rt, "POST", "/api/rum", body=body, expect=400)
        assert bad["error"]["code"] in ("invalid_field", "bad_request"), body
    resp = await rt.fetch("/api/rum", method="POST", body="not json", headers={"content-type": "text/plain"})
    assert resp.status == 400
    await rt.settle()
    assert _rum_rows(rt) == []
