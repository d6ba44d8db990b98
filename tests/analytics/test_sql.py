"""The SQL API's functions and clauses on known data; expected values are computed by hand."""

from __future__ import annotations

import json

import pytest

from cfemu.analytics import AnalyticsQueryError

# (seconds after T0 = 2026-01-15 10:00:00 UTC, a Thursday; blob1, blob2, double1, double2)
POINTS = [
    (0, "paris", "a", 10, 1),
    (20, "paris", "b", 20, 2),
    (70, "london", "a", 5, 3),
    (130, "paris", "a", 40, 4),
    (400, "berlin", "c", 7, 5),
    (3700, "london", "b", 15, 6),
    (86400 + 5, "paris", "c", 100, 7),
    (6 * 86400, "berlin", "a", 1, 8),
]


@pytest.fixture
async def q(rt):
    """Writes POINTS at their times (the clock ends at T0 + 6 days) and returns a query helper."""
    elapsed = 0
    for offset, city, kind, value, weight in POINTS:
        await rt.advance(offset - elapsed)
        elapsed = offset
        rt.env.AE.writeDataPoint({"blobs": [city, kind], "doubles": [value, weight], "indexes": [city[:1]]})

    def query(sql: str):
        result = rt.analytics.query(sql)
        return result["data"] if isinstance(result, dict) else result

    query.rt = rt
    return query


def one(q, sql):
    rows = q(sql)
    assert len(rows) == 1, rows
    return rows[0]


async def test_count_sum_avg_min_max_grouped(q):
    rows = q("SELECT blob1 AS city, count() AS n, sum(_sample_interval) AS events, sum(double1) AS total, "
             "avg(double1) AS mean, min(double1) AS lo, max(double1) AS hi FROM events GROUP BY city ORDER BY city")
    assert rows == [
        {"city": "berlin", "n": "2", "events": "2", "total": 8, "mean": 4, "lo": 1, "hi": 7},
        {"city": "london", "n": "2", "events": "2", "total": 20, "mean": 10, "lo": 5, "hi": 15},
        {"city": "paris", "n": "4", "events": "4", "total": 170, "mean": 42.5, "lo": 10, "hi": 100},
    ]


async def test_unaliased_columns_are_named_as_written_with_clickhouse_types(q):
    result = q.rt.analytics.query("SELECT count(), sum(_sample_interval), SUM(double1), count(DISTINCT blob2), "
                                  "max(timestamp), blob1 FROM events WHERE blob1 = 'berlin' GROUP BY blob1")
    assert result["meta"] == [
        {"name": "count()", "type": "UInt64"},
        {"name": "sum(_sample_interval)", "type": "UInt64"},
        {"name": "SUM(double1)", "type": "Float64"},
        {"name": "countDistinct(blob2)", "type": "UInt64"},
        {"name": "max(timestamp)", "type": "DateTime"},
        {"name": "blob1", "type": "String"},
    ]
    assert result["data"] == [{"count()": "2", "sum(_sample_interval)": "2", "SUM(double1)": 8,
                               "countDistinct(blob2)": "2", "max(timestamp)": "2026-01-21 10:00:00",
                               "blob1": "berlin"}]
    assert result["rows"] == 1


async def test_unaliased_expressions_are_named_as_clickhouse_formats_them(q):
    # ClickHouse names a column by its parsed expression: operators as functions, count(*) as
    # count(), DISTINCT folded into the name, INTERVAL literals as toInterval<Unit>(...).
    result = q.rt.analytics.query(
        "SELECT count(*), toStartOfInterval(timestamp, INTERVAL '1' MINUTE), "
        "toStartOfInterval(timestamp, INTERVAL 5 MINUTE), double1 * 2, -double1, -1, "
        "blob1 = 'paris' AND double1 > 1 AND double2 < 9, quantileExactWeighted(0.95)(double1, _sample_interval), "
        "double1 IN (10, 20), 1.0, 'it''s', now() - INTERVAL '1 DAY' "
        "FROM events WHERE timestamp < toDateTime('2026-01-15 10:00:01') "
        "GROUP BY timestamp, double1, blob1, double2")
    assert [m["name"] for m in result["meta"]] == [
        "count()",
        "toStartOfInterval(timestamp, toIntervalMinute('1'))",
        "toStartOfInterval(timestamp, toIntervalMinute(5))",
        "multiply(double1, 2)",
        "negate(double1)",
        "-1",
        "and(equals(blob1, 'paris'), greater(double1, 1), less(double2, 9))",
        "quantileExactWeighted(0.95)(double1, _sample_interval)",
        "in(double1, (10, 20))",
        "1.",
        "'it\\'s'",
        "minus(now(), toIntervalDay(1))",
    ]
    assert result["data"][0]["count()"] == "1"
    assert result["data"][0]["toStartOfInterval(timestamp, toIntervalMinute('1'))"] == "2026-01-15 10:00:00"
    # a subquery's unaliased column is reachable under that name
    assert one(q, "SELECT `count()` AS n FROM (SELECT count() FROM events)") == {"n": "8"}


async def test_aggregates_over_no_rows_give_the_types_defaults_not_null(q):
    # Analytics Engine columns are not Nullable: ClickHouse answers an aggregate over no rows with
    # the type's default value (avg's NaN is written as null in JSON)
    assert one(q, "SELECT sum(double1) AS s, sum(_sample_interval) AS si, min(timestamp) AS t, max(blob1) AS b, "
                  "argMax(blob1, double1) AS am, any(index1) AS a, count() AS n, avg(double1) AS av "
                  "FROM events WHERE blob1 = 'nowhere'") == {
        "s": 0, "si": "0", "t": "1970-01-01 00:00:00", "b": "", "am": "", "a": "", "n": "0", "av": None}
    assert q("SELECT sum(double1) AS s FROM events WHERE blob1 = 'nowhere' FORMAT TabSeparated") == "0\n"


async def test_division_by_zero_follows_clickhouse(q):
    # floats divide to inf/nan (written as null in JSON, inf/nan in TabSeparated); integer division
    # and integer modulo by zero are errors
    assert one(q, "SELECT 1 / 0 AS a, double1 / 0 AS b FROM events LIMIT 1") == {"a": None, "b": None}
    assert q("SELECT double1 / 0 AS b, -1 / 0 AS c, 0 / 0 AS d FROM events LIMIT 1 FORMAT TabSeparated") == "inf\t-inf\tnan\n"
    for sql in ("SELECT intDiv(double1, 0) AS a FROM events", "SELECT intDiv(1, double2 - double2) AS a FROM events",
                "SELECT toUInt32(double1) % 0 AS a FROM events"):
        with pytest.raises(AnalyticsQueryError) as info:
            q(sql)
        assert str(info.value) == "Division by zero"


async def test_deeply_nested_or_huge_input_gives_a_clear_error(q):
    from cfemu.analytics.sql import TOO_DEEP

    for sql in ("SELECT " + "(" * 3000 + "1" + ")" * 3000 + " AS x", "SELECT " + "+".join(["1"] * 5000) + " AS x"):
        with pytest.raises(AnalyticsQueryError) as info:
            q(sql)
        assert str(info.value) == TOO_DEEP
    # a LIMIT past DuckDB's BIGINT is still a valid ClickHouse UInt64 limit
    assert q("SELECT count() AS n FROM events LIMIT 18446744073709551615") == [{"n": "8"}]


async def test_result_types_of_intervals_and_exact_quantiles(q):
    result = q.rt.analytics.query(
        "SELECT toStartOfInterval(timestamp, INTERVAL 1 DAY) AS d, toStartOfInterval(timestamp, INTERVAL 1 WEEK) AS w, "
        "toStartOfInterval(timestamp, INTERVAL 2 MONTH) AS m, quantileExactWeighted(0.5)(double1, _sample_interval) AS qf, "
        "quantileExactWeighted(0.5)(toUInt32(double2), _sample_interval) AS qi, "
        "quantileExactWeighted(0.5)(timestamp, double2) AS qt FROM events GROUP BY d, w, m ORDER BY d LIMIT 1")
    assert [m["type"] for m in result["meta"]] == ["DateTime", "Date", "Date", "Float64", "UInt32", "DateTime"]
    assert result["data"][0] == {"d": "2026-01-15 00:00:00", "w": "2026-01-12", "m": "2026-01-01", "qf": 10,
                                 "qi": 3, "qt": "2026-01-15 10:06:40"}


async def test_expressions_that_can_be_null_have_nullable_types(q):
    result = q.rt.analytics.query(
        "SELECT if(double1 > 30, blob1, NULL) AS a, CASE WHEN double1 > 30 THEN toUInt64(double1) END AS b, "
        "CASE WHEN double1 > 30 THEN 'big' ELSE 'small' END AS c, NULL AS d FROM events ORDER BY double1 DESC LIMIT 2")
    assert result["meta"] == [{"name": "a", "type": "Nullable(String)"}, {"name": "b", "type": "Nullable(UInt64)"},
                              {"name": "c", "type": "String"}, {"name": "d", "type": "Nullable(Nothing)"}]
    # a Nullable(UInt64) is still a 64-bit integer: quoted in JSON
    assert result["data"] == [{"a": "paris", "b": "100", "c": "big", "d": None},
                              {"a": "paris", "b": "40", "c": "big", "d": None}]
    assert one(q, "SELECT if(double1 > 1000, blob1, NULL) AS a FROM events LIMIT 1") == {"a": None}


async def test_string_functions_of_cloudflares_reference(q):
    q.rt.env.AE.writeDataPoint({"blobs": ["héllo: wörld", ""], "doubles": [2.5]})
    row = one(q, "SELECT length(blob1) AS len, empty(blob2) AS e, notEmpty(blob1) AS ne, upperUTF8(blob1) AS up, "
                 "lowerUTF8('ÉA') AS low, lower('ÉA') AS low_ascii, upper('éa') AS up_ascii, toUpper('éa') AS up_utf8, startsWith(blob1, 'hé') AS sw, endsWith(blob1, 'x') AS ew, "
                 "position(':' IN blob1) AS p, position(blob1, 'zz') AS p0, substring(blob1, 8) AS tail, "
                 "substring(blob1, 1, position(':' IN blob1) - 1) AS head, format('{} = {}', blob1, double1) AS f, "
                 "format('{1}/{0}', 'a', 'b') AS f2, extract(SECOND FROM timestamp) AS sec, "
                 "extract(YEAR FROM toDateTime('2022-06-06 11:30:15')) AS y FROM events WHERE double1 = 2.5")
    # length counts characters (Cloudflare's length is ClickHouse's lengthUTF8), substring code points
    assert row == {"len": "12", "e": 1, "ne": 1, "up": "HÉLLO: WÖRLD", "low": "éa", "low_ascii": "Éa", "up_ascii": "éA", "up_utf8": "ÉA", "sw": 1, "ew": 0, "p": "6",
                   "p0": "0", "tail": "wörld", "head": "héllo", "f": "héllo: wörld = 2.5", "f2": "b/a",
                   "sec": 0, "y": 2022}
    result = q.rt.analytics.query("SELECT position(':' IN blob1), extract(HOUR FROM timestamp), length(blob1) "
                                  "FROM events LIMIT 1")
    assert result["meta"] == [{"name": "position(blob1, ':')", "type": "UInt64"},
                              {"name": "toHour(timestamp)", "type": "UInt8"}, {"name": "length(blob1)", "type": "UInt64"}]
    with pytest.raises(AnalyticsQueryError) as info:
        q("SELECT extract(WEEK FROM timestamp) AS w FROM events")
    assert str(info.value) == "extract() takes YEAR, MONTH, DAY, HOUR, MINUTE or SECOND, not WEEK"


async def test_top_k_weighted_by_any_column(q):
    # blob2 weighted by double2: a = 1+3+4+8 = 16, c = 5+7 = 12, b = 2+6 = 8
    assert one(q, "SELECT topKWeighted(2)(blob2, double2) AS t, topKWeighted(blob1, toUInt32(double2)) AS all_ "
                  "FROM events") == {"t": ["a", "c"], "all_": ["paris", "berlin", "london"]}


async def test_math_functions_of_cloudflares_reference(q):
    row = one(q, "SELECT round(2.5) AS r1, round(5.5) AS r2, round(3.14, 1) AS r3, round(-2.5) AS r4, "
                 "floor(3.14, 1) AS f, ceil(3.14, 1) AS c, pow(2, 10) AS p, log(1) AS l0, ln(exp_base) AS l1 "
                 "FROM (SELECT 2.718281828459045 AS exp_base)")
    assert row == {"r1": 2, "r2": 6, "r3": 3.1, "r4": -2, "f": 3.1, "c": 3.2, "p": 1024, "l0": 0, "l1": 1}


async def test_count_variants(q):
    assert one(q, "SELECT count() AS a, count(*) AS b, COUNT(blob1) AS c, count(DISTINCT blob1) AS d, "
                  "count(DISTINCT blob2) AS e FROM events") == {"a": "8", "b": "8", "c": "8", "d": "3", "e": "3"}


async def test_sum_and_avg_distinct(q):
    assert one(q, "SELECT sum(DISTINCT double2 - double2 + 1) AS s, avg(DISTINCT intDiv(double1, 100)) AS a FROM events") \
        == {"s": 1, "a": 0.5}


async def test_quantile_exact_weighted(q):
    # values sorted: 1 5 7 10 15 20 40 100; ClickHouse takes the first whose cumulative weight >= ceil(W*q)
    row = one(q, "SELECT quantileExactWeighted(0.5)(double1, _sample_interval) AS p50, "
                 "quantileExactWeighted(0.95)(double1, _sample_interval) AS p95, "
                 "quantileExactWeighted(0.25)(double1, _sample_interval) AS p25, "
                 "quantileExactWeighted(0)(double1, _sample_interval) AS p0, "
                 "quantileExactWeighted(1)(double1, _sample_interval) AS p100 FROM events")
    assert row == {"p50": 10, "p95": 100, "p25": 5, "p0": 1, "p100": 100}


async def test_quantile_with_other_weights_follows_clickhouse(q):
    # weights = double2; W = 36, threshold ceil(18) = 18; cumulative by value: 1:8 5:11 7:16 10:17 15:23
    assert one(q, "SELECT quantileExactWeighted(0.5)(double1, double2) AS m FROM events") == {"m": 15}
    # threshold ceil(36 * 0.9) = 33: ... 15:23 20:25 40:29 100:36
    assert one(q, "SELECT quantileExactWeighted(0.9)(double1, double2) AS m FROM events") == {"m": 100}


async def test_quantile_weighted_compat_forms(q):
    assert one(q, "SELECT quantileWeighted(0.5, double1, _sample_interval) AS a, "
                  "quantileWeighted(0.5)(double1, _sample_interval) AS b FROM events") == {"a": 10, "b": 10}


async def test_quantile_per_group(q):
    rows = q("SELECT blob1, quantileExactWeighted(0.5)(double1, _sample_interval) AS m FROM events "
             "GROUP BY blob1 ORDER BY blob1")
    # berlin [1,7] -> ceil(1)=1 -> 1; london [5,15] -> 5; paris [10,20,40,100] -> ceil(2)=2 -> 20
    assert rows == [{"blob1": "berlin", "m": 1}, {"blob1": "london", "m": 5}, {"blob1": "paris", "m": 20}]


async def test_arg_max_arg_min_first_last(q):
    assert one(q, "SELECT argMax(blob1, double1) AS hi, argMin(blob1, double1) AS lo, "
                  "argMax(double1, timestamp) AS latest FROM events") == {"hi": "paris", "lo": "berlin", "latest": 1}


async def test_top_k(q):
    result = q.rt.analytics.query("SELECT topK(1)(blob1) AS one, topK(blob2) AS kinds, "
                                  "topKWeighted(2)(blob2, _sample_interval) AS two FROM events")
    assert result["meta"][1] == {"name": "kinds", "type": "Array(String)"}
    # blob2: a x4, b x2, c x2 (ties ordered by value)
    assert result["data"] == [{"one": ["paris"], "kinds": ["a", "b", "c"], "two": ["a", "b"]}]


@pytest.mark.parametrize("interval, expected", [
    ("INTERVAL '1' MINUTE", [("2026-01-15 10:00:00", 2), ("2026-01-15 10:01:00", 1), ("2026-01-15 10:02:00", 1),
                             ("2026-01-15 10:06:00", 1), ("2026-01-15 11:01:00", 1), ("2026-01-16 10:00:00", 1),
                             ("2026-01-21 10:00:00", 1)]),
    ("INTERVAL '5' MINUTE", [("2026-01-15 10:00:00", 4), ("2026-01-15 10:05:00", 1), ("2026-01-15 11:00:00", 1),
                             ("2026-01-16 10:00:00", 1), ("2026-01-21 10:00:00", 1)]),
    ("INTERVAL 1 HOUR", [("2026-01-15 10:00:00", 5), ("2026-01-15 11:00:00", 1), ("2026-01-16 10:00:00", 1),
                         ("2026-01-21 10:00:00", 1)]),
    ("INTERVAL '1' DAY", [("2026-01-15 00:00:00", 6), ("2026-01-16 00:00:00", 1), ("2026-01-21 00:00:00", 1)]),
    # ClickHouse answers a Date for week, month, quarter and year intervals
    ("INTERVAL '1' WEEK", [("2026-01-12", 7), ("2026-01-19", 1)]),
    ("INTERVAL '1' MONTH", [("2026-01-01", 8)]),
    ("INTERVAL '1' QUARTER", [("2026-01-01", 8)]),
    ("INTERVAL '1' YEAR", [("2026-01-01", 8)]),
])
async def test_to_start_of_interval(q, interval, expected):
    rows = q(f"SELECT toStartOfInterval(timestamp, {interval}) AS t, count() AS n FROM events GROUP BY t ORDER BY t")
    assert [(r["t"], int(r["n"])) for r in rows] == expected


@pytest.mark.parametrize("fn, expected", [
    ("toStartOfMinute", "2026-01-15 10:06:00"),
    ("toStartOfFiveMinutes", "2026-01-15 10:05:00"),
    ("toStartOfTenMinutes", "2026-01-15 10:00:00"),
    ("toStartOfFifteenMinutes", "2026-01-15 10:00:00"),
    ("toStartOfHour", "2026-01-15 10:00:00"),
    ("toStartOfDay", "2026-01-15 00:00:00"),
    ("toStartOfWeek", "2026-01-12"),
    ("toStartOfMonth", "2026-01-01"),
    ("toStartOfQuarter", "2026-01-01"),
    ("toStartOfYear", "2026-01-01"),
])
async def test_to_start_of_unit(q, fn, expected):
    # the 10:06:40 point
    assert one(q, f"SELECT {fn}(timestamp) AS t FROM events WHERE blob2 = 'c' AND double1 = 7") == {"t": expected}


async def test_date_functions_return_types(q):
    result = q.rt.analytics.query("SELECT toStartOfMonth(timestamp) AS m, toStartOfHour(timestamp) AS h, today() AS d, "
                                  "now() AS n FROM events LIMIT 1")
    assert [m["type"] for m in result["meta"]] == ["Date", "DateTime", "Date", "DateTime"]


async def test_now_and_today_come_from_the_runtime_clock(q):
    # the clock stands at T0 + 6 days = 2026-01-21 10:00:00
    assert one(q, "SELECT now() AS n, today() AS d") == {"n": "2026-01-21 10:00:00", "d": "2026-01-21"}
    await q.rt.advance(3600)
    assert one(q, "SELECT now() AS n") == {"n": "2026-01-21 11:00:00"}


async def test_interval_arithmetic_in_where(q):
    assert one(q, "SELECT count() AS n FROM events WHERE timestamp > now() - INTERVAL '1' DAY") == {"n": "1"}
    assert one(q, "SELECT count() AS n FROM events WHERE timestamp > NOW() - INTERVAL '6' DAY") == {"n": "7"}
    assert one(q, "SELECT count() AS n FROM events WHERE timestamp >= now() - INTERVAL '6' DAY") == {"n": "8"}
    assert one(q, "SELECT count() AS n FROM events WHERE timestamp < toDateTime('2026-01-15 10:01:00')") == {"n": "2"}
    assert one(q, "SELECT toDateTime('2026-01-15 10:00:00') + INTERVAL 90 MINUTE AS t") == {"t": "2026-01-15 11:30:00"}


async def test_conversions(q):
    row = one(q, "SELECT toDateTime(1768471200) AS a, toDateTime('2026-01-15 10:00:00') AS b, toDateTime('1768471200') AS c, "
                 "toUnixTimestamp(toDateTime('2026-01-15 10:00:00')) AS d, toUInt32(toDateTime('2026-01-15 10:00:00')) AS e, "
                 "toUInt32(3.9) AS f, toDateTime(1768471200.7) AS g")
    assert row == {"a": "2026-01-15 10:00:00", "b": "2026-01-15 10:00:00", "c": "2026-01-15 10:00:00",
                   "d": 1768471200, "e": 1768471200, "f": 3, "g": "2026-01-15 10:00:00"}


async def test_to_datetime_of_columns(q):
    rows = q("SELECT toDateTime(double1 * 86400) AS t FROM events WHERE blob1 = 'berlin' ORDER BY t")
    assert rows == [{"t": "1970-01-02 00:00:00"}, {"t": "1970-01-08 00:00:00"}]


async def test_int_div_bucketing(q):
    result = q.rt.analytics.query("SELECT intDiv(toUInt32(timestamp), 300) * 300 AS t, count() AS n FROM events "
                                  "WHERE toUnixTimestamp(timestamp) < 1768472000 GROUP BY t ORDER BY t")
    # UInt32 * UInt16 is UInt64 in ClickHouse, so it is written as a string
    assert result["meta"][0] == {"name": "t", "type": "UInt64"}
    assert result["data"] == [{"t": "1768471200", "n": "4"}, {"t": "1768471500", "n": "1"}]
    assert one(q, "SELECT intDiv(7, 2) AS a, intDiv(-7, 2) AS b, intDiv(7.9, 2) AS c") == {"a": 3, "b": -3, "c": "3"}


async def test_format_datetime(q):
    row = one(q, "SELECT formatDateTime(timestamp, '%Y-%m-%d %H:%i:%S') AS a, formatDateTime(timestamp, '%F %T') AS b, "
                 "formatDateTime(timestamp, '%d/%m/%y %e %j %W %M %Q%%') AS c FROM events WHERE double1 = 5")
    assert row == {"a": "2026-01-15 10:01:10", "b": "2026-01-15 10:01:10", "c": "15/01/26 15 015 Thursday January 1%"}


async def test_if_and_case(q):
    rows = q("SELECT blob1, if(double1 > 10, 'big', 'small') AS size, "
             "CASE WHEN double1 >= 40 THEN 2 WHEN double1 >= 10 THEN 1 ELSE 0 END AS level "
             "FROM events WHERE blob1 = 'paris' ORDER BY double1")
    assert [(r["size"], r["level"]) for r in rows] == [("small", 1), ("big", 1), ("big", 2), ("big", 2)]


async def test_time_parts(q):
    assert one(q, "SELECT toYear(timestamp) AS y, toMonth(timestamp) AS m, toDayOfMonth(timestamp) AS d, "
                  "toDayOfWeek(timestamp) AS w, toHour(timestamp) AS h, toMinute(timestamp) AS mi, "
                  "toSecond(timestamp) AS s, toYYYYMM(timestamp) AS ym FROM events WHERE double1 = 7") == {
        "y": 2026, "m": 1, "d": 15, "w": 4, "h": 10, "mi": 6, "s": 40, "ym": 202601}


async def test_where_operators(q):
    assert one(q, "SELECT count() AS n FROM events WHERE blob1 IN ('paris', 'berlin') AND NOT blob2 = 'a'") == {"n": "3"}
    assert one(q, "SELECT count() AS n FROM events WHERE double1 BETWEEN 5 AND 15") == {"n": "4"}
    assert one(q, "SELECT count() AS n FROM events WHERE blob1 LIKE 'l%' OR double1 % 2 = 1") == {"n": "4"}
    assert one(q, "SELECT count() AS n FROM events WHERE double1 / 2 > 10 AND double1 != 100") == {"n": "1"}
    assert one(q, "SELECT count() AS n FROM events WHERE index1 = 'p'") == {"n": "4"}


async def test_having_order_limit_offset(q):
    rows = q("SELECT blob1, count() AS n FROM events GROUP BY blob1 HAVING n > 1 ORDER BY n DESC, blob1 ASC")
    assert rows == [{"blob1": "paris", "n": "4"}, {"blob1": "berlin", "n": "2"}, {"blob1": "london", "n": "2"}]
    assert q("SELECT blob1, count() AS n FROM events GROUP BY blob1 HAVING count() > 2") == [{"blob1": "paris", "n": "4"}]
    rows = q("SELECT double1 FROM events ORDER BY double1 DESC LIMIT 3 OFFSET 1")
    assert [r["double1"] for r in rows] == [40, 20, 15]
    assert len(q("SELECT double1 FROM events LIMIT ALL")) == 8
    assert [r["double1"] for r in q("SELECT double1 FROM events ORDER BY double1 LIMIT 2")] == [1, 5]
    assert [r["double1"] for r in q("SELECT double1 FROM events ORDER BY 1 DESC LIMIT 1")] == [100]


async def test_alias_shadowing_a_column_is_used_in_group_by(q):
    rows = q("SELECT toStartOfInterval(timestamp, INTERVAL '1' DAY) AS timestamp, count() AS n FROM events "
             "GROUP BY timestamp ORDER BY timestamp")
    assert rows == [{"timestamp": "2026-01-15 00:00:00", "n": "6"}, {"timestamp": "2026-01-16 00:00:00", "n": "1"},
                    {"timestamp": "2026-01-21 00:00:00", "n": "1"}]


async def test_subquery_in_from(q):
    rows = q("SELECT city, readings FROM (SELECT blob1 AS city, count() AS readings FROM events GROUP BY city) "
             "WHERE readings > 1 ORDER BY readings DESC, city LIMIT 2")
    assert rows == [{"city": "paris", "readings": "4"}, {"city": "berlin", "readings": "2"}]
    assert one(q, "SELECT max(total) AS m FROM (SELECT blob1, sum(double1) AS total FROM events GROUP BY blob1)") == {"m": 170}
    assert one(q, "SELECT count() AS n FROM (SELECT * FROM events WHERE double1 > 10)") == {"n": "4"}


async def test_sampling_aware_aggregates(q):
    assert one(q, "SELECT SUM(_sample_interval * double1) / SUM(_sample_interval) AS avg FROM events") == {"avg": 24.75}


async def test_select_star_and_show_tables(q):
    result = q.rt.analytics.query("SELECT * FROM events ORDER BY timestamp LIMIT 1")
    names = [m["name"] for m in result["meta"]]
    assert names[:4] == ["dataset", "timestamp", "_sample_interval", "index1"]
    assert names[4:24] == [f"blob{i}" for i in range(1, 21)] and names[24:] == [f"double{i}" for i in range(1, 21)]
    assert result["data"][0]["blob1"] == "paris" and result["data"][0]["double2"] == 1
    assert q("SHOW TABLES") == [{"dataset": "events"}]
    assert q.rt.analytics.query("SHOW TABLES FORMAT JSONEachRow") == '{"dataset":"events"}\n'
    assert q("SHOW TIMEZONE") == [{"timezone": "Etc/UTC"}]


async def test_query_without_a_table(q):
    assert q("SELECT 'Hello Workers Analytics Engine' AS message") == [{"message": "Hello Workers Analytics Engine"}]
    result = q.rt.analytics.query("SELECT 1 + 1, 2.5 * 2 AS f, 'x' AS s, -3 AS neg")
    assert result["meta"] == [{"name": "plus(1, 1)", "type": "UInt16"}, {"name": "f", "type": "Float64"},
                              {"name": "s", "type": "String"}, {"name": "neg", "type": "Int8"}]
    assert result["data"] == [{"plus(1, 1)": 2, "f": 5, "s": "x", "neg": -3}]


# -- formats ------------------------------------------------------------------------------------------


async def test_format_json_is_the_default(q):
    plain = q.rt.analytics.query("SELECT blob1, count() AS n FROM events GROUP BY blob1 ORDER BY blob1")
    explicit = q.rt.analytics.query("SELECT blob1, count() AS n FROM events GROUP BY blob1 ORDER BY blob1 FORMAT JSON")
    assert plain == explicit
    assert plain == {"meta": [{"name": "blob1", "type": "String"}, {"name": "n", "type": "UInt64"}],
                     "data": [{"blob1": "berlin", "n": "2"}, {"blob1": "london", "n": "2"}, {"blob1": "paris", "n": "4"}],
                     "rows": 3}


async def test_format_json_reports_rows_before_limit_when_there_is_a_limit(q):
    # ClickHouse's JSON adds rows_before_limit_at_least (rows there were without the LIMIT) after `rows`
    result = q.rt.analytics.query("SELECT blob1, count() AS n FROM events GROUP BY blob1 ORDER BY n DESC LIMIT 1")
    assert list(result) == ["meta", "data", "rows", "rows_before_limit_at_least"]
    assert result["data"] == [{"blob1": "paris", "n": "4"}]
    assert result["rows"] == 1 and result["rows_before_limit_at_least"] == 3
    result = q.rt.analytics.query("SELECT blob1 FROM events ORDER BY timestamp LIMIT 2 OFFSET 7")
    assert result["rows"] == 1 and result["rows_before_limit_at_least"] == 8
    assert "rows_before_limit_at_least" not in q.rt.analytics.query("SELECT blob1 FROM events LIMIT ALL")
    assert "rows_before_limit_at_least" not in q.rt.analytics.query(
        "SELECT n FROM (SELECT count() AS n FROM events LIMIT 1)")


async def test_format_json_each_row(q):
    text = q.rt.analytics.query("SELECT blob1, count() AS n, max(double1) AS m, min(timestamp) AS t FROM events "
                                "GROUP BY blob1 ORDER BY blob1 FORMAT JSONEachRow")
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 3
    assert lines[0] == '{"blob1":"berlin","n":"2","m":7,"t":"2026-01-15 10:06:40"}'
    assert [json.loads(line)["blob1"] for line in lines] == ["berlin", "london", "paris"]


async def test_format_tab_separated_escapes_like_clickhouse(q):
    q.rt.env.AE.writeDataPoint({"blobs": ["tab\there", "new\nline", "back\\slash 'q'"], "doubles": [0.25]})
    text = q.rt.analytics.query("SELECT blob1, blob2, blob3, double1, timestamp, topK(2)(blob1) FROM events "
                                "WHERE double1 = 0.25 GROUP BY blob1, blob2, blob3, double1, timestamp FORMAT TabSeparated")
    assert text == "tab\\there\tnew\\nline\tback\\\\slash \\'q\\'\t0.25\t2026-01-21 10:00:00\t['tab\\there']\n"


async def test_format_option_overrides_the_clause(q):
    text = q.rt.analytics.query("SELECT count() AS n FROM events FORMAT JSON", format="TabSeparated")
    assert text == "8\n"


# -- what is outside the subset -----------------------------------------------------------------------


@pytest.mark.parametrize("sql, message", [
    ("SELECT * FROM events JOIN other_ds ON events.blob1 = other_ds.blob1", "JOIN is not supported"),
    ("SELECT * FROM events, events", "JOIN is not supported"),
    ("SELECT blob1 FROM events UNION ALL SELECT blob1 FROM events", "UNION is not supported"),
    ("INSERT INTO events VALUES (1)", "Only SELECT and SHOW TABLES statements are supported, not INSERT"),
    ("DELETE FROM events WHERE 1", "Only SELECT and SHOW TABLES statements are supported, not DELETE"),
    ("CREATE TABLE x (a String)", "Only SELECT and SHOW TABLES statements are supported, not CREATE"),
    ("DROP TABLE events", "Only SELECT and SHOW TABLES statements are supported, not DROP"),
    ("SELECT 1; SELECT 2", "Only one statement per query is supported"),
    ("SELECT * FROM nope", "Unknown table 'nope': no dataset of that name has been written to"),
    ("SELECT blob21 FROM events", "Unknown column 'blob21'"),
    ("SELECT foo(blob1) FROM events", "Unknown function foo: it is not among the functions Analytics Engine SQL supports"),
    ("SELECT count() OVER () FROM events", "Window functions (OVER ...) are not supported"),
    ("SELECT * FROM events WHERE blob1 IN (SELECT blob1 FROM events)", "IN (subquery) is not supported: list the values"),
    ("WITH x AS (SELECT 1) SELECT * FROM events", "WITH (common table expressions) is not supported"),
    ("SELECT * FROM events SETTINGS max_threads = 1", "SETTINGS is not supported"),
    ("SELECT * FROM numbers(10)", "Table functions such as numbers() are not supported"),
    ("SELECT * FROM events FORMAT CSV", "Unsupported FORMAT CSV: use JSON, JSONEachRow or TabSeparated"),
    ("SELECT * FROM events LIMIT 1 BY blob1", "LIMIT ... BY is not supported"),
    ("SELECT sumIf(double1, double1 > 1) FROM events", "Unknown function sumIf: it is not among the functions Analytics Engine SQL supports"),
    ("SELECT formatDateTime(timestamp, '%Z') FROM events", "formatDateTime: the format specifier %Z is not supported"),
    ("SELECT toDateTime(blob1, 'America/New_York') FROM events", "toDateTime: only the UTC timezone is supported locally, not 'America/New_York'"),
    ("SELECT quantileExactWeighted(1.5)(double1, _sample_interval) FROM events", "quantileExactWeighted: the level must be between 0 and 1, not 1.5"),
    ("SELECT toStartOfInterval(timestamp, INTERVAL '1' FORTNIGHT) FROM events", "Unsupported interval unit FORTNIGHT"),
    ("SELECT FROM WHERE", "Syntax error"),
    ("", "The query is empty"),
    ("SHOW DATABASES", "SHOW DATABASES is not supported: only SHOW TABLES and SHOW TIMEZONE"),
])
async def test_outside_the_subset_is_refused_with_a_clear_message(q, sql, message):
    with pytest.raises(AnalyticsQueryError) as info:
        q.rt.analytics.query(sql)
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.status == 422


async def test_engine_errors_come_back_as_query_errors(q):
    with pytest.raises(AnalyticsQueryError) as info:
        q.rt.analytics.query("SELECT blob1, count() FROM events")  # blob1 is neither grouped nor aggregated
    assert "GROUP BY" in str(info.value)


async def test_query_text_details(q):
    assert q("SELECT `blob1`, count() FROM events WHERE blob1 = 'london' GROUP BY blob1;") == [
        {"blob1": "london", "count()": "2"}]
    assert q("-- a comment\nselect COUNT() as n from events /* another */") == [{"n": "8"}]
    # ClickHouse's LIMIT offset, count
    assert [r["double1"] for r in q("SELECT double1 FROM events ORDER BY double1 LIMIT 2, 3")] == [7, 10, 15]
    assert q("SELECT DISTINCT blob2 FROM events ORDER BY blob2") == [{"blob2": "a"}, {"blob2": "b"}, {"blob2": "c"}]
    assert q("SELECT e.blob1 FROM events AS e WHERE e.double1 = 1") == [{"e.blob1": "berlin"}]
    assert q("SELECT toString(double1) AS s, toFloat64('2.5') AS f, concat(blob1, '/', blob2) AS c, upper(blob2) AS u "
             "FROM events WHERE double1 = 40") == [{"s": "40", "f": 2.5, "c": "paris/a", "u": "A"}]
