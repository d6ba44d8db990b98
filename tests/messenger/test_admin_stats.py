"""The admin page's endpoint: hourly analytics counts through the Analytics Engine SQL API (cfemu's own
implementation, served here by the same handler `cfemu dev` mounts), and the static page itself."""

from __future__ import annotations

import json
import re

from aiohttp import web

from messenger_client import api, frames_until, login, room
from messenger_support import ROOT, test_config

ADMIN = "stats-admin-token-0123456789abcdef"


class _Late:
    """The runtime's analytics service, looked up when a query comes (the runtime starts after the server,
    whose URL its config names)."""

    rt = None

    async def aquery(self, sql, format=None):
        return await self.rt.service("analytics").aquery(sql, format=format)


async def _sql_server(service):
    """cfemu's SQL API handler (the one `cfemu dev` mounts) on a free local port; (runner, url)."""
    from cfemu.analytics.http import add_routes

    app = web.Application()
    add_routes(app, service)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/client/v4/accounts/local/analytics_engine/sql"


async def _stats(rt, query="", token=ADMIN, status=200):
    resp = await rt.fetch("/api/admin/stats" + query, headers={"authorization": f"Bearer {token}"})
    body = json.loads(await resp.text())
    assert resp.status == status, body
    return body


async def test_stats_count_logins_messages_rate_limits_and_ai_calls_per_hour(tmp_path):
    from cfemu.testing import Runtime

    late = _Late()
    runner, url = await _sql_server(late)
    rt = Runtime.from_config(test_config(tmp_path, {"ADMIN_TOKEN": ADMIN, "ANALYTICS_SQL_URL": url}),
                             persist_to=tmp_path / "state")
    late.rt = rt
    await rt.start()
    try:
        await login(rt, "alice")
        await api(rt, "POST", "/api/auth/login", body={"username": "alice", "password": "nope-nope"}, expect=401)
        await rt.advance(3600)
        alice = await login(rt, "alice")
        await login(rt, "bob")
        ws, _ = await room(rt, "general", alice)
        for i in range(16):
            await ws.send(json.dumps({"type": "send", "cid": f"s{i}", "kind": "text", "text": f"hi {i}"}))
        err, _ = await frames_until(ws, "error")
        assert err["code"] == "rate_limited"
        await ws.send(json.dumps({"type": "ping"}))
        await rt.settle()
        data = (await _stats(rt, "?hours=3"))["data"]
        assert len(data["hours"]) == 3 and all(h.endswith(":00Z") for h in data["hours"])
        s = data["series"]
        assert s["logins"] == [0, 1, 2] and s["loginFailures"] == [0, 1, 0]
        assert s["messages"][2] == 15 and s["rateLimited"][2] >= 1
        assert set(s) == {"logins", "loginFailures", "messages", "rateLimited", "aiInvocations"}
        assert data["source"] == "configured"
        # Guarded like every admin route, and its input checked.
        assert (await _stats(rt, token="wrong", status=403))["error"]["code"] == "forbidden"
        bad = await _stats(rt, "?hours=1000", status=400)
        assert bad["error"] == {"code": "invalid_field", "message": "hours must be 1..168"}
    finally:
        await rt.close()
        await runner.cleanup()


async def test_stats_without_a_reachable_sql_api_answer_503_with_the_reason(tmp_path):
    from cfemu.testing import Runtime

    config = test_config(tmp_path, {"ADMIN_TOKEN": ADMIN,
                                    "ANALYTICS_SQL_URL": "http://127.0.0.1:9/client/v4/accounts/x/analytics_engine/sql"})
    async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
        body = await _stats(rt, status=503)
    assert body["error"]["code"] == "unavailable"
    assert "could not be reached" in body["error"]["message"]


async def test_stats_default_to_the_sql_api_on_the_requests_own_origin(modules):
    dashboard = modules["dashboard"]

    class Env:
        pass

    assert dashboard.sql_url(Env(), "http://127.0.0.1:8787/api/admin/stats?hours=2") == \
        "http://127.0.0.1:8787/client/v4/accounts/local/analytics_engine/sql"
    sql = dashboard.hourly_sql("messenger_events", 24)
    assert "SUM(_sample_interval)" in sql and "INTERVAL '24' HOUR" in sql


def test_the_admin_page_is_static_csp_clean_and_uses_no_other_origin():
    html = (ROOT / "messenger" / "static" / "admin.html").read_text()
    script = (ROOT / "messenger" / "static" / "js" / "admin.js").read_text()
    assert '<script type="module" src="/js/admin.js">' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)            # no inline script (script-src 'self')
    assert "style=" not in html and ".style" not in script            # no inline style (style-src 'self')
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html + script)   # no CDN, no other origin
    assert "/api/admin/stats" in script and "/api/admin/audit" in script


async def test_an_sql_api_answering_odd_rows_is_a_503_not_a_500(tmp_path):
    """ANALYTICS_SQL_URL pointing at something that answers JSON of another shape (rows that are not
    objects, counts that are not numbers) used to raise inside the worker: a 500 with no reason."""
    from cfemu.testing import Runtime

    answers = iter([{"data": [1, 2]}, {"data": [{"hour": "2026-01-01 00:00:00", "event": "login_success", "n": "many"}]},
                    {"data": {"rows": []}}, {"data": [{"hour": 5, "event": None, "n": "inf"}]}])

    async def handler(request):
        return web.json_response(next(answers))

    app = web.Application()
    app.router.add_post("/sql", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        config = test_config(tmp_path, {"ADMIN_TOKEN": ADMIN, "ANALYTICS_SQL_URL": f"http://127.0.0.1:{port}/sql"})
        async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
            for _ in range(4):
                body = await _stats(rt, status=503)
                assert body["error"]["code"] == "unavailable"
                assert "did not answer" in body["error"]["message"]
    finally:
        await runner.cleanup()


async def test_an_sql_api_that_never_answers_is_a_503_after_the_timeout(tmp_path):
    """The SQL API request had no deadline: an endpoint that accepts the connection and never answers
    held the admin's request (and the worker's invocation) open for ever.  Now ANALYTICS_SQL_TIMEOUT_MS
    (default 10 s, on the runtime clock) ends it with 503 `unavailable`."""
    import asyncio

    from cfemu.testing import Runtime

    arrived, never = asyncio.Event(), asyncio.Event()

    async def handler(request):
        arrived.set()
        await never.wait()
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_post("/sql", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        for extra, deadline in (({}, 10), ({"ANALYTICS_SQL_TIMEOUT_MS": "2500"}, 2.5)):
            arrived.clear()
            (tmp_path / str(deadline)).mkdir()
            config = test_config(tmp_path / str(deadline), {"ADMIN_TOKEN": ADMIN, **extra,
                                                            "ANALYTICS_SQL_URL": f"http://127.0.0.1:{port}/sql"})
            async with Runtime.from_config(config, persist_to=tmp_path / str(deadline) / "state") as rt:
                pending = asyncio.ensure_future(_stats(rt, status=503))
                await asyncio.wait_for(arrived.wait(), 5)
                await rt.advance(deadline - 0.5)
                await asyncio.sleep(0.05)
                assert not pending.done()                         # still within the deadline
                await rt.advance(1)
                body = await asyncio.wait_for(pending, 5)
                assert body["error"]["code"] == "unavailable"
                assert body["error"]["message"].endswith(f"did not answer within {int(deadline * 1000)} ms")
    finally:
        never.set()
        await runner.cleanup()
