"""Request, Response and Headers as worker code meets them (the Fetch API through the Python SDK)."""

from __future__ import annotations

import pytest

from cfemu.errors import JsException, JsRangeError, JsTypeError
from cfemu.http import BODY_USED, Headers, Request, Response

STATUS_RANGE = "Responses may only be constructed with status codes in the range 200 to 599, inclusive."


# -- Request --------------------------------------------------------------------------------------

async def test_request_basics():
    req = Request("https://example.com/a/b?x=1", method="post", headers={"Content-Type": "text/plain", "X-A": "1"},
                  body="hello")
    assert req.url == "https://example.com/a/b?x=1"
    assert req.method == "POST"
    assert req.headers.get("content-type") == "text/plain"
    assert req.headers.get("CONTENT-TYPE") == "text/plain"
    assert req.headers.get("x-missing") is None
    assert req.path == "/a/b?x=1"
    assert await req.text() == "hello"
    assert req.bodyUsed


async def test_request_json_and_bytes():
    assert await Request("http://x/", method="PUT", body='{"a": [1, 2]}').json() == {"a": [1, 2]}
    assert await Request("http://x/", method="PUT", body=b"\x00\xff").bytes() == b"\x00\xff"
    assert await Request("http://x/").text() == ""


async def test_request_invalid_json_is_a_syntax_error():
    with pytest.raises(JsException) as info:
        await Request("http://x/", method="POST", body="{nope").json()
    assert info.value.name == "SyntaxError"


async def test_request_body_reads_once():
    req = Request("http://x/", method="POST", body="once")
    assert await req.text() == "once"
    for read in (req.text, req.bytes, req.json):
        with pytest.raises(JsTypeError) as info:
            await read()
        assert str(info.value) == BODY_USED
    assert BODY_USED == "Body has already been used. It can only be used once. Use tee() first if you need to read it twice."


async def test_request_clone_gives_a_second_reader():
    req = Request("http://x/", method="POST", body="twice", headers={"a": "1"}, cf={"colo": "LHR"})
    copy = req.clone()
    assert await req.text() == "twice"
    assert await copy.text() == "twice"
    assert copy.headers.get("a") == "1" and copy.cf.colo == "LHR"
    copy.headers.set("a", "2")
    assert req.headers.get("a") == "1"  # headers are copied, not shared
    with pytest.raises(JsTypeError) as info:
        req.clone()
    assert str(info.value) == BODY_USED


def test_request_cf_is_an_attribute_dict():
    req = Request("http://x/", cf={"country": "GB", "asn": 5})
    assert req.cf["country"] == "GB" and req.cf.asn == 5
    assert Request("http://x/").cf == {}


def test_request_validation():
    with pytest.raises(JsTypeError) as info:
        Request("/relative")
    assert str(info.value) == "Invalid URL: /relative"
    with pytest.raises(JsTypeError) as info:
        Request("http://x/", body="no")
    assert str(info.value) == "Request with a GET or HEAD method cannot have a body."


async def test_request_from_request():
    base = Request("http://x/p", method="POST", body="b", headers={"h": "1"})
    derived = Request(base, headers={"h": "2"})
    assert (derived.url, derived.method, derived.headers.get("h")) == ("http://x/p", "POST", "2")
    assert await derived.text() == "b"


# -- Response -------------------------------------------------------------------------------------

async def test_response_bodies():
    text = Response("héllo")
    assert text.status == 200 and text.ok
    assert text.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert await text.text() == "héllo"
    raw = Response(b"\x01\x02", status=201)
    assert raw.status == 201 and raw.headers.get("content-type") is None
    assert await raw.bytes() == b"\x01\x02"
    empty = Response(None, status=204)
    assert empty.body is None and await empty.text() == ""
    assert await Response().text() == ""


def test_response_dict_body_is_a_type_error():
    for body in ({"a": 1}, [1, 2]):
        with pytest.raises(TypeError) as info:
            Response(body)
        assert isinstance(info.value, JsTypeError)
        # the SDK's own text (workers-py _workers.Response.__init__)
        assert str(info.value) == f"Unsupported type in Response: {type(body).__name__}"


@pytest.mark.parametrize("status", [0, 100, 199, 600, 999, -1])
def test_response_status_out_of_range(status):
    with pytest.raises(ValueError) as info:
        Response("x", status=status)
    assert isinstance(info.value, JsRangeError) and info.value.name == "RangeError"
    assert str(info.value) == STATUS_RANGE


def test_response_status_boundaries_and_null_body_statuses():
    assert Response("x", status=200).status == 200
    assert Response("x", status=599).status == 599
    with pytest.raises(JsTypeError) as info:
        Response("x", status=204)
    assert str(info.value) == "Response with null body status cannot have body"
    with pytest.raises(JsRangeError):
        Response(None, status=101)  # 101 only with a web_socket


def test_response_headers_as_dict_list_or_headers():
    assert Response("x", headers={"X-A": "1"}).headers.get("x-a") == "1"
    listed = Response("x", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-B", "2")])
    assert listed.headers.getAll("set-cookie") == ["a=1", "b=2"]
    assert listed.headers.get("x-b") == "2"
    h = Headers({"x-c": "3"})
    assert Response("x", headers=h).headers.get("X-C") == "3"
    assert Response("x", headers={"content-type": "text/html"}).headers.get("content-type") == "text/html"


async def test_response_json_static_and_instance():
    resp = Response.json({"a": 1, "b": "é"}, status=201, headers={"x-y": "z"})
    assert resp.status == 201
    assert resp.headers.get("content-type") == "application/json"
    assert resp.headers.get("x-y") == "z"
    assert await resp.json() == {"a": 1, "b": "é"}  # the instance method reads the body
    # json.dumps defaults, as the SDK serialises (", " / ": " separators, ASCII escapes)
    assert await Response.json([1, 2]).text() == "[1, 2]"
    assert await Response.json({"obj": {"field": 123}}, status=404).text() == '{"obj": {"field": 123}}'
    assert await Response.json({"b": "é"}).text() == '{"b": "\\u00e9"}'
    custom = Response.json({}, headers={"content-type": "application/vnd+json"})
    assert custom.headers.get("content-type") == "application/vnd+json"
    assert await Response('{"k": true}').json() == {"k": True}


async def test_response_redirect():
    resp = Response.redirect("https://example.com/next")
    assert resp.status == 302 and resp.headers.get("location") == "https://example.com/next"
    for status in (301, 303, 307, 308):
        assert Response.redirect("/x", status).status == status
    with pytest.raises(JsRangeError) as info:
        Response.redirect("/x", 200)
    assert str(info.value) == "Invalid status code 200: redirect status must be one of 301, 302, 303, 307, 308."


async def test_response_status_text_and_clone():
    resp = Response("body", status=404, status_text="Nope")
    assert (resp.statusText, resp.status_text, resp.ok) == ("Nope", "Nope", False)
    copy = resp.clone()
    assert await copy.text() == "body" and await resp.text() == "body"
    assert copy.status == 404 and copy.statusText == "Nope"
    with pytest.raises(JsTypeError) as info:
        await resp.text()
    assert str(info.value) == BODY_USED


async def test_streamed_body():
    async def chunks():
        yield b"a"
        yield "b"

    assert await Response(chunks()).text() == "ab"


def test_response_web_socket():
    from cfemu.websocket import WebSocketPair

    client, server = WebSocketPair.new().object_values()
    resp = Response(None, status=101, web_socket=client)
    assert resp.status == 101 and resp.webSocket is client and resp.web_socket is client


# -- Headers --------------------------------------------------------------------------------------

def test_headers_semantics():
    h = Headers()
    h.append("Accept", "text/html")
    h.append("accept", "application/json")
    assert h.get("ACCEPT") == "text/html, application/json"
    assert h.has("accept") and "Accept" in h
    h.set("ACCEPT", "*/*")
    assert h.get("accept") == "*/*"
    h.append("Set-Cookie", "a=1")
    h.append("set-cookie", "b=2")
    h.append("B-Header", "  padded  ")
    assert h.get("b-header") == "padded"
    # iteration: lower-case names, sorted, set-cookie kept separate
    assert list(h) == [("accept", "*/*"), ("b-header", "padded"), ("set-cookie", "a=1"), ("set-cookie", "b=2")]
    assert h.getSetCookie() == ["a=1", "b=2"]
    h.delete("Set-Cookie")
    assert not h.has("set-cookie") and h.get("set-cookie") is None
    assert h["Accept"] == "*/*"
    with pytest.raises(KeyError):
        h["nope"]
    assert Headers({"A": "1"}) == Headers([("a", "1")])


def test_headers_validation():
    with pytest.raises(JsTypeError) as info:
        Headers({"bad name": "x"})
    assert str(info.value) == "Invalid header name 'bad name'."
    with pytest.raises(JsTypeError) as info:
        Headers().set("x", "a\nb")
    assert str(info.value) == "Invalid header value for 'x'."
    with pytest.raises(JsTypeError) as info:
        Headers([("only-one",)])
    assert str(info.value) == "Incorrect number of elements in header pair (expected 2)."


def test_headers_copy_is_independent():
    a = Headers({"x": "1"})
    b = Headers(a)
    b.set("x", "2")
    assert a.get("x") == "1"


# -- outbound fetch ---------------------------------------------------------------------------------

@pytest.fixture
async def origin():
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def echo(request):
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.path_qs, "body": body.decode(),
                                  "x-in": request.headers.get("x-in")}, headers={"x-out": "o"}, status=202)

    async def moved(request):
        raise web.HTTPFound("/echo")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/moved", moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()
    from cfemu.context import close_client_session

    await close_client_session()


async def test_outbound_fetch(origin):
    from cfemu.http import fetch

    resp = await fetch(origin + "/echo?q=1", method="POST", body="hi", headers={"x-in": "i"})
    assert resp.status == 202 and resp.ok
    assert resp.headers.get("x-out") == "o"
    assert await resp.json() == {"method": "POST", "path": "/echo?q=1", "body": "hi", "x-in": "i"}
    followed = await fetch(origin + "/moved")
    assert followed.status == 202 and followed.redirected and followed.url.endswith("/echo")
    manual = await fetch(origin + "/moved", redirect="manual")
    assert manual.status == 302 and manual.headers.get("location") == "/echo"
    via_request = await fetch(Request(origin + "/echo", method="PUT", body=b"b"))
    assert (await via_request.json())["body"] == "b"


async def test_outbound_fetch_network_error():
    import socket

    from cfemu.http import fetch

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(JsTypeError) as info:
        await fetch(f"http://127.0.0.1:{port}/")
    assert str(info.value).startswith("Network connection lost.")
    from cfemu.context import close_client_session

    await close_client_session()
