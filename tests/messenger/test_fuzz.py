"""Hypothesis-driven hostile input through the fixture: every frame type, every HTTP route.

Whatever a client sends, the server answers with an error frame or a 4xx JSON envelope (never a 5xx,
never a traceback), the socket stays open unless the protocol says it closes, and the object still
serves a normal message afterwards.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from messenger_client import api, drain, login, room, say

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
FRAME_TYPES = ["auth", "send", "typing", "receipt", "history", "sync", "ping", "status", "boom", "", "SEND"]
FIELDS = ["cid", "kind", "text", "wink", "seq", "state", "before", "limit", "since", "token", "message", "name",
          "type", "__proto__", "constructor"]
SERVER_TYPES = {"error", "pong", "ack", "msg", "typing", "receipt", "history", "sync", "welcome", "join", "leave",
                "reauthed", "presence", "roster", "inbox"}

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
    st.text(max_size=30), st.sampled_from(["text", "nudge", "wink", "read", "delivered", "wave", "busy",
                                           "appear-offline", "\ud800", "a" * 3000, "é" * 2049, "\x00", "‮"]),
)
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)
_shaped = st.builds(lambda t, fields: json.dumps({"type": t, **fields}),
                    st.sampled_from(FRAME_TYPES), st.dictionaries(st.sampled_from(FIELDS), _json, max_size=4))
FRAMES = st.one_of(
    _shaped, _shaped, _shaped,
    _json.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=64),
    st.just("[" * 3000 + "]" * 3000),
    st.just(json.dumps({"type": "send", "cid": "c", "kind": "text", "text": "x" * 20_000})),
)


def _check(frames: list) -> None:
    for raw in frames:
        assert "Traceback" not in str(raw)
        frame = json.loads(raw)
        assert isinstance(frame, dict) and frame.get("type") in SERVER_TYPES, frame
        if frame["type"] == "error":
            assert frame["code"] != "internal", frame
            assert isinstance(frame["message"], str) and frame["message"]


async def _fuzz_socket(rt, ws, frames) -> None:
    for f in frames:
        if ws.closed:
            return
        await ws.send(f)
        await rt.settle()
        _check(ws.pending())


@SETTINGS
@given(frames=st.lists(FRAMES, min_size=1, max_size=12))
async def test_room_socket_survives_any_frames_before_and_after_auth(rt, frames):
    alice = await login(rt, "alice")
    fresh = await rt.websocket("/ws/room/general")
    await _fuzz_socket(rt, fresh, frames)  # before auth: errors (a bad auth frame closes it, 4001)
    if fresh.closed:
        assert fresh.close_code in (4001, 4002, 4003)
    ws, _ = await room(rt, "dm_ualice__ubob", alice)
    await _fuzz_socket(rt, ws, frames)
    assert not ws.closed or ws.close_code in (4003,)
    ws, _ = await room(rt, "general", alice)
    await rt.advance(61)  # a fresh rate-limit window for the check below
    ws2, _ = await room(rt, "general", await login(rt, "alice"))
    assert (await say(ws2, "still serving"))["seq"] >= 1


@SETTINGS
@given(frames=st.lists(FRAMES, min_size=1, max_size=12))
async def test_presence_socket_survives_any_frames(rt, frames):
    bob = await login(rt, "bob")
    fresh = await rt.websocket("/ws/presence")
    await _fuzz_socket(rt, fresh, frames)
    ws = await rt.websocket("/ws/presence")
    await ws.send(json.dumps({"type": "auth", "token": bob["accessToken"]}))
    await rt.settle()
    drain(ws)
    await _fuzz_socket(rt, ws, frames)
    me = await api(rt, "GET", "/api/me", bob["accessToken"])
    assert me["username"] == "bob"


_bodies = st.one_of(_json.map(json.dumps), st.text(max_size=100), st.just("{}"),
                    st.builds(lambda fields: json.dumps(fields),
                              st.dictionaries(st.sampled_from(["username", "password", "displayName", "refreshToken",
                                                               "everywhere", "state", "message", "name"]), _json,
                                              max_size=4)))
_segments = st.one_of(st.sampled_from(["general", "dm_ualice__ubob", "dm_ubob__ucarol", "ualice", "x" * 600,
                                       "%E2%80%AE", "..", "dm_UALICE__ubob"]),
                      st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.~%", min_size=1, max_size=20))
_queries = st.dictionaries(st.sampled_from(["before", "limit", "q"]),
                           st.one_of(st.integers(-5, 2 ** 64).map(str), st.text(max_size=30)), max_size=3)


@SETTINGS
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), route=st.integers(0, 100),
       segment=_segments, body=_bodies, query=_queries, authed=st.booleans())
async def test_every_http_route_answers_hostile_input_with_a_json_envelope(rt, method, route, segment, body, query,
                                                                           authed):
    from urllib.parse import urlencode

    routes = rt.worker_module("entry").ROUTES
    _m, pattern, handler, *_ = routes[route % len(routes)]
    path = pattern.replace("{room}", segment).replace("{user}", segment)
    if path == "/api/me" and method == "DELETE" and authed:
        method = "GET"  # deleting the signed-in demo account is tested elsewhere
    if query:
        path += "?" + urlencode(query)
    token = (await login(rt, "carol"))["accessToken"] if authed else None
    headers = {"authorization": f"Bearer {token}"} if token else {}
    resp = await rt.fetch(path, method=method, headers=headers, body=body if method in ("POST", "PUT") else None)
    text = await resp.text()
    assert resp.status < 500, (method, path, body, resp.status, text)
    assert "Traceback" not in text
    if path.startswith("/api/") and resp.status != 101 and not (handler == "openapi" and resp.status == 200):
        data = json.loads(text)
        assert isinstance(data, dict) and "ok" in data, data
        if not data["ok"]:
            assert data["error"]["code"] and data["error"]["message"]
        if resp.status == 200 and handler == "history" and segment.startswith("dm_"):
            assert "ucarol" in segment  # carol reads no one else's DM
