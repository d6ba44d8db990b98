"""The SQL API over HTTP (Cloudflare's path) and `cfemu analytics query`, against state a runtime wrote."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from cfemu.analytics.http import SQL_PATH, add_routes, handle_sql
from cfemu.cli import main
from cfemu.devinfo import remove_dev_info, write_dev_info
from cfemu.testing import Runtime

T0 = 1768471200.0  # 2026-01-15 10:00:00 UTC
PATH = "/client/v4/accounts/0123456789abcdef/analytics_engine/sql"


async def _client(service) -> TestClient:
    app = web.Application()
    add_routes(app, service)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_post_sql_returns_clickhouse_json(rt):
    for city in ("paris", "paris", "oslo"):
        rt.env.AE.writeDataPoint({"blobs": [city], "doubles": [1.5]})
    client = await _client(rt.analytics)
    try:
        resp = await client.post(PATH, data="SELECT blob1 AS city, count() AS n FROM events GROUP BY city ORDER BY city",
                                 headers={"Authorization": "Bearer anything"})
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == {"meta": [{"name": "city", "type": "String"}, {"name": "n", "type": "UInt64"}],
                                     "data": [{"city": "oslo", "n": "1"}, {"city": "paris", "n": "2"}], "rows": 2}
        resp = await client.post(PATH, data="SELECT sum(double1) AS s FROM events FORMAT JSONEachRow")
        assert resp.status == 200 and await resp.text() == '{"s":4.5}\n'
        resp = await client.post(PATH + "?format=TabSeparated", data="SELECT count() FROM events")
        assert await resp.text() == "3\n"
        resp = await client.post(PATH, data="SELECT * FROM a JOIN b ON a.x = b.x")
        assert resp.status == 422
        assert await resp.text() == "JOIN is not supported: a query reads one table (or a subquery)\n"
        resp = await client.post(PATH, data="SELECT nope FROM events")
        assert resp.status == 422 and await resp.text() == "Unknown column 'nope'\n"
    finally:
        await client.close()


async def test_bad_bodies_and_internal_failures_answer_errors_not_tracebacks(rt, monkeypatch):
    from cfemu.analytics import http

    rt.env.AE.writeDataPoint({"blobs": ["x"]})
    client = await _client(rt.analytics)
    try:
        resp = await client.post(PATH, data=b"SELECT '\xff\xfe' AS x")
        assert resp.status == 400 and await resp.text() == http.NOT_UTF8 + "\n"

        async def broken(*args, **kwargs):
            raise KeyError("a cfemu bug")

        monkeypatch.setattr(rt.analytics, "aquery", broken)
        resp = await client.post(PATH, data="SELECT count() FROM events")
        assert resp.status == 500 and await resp.text() == http.INTERNAL_ERROR + "\n"
        monkeypatch.undo()
        # the server keeps answering
        resp = await client.post(PATH, data="SELECT count() AS n FROM events")
        assert resp.status == 200 and (await resp.json())["data"] == [{"n": "1"}]
    finally:
        await client.close()


async def test_handler_without_a_service_answers_show_tables():
    app = web.Application()

    async def handler(request):
        return await handle_sql(None, request)

    app.router.add_post(SQL_PATH, handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.post(PATH, data="SHOW TABLES")
        assert await resp.json() == {"meta": [{"name": "dataset", "type": "String"}], "data": [], "rows": 0}
        resp = await client.post(PATH, data="SELECT count() FROM events")
        assert resp.status == 422
    finally:
        await client.close()


async def _written_state(worker_config, state):
    async with Runtime.from_config(worker_config, persist_to=state, clock="real") as rt:
        for i in range(4):
            rt.env.AE.writeDataPoint({"blobs": ["a" if i % 2 else "b"], "doubles": [i]})


async def test_cli_reads_the_files_when_no_server_runs(worker_config, tmp_path):
    state = tmp_path / "state"
    await _written_state(worker_config, state)
    runner = CliRunner()
    args = ["--config", str(worker_config), "--persist-to", str(state)]
    result = runner.invoke(main, ["analytics", "query", "SELECT blob1, count() AS n FROM events GROUP BY blob1 ORDER BY blob1", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["data"] == [{"blob1": "a", "n": "2"}, {"blob1": "b", "n": "2"}]
    result = runner.invoke(main, ["analytics", "query", "SELECT sum(double1) FROM events", "--format", "TabSeparated", *args])
    assert result.exit_code == 0 and result.output == "6\n"
    result = runner.invoke(main, ["analytics", "query", "SELECT count() AS n FROM events FORMAT JSONEachRow", *args])
    assert result.output == '{"n":"4"}\n'
    result = runner.invoke(main, ["analytics", "query", "SHOW TABLES", "-f", "TabSeparated", *args])
    assert result.output == "events\n"
    result = runner.invoke(main, ["analytics", "query", "DELETE FROM events", *args])
    assert result.exit_code == 1
    assert "Only SELECT and SHOW TABLES statements are supported, not DELETE" in result.output


async def test_cli_with_an_empty_state_dir(worker_config, tmp_path):
    args = ["--config", str(worker_config), "--persist-to", str(tmp_path / "empty")]
    result = CliRunner().invoke(main, ["analytics", "query", "SHOW TABLES", *args])
    assert result.exit_code == 0 and json.loads(result.output)["rows"] == 0
    result = CliRunner().invoke(main, ["analytics", "query", "SELECT count() FROM events", *args])
    assert result.exit_code == 1 and "Unknown table 'events'" in result.output


async def test_cli_goes_through_a_running_server(worker_config, tmp_path):
    state = tmp_path / "state"
    async with Runtime.from_config(worker_config, persist_to=state, start=T0) as rt:
        rt.env.AE.writeDataPoint({"blobs": ["served"]})  # still buffered: only the server can see it
        client = await _client(rt.analytics)
        write_dev_info(state, str(client.make_url("/")).rstrip("/"))
        try:
            args = ["--config", str(worker_config), "--persist-to", str(state)]
            result = await asyncio.to_thread(
                CliRunner().invoke, main, ["analytics", "query", "SELECT blob1, now() AS t FROM events", *args])
            assert result.exit_code == 0, result.output
            # now() is the runtime's (virtual) clock, so the answer did come from the server
            assert json.loads(result.output)["data"] == [{"blob1": "served", "t": "2026-01-15 10:00:00"}]
            result = await asyncio.to_thread(
                CliRunner().invoke, main, ["analytics", "query", "SELECT x FROM events", "-f", "json", *args])
            assert result.exit_code == 1 and "Unknown column 'x'" in result.output
        finally:
            remove_dev_info(state)
            await client.close()


async def test_cli_hides_rows_past_retention(worker_config, tmp_path):
    import time

    state = tmp_path / "state"
    async with Runtime.from_config(worker_config, persist_to=state, start=time.time() - 100 * 86400) as rt:
        rt.env.AE.writeDataPoint({"blobs": ["ancient"]})
        await rt.advance(80 * 86400)  # 20 days ago: the runtime's clock keeps the first point (80 days old)
        rt.env.AE.writeDataPoint({"blobs": ["recent"]})
    args = ["--config", str(worker_config), "--persist-to", str(state)]
    from cfemu.analytics.storage import AnalyticsStore

    store = AnalyticsStore(state / "analytics", read_only=True)
    assert store.execute('SELECT count(*) FROM "events"')[1] == [(2,)]  # both rows are still stored
    store.close()
    # ...but by the real clock the first is past three months: the read-only CLI must not show it
    result = CliRunner().invoke(main, ["analytics", "query", "SELECT blob1 FROM events", "-f", "TabSeparated", *args])
    assert result.exit_code == 0, result.output
    assert result.output == "recent\n"
