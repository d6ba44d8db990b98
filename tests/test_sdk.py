"""The `workers` and `asgi` modules against the official Python Workers SDK's surface (workers-py)."""

from __future__ import annotations

import asyncio

from http import HTTPMethod, HTTPStatus

import pytest

from cfemu.http import Request, Response
from cfemu.sdk.forms import Blob, File, FormData
from cfemu.testing import Runtime


# -- Request / Response details the SDK defines ----------------------------------------------------

def test_request_url_is_normalised_and_repr_matches_the_sdk():
    req = Request("https://Test.com", method=HTTPMethod.POST)
    assert req.url == "https://test.com/"
    assert req.method == "POST"
    assert repr(req) == "Request(method='POST', url='https://test.com/')"
    assert Request("http://x/a?b=1#f").url == "http://x/a?b=1#f"


def test_headers_get_all_like_http_message():
    req = Request("http://x/", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X", "v")])
    assert req.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert req.headers["x"] == "v"


async def test_response_from_json_status_text_and_replace_body():
    resp = Response.from_json({"a": 1}, status=HTTPStatus.CREATED, status_text="Made")
    assert (resp.status, resp.status_text, resp.headers["content-type"]) == (201, "Made", "application/json")
    assert await resp.text() == '{"a": 1}'
    original = Response("test", status=201, status_text="Created", headers={"x-a": "1"})
    cloned = original.replace_body("other")
    assert (cloned.status, cloned.status_text, cloned.headers["x-a"]) == (201, "Created", "1")
    assert await cloned.text() == "other"
    assert repr(Response("x")) == "Response(status=200, content_type='text/plain;charset=UTF-8')"


def test_redirect_with_a_bad_status_is_a_value_error():
    with pytest.raises(ValueError):
        Response.redirect("", HTTPStatus.BAD_GATEWAY)
    assert Response.redirect("http://x/", HTTPStatus.MOVED_PERMANENTLY).status == 301


async def test_blob_and_file():
    typed = Blob(["test"], content_type="application/json")
    assert (typed.size, typed.content_type) == (4, "application/json")
    assert await typed.bytes() == b"test" and await typed.slice(1, 3).text() == "es"
    assert await Blob([memoryview(b"foobar")]).text() == "foobar"
    assert Blob(typed).content_type == "application/json"
    assert Blob(typed, content_type="other/type").content_type == "other/type"
    assert Blob([typed]).content_type == ""
    f = File("my file", filename="test.txt", content_type="text/plain")
    assert (f.name, f.content_type) == ("test.txt", "text/plain")
    with pytest.raises(TypeError):
        Blob([object()])


async def test_form_data_round_trip_through_a_body():
    data = FormData({"key": "foobar"})
    data.append("key", "another")
    data.append("n", 123)
    data["up"] = File(["print(42)"], "blob.py", content_type="text/python")
    assert data["key"] == "foobar" and data.get_all("key") == ["foobar", "another"] and data["n"] == "123"
    assert "missing" not in data and data["missing"] is None
    resp = Response(data)
    assert resp.headers["content-type"].startswith("multipart/form-data; boundary=")
    parsed = await resp.form_data()
    assert parsed.get_all("key") == ["foobar", "another"]
    assert await parsed["up"].text() == "print(42)"
    assert parsed["up"].content_type == "text/python" and parsed["up"].name == "blob.py"
    urlencoded = Request("http://x/", method="POST", body="a=1&b=%C3%A9&a=2",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    form = await urlencoded.form_data()
    assert form.get_all("a") == ["1", "2"] and form["b"] == "é"
    with pytest.raises(TypeError):
        await Request("http://x/", method="POST", body="{}", headers={"content-type": "application/json"}).form_data()


async def test_request_blob_body_used_and_js_object():
    req = Request("http://x/", method="POST", body="foobar")
    assert req.js_object is req and req.body_used is False
    assert await (await req.blob()).text() == "foobar"
    assert req.body_used is True


# -- the workers module ----------------------------------------------------------------------------

SDK_WORKER = '''
from workers import (Blob, Context, FetchResponse, File, FormData, Response, WorkerEntrypoint, env,
                     import_from_javascript, patch_env, python_from_rpc, python_to_rpc, waitUntil)

done = []

async def later():
    done.append(env.GREETING)

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/rpc"):
            try:
                python_to_rpc({"a": (1, 2)})
            except TypeError as e:
                return Response(str(e))
        if request.url.endswith("/patch"):
            with patch_env(GREETING="patched"):
                inside = env.GREETING
            return Response(f"{inside} {env.GREETING}")
        waitUntil(later())
        cf = import_from_javascript("cloudflare:workers")
        return Response(f"{env.GREETING} {cf.env.GREETING} {python_from_rpc(3)}")
'''


async def test_workers_module_env_wait_until_and_rpc_helpers(tmp_path, write_worker):
    config = write_worker(tmp_path, SDK_WORKER, '[vars]\nGREETING = "hi"\n')
    async with Runtime.from_config(config) as rt:
        assert await (await rt.fetch("/")).text() == "hi hi 3"
        await rt.advance(0)
        assert rt.worker_module("worker").done == ["hi"]
        assert await (await rt.fetch("/patch")).text() == "patched hi"
        assert await (await rt.fetch("/rpc")).text() == "<class 'tuple'> cannot be sent over RPC."


# -- asgi ------------------------------------------------------------------------------------------

ASGI_WORKER = '''
import json
from workers import WorkerEntrypoint

events = []

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/boom":
        raise ValueError("app failed")
    if scope["path"] == "/events":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"data: {i}\\n\\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    out = {"method": scope["method"], "path": scope["path"], "qs": scope["query_string"].decode(),
           "body": body.decode(), "x": dict(scope["headers"]).get(b"x-in", b"").decode(),
           "env": scope["env"].GREETING}
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"x-out", b"1")]})
    await send({"type": "http.response.body", "body": json.dumps(out).encode()[:5], "more_body": True})
    await send({"type": "http.response.body", "body": json.dumps(out).encode()[5:]})

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        import asgi
        return await asgi.fetch(app, request, self.env, self.ctx)
'''


async def test_asgi_fetch_runs_an_inline_app(tmp_path, write_worker):
    config = write_worker(tmp_path, ASGI_WORKER, '[vars]\nGREETING = "hi"\n')
    async with Runtime.from_config(config) as rt:
        resp = await rt.fetch("/items/a?q=1", method="POST", body="payload", headers={"x-in": "v"})
        assert resp.status == 201 and resp.headers["x-out"] == "1"
        assert await resp.json() == {"method": "POST", "path": "/items/a", "qs": "q=1", "body": "payload",
                                     "x": "v", "env": "hi"}
        assert rt.worker_module("worker").events == ["lifespan.startup", "lifespan.shutdown"]
        streamed = await rt.fetch("/events")
        assert streamed.headers["content-type"] == "text/event-stream"
        assert await streamed.text() == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
        failed = await rt.fetch("/boom")
        assert failed.status == 500


async def test_asgi_via_workers_module_and_an_app_without_lifespan():
    from cfemu.sdk import asgi as asgi_module
    from cfemu.sdk import workers

    assert workers.asgi is asgi_module

    async def bare(scope, receive, send):
        assert scope["type"] == "http"  # raises on lifespan, which the server must tolerate
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    resp = await asgi_module.fetch(bare, Request("http://x/"), {})
    assert resp.status == 204 and await resp.text() == ""

    async def silent(scope, receive, send):
        if scope["type"] == "http":
            return

    with pytest.raises(RuntimeError) as info:
        await asgi_module.fetch(silent, Request("http://x/"), {})
    assert str(info.value) == asgi_module.NO_RESPONSE


def test_request_headers_read_like_http_message_response_headers_like_a_dict():
    req = Request("http://x/", headers={"a": "1"})
    assert req.headers["A"] == "1" and req.headers["missing"] is None  # HTTPMessage semantics
    with pytest.raises(KeyError):
        Response("x").headers["missing"]


JS_FFI_WORKER = '''
from js import URL, Blob, FormData, Headers, Request, Response

class Default:
    pass

async def on_fetch(request, env):
    url = URL.new(request.url)
    headers = Headers.new({"x-a": "1"}.items())
    form = FormData.new()
    form.append("n", 123)
    blob = Blob.new(["ab", "c"], {"type": "text/plain"})
    inner = Request.new("http://x/q", {"method": "POST", "body": "b"})
    return Response.new(
        f"{url.pathname}|{url.search}|{url.searchParams.get('k')}|{url.origin}|{headers.get('x-a')}|"
        f"{form.get('n')}|{await blob.text()}|{blob.type}|{inner.method}",
        {"status": 202, "headers": {"x-b": "2"}},
    )
'''


async def test_js_constructors_code_reaches_for(tmp_path, write_worker):
    config = write_worker(tmp_path, JS_FFI_WORKER.replace("class Default:\n    pass\n", ""))
    async with Runtime.from_config(config) as rt:
        resp = await rt.fetch("/p/q?k=v")
        assert resp.status == 202 and resp.headers["x-b"] == "2"
        assert await resp.text() == "/p/q|?k=v|v|http://localhost|1|123|abc|text/plain|POST"


async def test_reading_a_body_twice_is_an_os_error_as_in_the_sdk_and_a_type_error_as_in_js():
    from cfemu.http import BODY_USED

    for message in (Request("http://x/", method="POST", body="a"), Response("a")):
        await message.text()
        for kind in (OSError, TypeError):
            with pytest.raises(kind) as info:
                await message.text()
            assert str(info.value) == BODY_USED
        with pytest.raises(OSError):
            message.clone()


ASGI_WS_WORKER = '''
from workers import WorkerEntrypoint

closed = []

async def app(scope, receive, send):
    assert scope["type"] == "websocket" and scope["path"] == "/chat"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            closed.append(message["code"])
            return
        if message.get("text") == "bye":
            await send({"type": "websocket.close", "code": 4000, "reason": "done"})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        import asgi
        return await asgi.websocket(app, request)
'''


async def test_asgi_websocket(tmp_path, write_worker):
    from cfemu.testing import WebSocketClosed

    config = write_worker(tmp_path, ASGI_WS_WORKER)
    async with Runtime.from_config(config) as rt:
        ws = await rt.websocket("/chat")
        await ws.send("hi")
        assert await ws.receive() == "echo hi"
        await ws.send(b"\x01\x02")
        assert await ws.receive() == b"\x02\x01"
        await ws.send("bye")
        with pytest.raises(WebSocketClosed) as info:
            await ws.receive()
        assert (info.value.code, info.value.reason) == (4000, "done")
        other = await rt.websocket("/chat")
        await other.close(1001, "away")
        await rt.advance(0)
        assert rt.worker_module("worker").closed == [1001]


def test_a_request_body_of_an_unsupported_type_names_the_request():
    with pytest.raises(TypeError) as info:
        Request("http://x/", method="POST", body={"a": 1})
    assert str(info.value) == "Unsupported type in Request: dict"


PYFETCH_WORKER = '''
from pyodide.http import pyfetch
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/inner"):
            return Response("nope", status=404)
        resp = await pyfetch("http://localhost/inner", method="GET")
        try:
            resp.raise_for_status()
        except OSError as e:
            return Response(f"{resp.status} {resp.ok} {await resp.string()} | {e}")
        return Response("no error")
'''


async def test_pyodide_http_pyfetch_and_raise_for_status(tmp_path, write_worker, monkeypatch):
    import cfemu.http

    config = write_worker(tmp_path, PYFETCH_WORKER)
    async with Runtime.from_config(config) as rt:
        async def to_self(request, **_):  # route the outbound request back into this worker
            resp = await rt.core.fetch(request)
            resp.url = request.url
            return resp

        async def fake_fetch(url, **init):
            return await to_self(Request(url, **init))

        monkeypatch.setattr(cfemu.http, "fetch", fake_fetch)
        monkeypatch.setattr("cfemu.sdk.pyodide_http.fetch", fake_fetch)
        text = await (await rt.fetch("/")).text()
        assert text == "404 False nope | 404 Client Error: Not Found for url: http://localhost/inner"


PROXY_WORKER = '''
from workers import Response, WorkerEntrypoint, fetch

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        upstream = self.env.UPSTREAM + "/echo"
        return await fetch(upstream, headers=request.headers, method="POST", body="x")
'''


async def test_subrequests_drop_cf_connecting_ip_and_carry_cf_worker(tmp_path, write_worker):
    from aiohttp import web

    async def echo(request):
        return web.json_response({k.lower(): v for k, v in request.headers.items()})

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        config = write_worker(tmp_path, PROXY_WORKER, f'[vars]\nUPSTREAM = "http://127.0.0.1:{port}"\n',
                              name="proxy")
        async with Runtime.from_config(config) as rt:
            resp = await rt.fetch("/", headers={"cf-connecting-ip": "203.0.113.9", "x-keep": "1"})
            seen = await resp.json()
            session = rt.core.http_session
        assert "cf-connecting-ip" not in seen
        assert seen["x-keep"] == "1" and seen["cf-worker"] == "proxy"
        # The runtime owned the outbound session and closed it with itself (no "Unclosed client session").
        assert session is not None and session.closed
        async with Runtime.from_config(config) as rt:
            await rt.fetch("/")
            crashed = rt.core.http_session
            await rt.crash()
            await asyncio.sleep(0)  # the crash closes its connections in a task
            assert crashed.closed
            await rt.restart()
            assert (await (await rt.fetch("/")).json())["cf-worker"] == "proxy"
            assert rt.core.http_session is not crashed
    finally:
        await runner.cleanup()


async def test_json_passes_keyword_arguments_to_json_loads():
    from decimal import Decimal

    req = Request("http://x/", method="POST", body='{"p": 1.10}')
    assert await req.json(parse_float=Decimal) == {"p": Decimal("1.10")}
    assert await Response('{"p": 2.5}').json(parse_float=Decimal) == {"p": Decimal("2.5")}
