"""Simple aggregate queries agree with a pure-Python computation over the same points (hypothesis)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfemu.analytics.dataset import validate_point
from cfemu.analytics.engine import run_query
from cfemu.analytics.storage import AnalyticsStore

NOW = 1768471200.0

# Quarter steps keep the sums exact in binary floating point, so the comparison can be strict for
# sums/min/max and approximate only for averages.
doubles = st.integers(min_value=-4000, max_value=4000).map(lambda n: n / 4)
points = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d", "é", "a b", ""]), doubles, doubles,
              st.integers(min_value=0, max_value=3600)),
    max_size=60,
)


@pytest.fixture(scope="module")
def store():
    with tempfile.TemporaryDirectory() as directory:
        s = AnalyticsStore(Path(directory))
        s.ensure_table("ds")
        yield s
        s.close()


def _write(store, rows):
    store.execute('DELETE FROM "ds"')
    batch = []
    for blob, d1, d2, offset in rows:
        index1, blobs, values = validate_point({"blobs": [blob], "doubles": [d1, d2]})
        batch.append((int(NOW) - offset, index1, *blobs, *[""] * 19, *values, *[0.0] * 18))
    store.insert("ds", batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=points, threshold=doubles)
def test_grouped_aggregates_match_python(store, rows, threshold):
    _write(store, rows)
    result = run_query(store, (
        "SELECT blob1, count() AS n, sum(_sample_interval) AS events, sum(double1) AS s, min(double1) AS lo, "
        f"max(double1) AS hi, avg(double1) AS mean FROM ds WHERE double2 > {threshold!r} GROUP BY blob1 ORDER BY blob1"
    ), now=NOW)
    groups: dict[str, list[float]] = {}
    for blob, d1, d2, _ in rows:
        if d2 > threshold:
            groups.setdefault(blob, []).append(d1)
    expected = [(k, len(v), len(v), sum(v), min(v), max(v), sum(v) / len(v)) for k, v in sorted(groups.items())]
    got = [(r["blob1"], int(r["n"]), int(r["events"]), r["s"], r["lo"], r["hi"], r["mean"]) for r in result["data"]]
    assert [g[:6] for g in got] == [e[:6] for e in expected]
    for g, e in zip(got, expected):
        assert math.isclose(g[6], e[6], rel_tol=1e-12, abs_tol=1e-12)
    assert result["rows"] == len(expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=points, q=st.sampled_from([0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1]))
def test_quantile_exact_weighted_matches_clickhouses_rule(store, rows, q):
    _write(store, rows)
    result = run_query(store, f"SELECT quantileExactWeighted({q})(double1, _sample_interval) AS a, "
                              f"quantileExactWeighted({q})(double1, toUInt32(abs(double2)) % 4) AS b FROM ds", now=NOW)

    def model(pairs):
        total = sum(w for _, w in pairs)
        threshold, acc = math.ceil(total * q), 0
        merged: dict[float, int] = {}
        for v, w in pairs:
            merged[v] = merged.get(v, 0) + w
        ordered = sorted(merged.items())
        for v, w in ordered:
            acc += w
            if acc >= threshold:
                return v
        return ordered[-1][0] if ordered else None

    row = result["data"][0]
    if rows:
        assert row["a"] == model([(d1, 1) for _, d1, _, _ in rows])
    weighted = [(d1, int(abs(d2)) % 4) for _, d1, d2, _ in rows]
    if rows:  # all-zero weights included: ClickHouse's threshold is then 0 and the smallest value wins
        assert row["b"] == model(weighted)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=points, minutes=st.sampled_from([1, 5, 15, 60]))
def test_time_buckets_match_python(store, rows, minutes):
    _write(store, rows)
    result = run_query(store, f"SELECT toUnixTimestamp(toStartOfInterval(timestamp, INTERVAL '{minutes}' MINUTE)) AS t, "
                              "count() AS n FROM ds GROUP BY t ORDER BY t", now=NOW)
    size = minutes * 60
    counts: dict[int, int] = {}
    for _, _, _, offset in rows:
        bucket = (int(NOW) - offset) // size * size
        counts[bucket] = counts.get(bucket, 0) + 1
    assert [(r["t"], int(r["n"])) for r in result["data"]] == sorted(counts.items())
