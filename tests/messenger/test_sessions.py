"""Sessions end to end: register, sign in, refresh rotation, sign-out, expiry closing sockets."""

from __future__ import annotations

import json

import pytest

from messenger_client import api, frames_until, login, presence_socket, room, say



async def _closed(ws):
    from cfemu.testing import WebSocketClosed

    with pytest.raises(WebSocketClosed) as closed:
        for _ in range(50):
            await ws.receive()
    return closed.value.code, closed.value.reason


async def test_register_sign_in_and_me(rt):
    s = await api(rt, "POST", "/api/auth/register", body={"username": "zed", "password": "hunter2hunter2", "displayName": "Zed"})
    assert s["user"]["username"] == "zed" and s["accessToken"] and s["refreshToken"]
    dup = await api(rt, "POST", "/api/auth/register", body={"username": "zed", "password": "hunter2hunter2"}, expect=409)
    assert dup["ok"] is False and dup["error"]["code"] == "conflict"
    bad = await api(rt, "POST", "/api/auth/register", body={"username": "Z", "password": "x"}, expect=400)
    assert bad["error"]["code"] == "invalid_field"
    again = await login(rt, "zed", "hunter2hunter2")
    me = await api(rt, "GET", "/api/me", again["accessToken"])
    assert me["username"] == "zed" and me["displayName"] == "Zed" and me["status"] == "offline"
    wrong = await api(rt, "POST", "/api/auth/login", body={"username": "zed", "password": "nope-nope"}, expect=401)
    assert wrong["error"] == {"code": "bad_credentials", "message": "wrong username or password"}
    unknown = await api(rt, "POST", "/api/auth/login", body={"username": "nobody", "password": "nope-nope"}, expect=401)
    assert unknown["error"] == wrong["error"]
    assert (await api(rt, "GET", "/api/me", expect=401))["error"]["code"] == "not_authenticated"
    assert (await api(rt, "GET", "/api/me", "garbage", expect=401))["error"]["code"] == "auth_invalid"
    resp = await rt.fetch("/api/auth/login", method="POST", body="{not json", headers={"content-type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_json"


async def test_access_token_expires_after_twenty_minutes_and_refresh_rotates(rt):
    s = await login(rt, "alice")
    await rt.advance(19 * 60)
    assert (await api(rt, "GET", "/api/me", s["accessToken"]))["username"] == "alice"
    await rt.advance(61)
    assert (await api(rt, "GET", "/api/me", s["accessToken"], expect=401))["error"]["code"] == "auth_expired"
    r1 = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": s["refreshToken"]})
    assert r1["refreshToken"] != s["refreshToken"] and r1["sessionId"] == s["sessionId"]
    assert (await api(rt, "GET", "/api/me", r1["accessToken"]))["username"] == "alice"
    ws, _ = await room(rt, "general", r1)
    # The old refresh token comes back: stolen or replayed, so the session is revoked.
    reuse = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": s["refreshToken"]}, expect=401)
    assert reuse["error"]["code"] == "session_revoked"
    assert await _closed(ws) == (4003, "session revoked")
    assert (await api(rt, "GET", "/api/me", r1["accessToken"], expect=401))["error"]["code"] == "session_revoked"
    dead = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": r1["refreshToken"]}, expect=401)
    assert dead["error"]["code"] == "session_revoked"


async def test_socket_closes_when_its_token_lapses_unless_reauthenticated(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "general", alice)
    b, _ = await room(rt, "general", bob)
    for _ in range(15):  # heartbeats every 60 s keep both sockets alive (answered by the auto-response)
        await rt.advance(60)
        await a.send('{"type":"ping"}')
        await b.send('{"type":"ping"}')
    fresh = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": alice["refreshToken"]})
    await a.send(json.dumps({"type": "auth", "token": fresh["accessToken"]}))
    re, _ = await frames_until(a, "reauthed")
    assert re["expiresAt"] == fresh["expiresAt"]
    for _ in range(6):  # keep both sockets' heartbeats going while time passes
        await rt.advance(60)
        await a.send('{"type":"ping"}')
        if not b.closed:
            await b.send('{"type":"ping"}')
    # Bob's token (issued at t=0) lapsed at 20 min: his socket was closed within seconds.
    assert await _closed(b) == (4002, "access token expired")
    assert not a.closed
    assert (await say(a, "still here"))["seq"] == 1


async def test_sign_out_closes_that_sessions_sockets_everywhere_at_once(rt):
    alice1, alice2 = await login(rt, "alice"), await login(rt, "alice")
    p1, _ = await presence_socket(rt, alice1)
    g1, _ = await room(rt, "general", alice1)
    m1, _ = await room(rt, "music", alice1)
    g2, _ = await room(rt, "general", alice2)
    out = await api(rt, "POST", "/api/auth/logout", alice1["accessToken"], body={})
    assert out["revokedSessions"] == 1 and out["closedSockets"] == 3
    for ws in (p1, g1, m1):
        assert await _closed(ws) == (4003, "session revoked")
    assert not g2.closed
    assert (await api(rt, "GET", "/api/me", alice1["accessToken"], expect=401))["error"]["code"] == "session_revoked"
    out = await api(rt, "POST", "/api/auth/logout", alice2["accessToken"], body={"everywhere": True})
    assert out["revokedSessions"] == 1
    assert await _closed(g2) == (4003, "session revoked")


async def test_unauthenticated_socket_is_closed_after_ten_seconds(rt):
    ws = await rt.websocket("/ws/room/general")
    await rt.advance(9)
    assert not ws.closed
    await rt.advance(2)
    assert await _closed(ws) == (4008, "no auth frame within 10 s")


async def test_bad_token_in_first_frame_closes(rt):
    ws = await rt.websocket("/ws/presence")
    await ws.send(json.dumps({"type": "auth", "token": "nope"}))
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "auth_invalid"
    assert await _closed(ws) == (4001, "authentication failed")


async def test_subprotocol_authentication(rt):
    alice = await login(rt, "alice")
    ws = await rt.websocket("/ws/room/general", protocols=["messenger", "bearer." + alice["accessToken"]])
    assert ws.response.headers.get("sec-websocket-protocol") == "messenger"
    welcome, _ = await frames_until(ws, "welcome")
    assert welcome["you"]["id"] == "ualice"
    resp = await rt.fetch("/ws/room/general", headers={"upgrade": "websocket", "sec-websocket-protocol": "messenger, bearer.junk"})
    assert resp.status == 401


async def test_signing_keys_rotate_on_cron_and_old_tokens_last_one_lifetime(rt):
    s = await login(rt, "alice")
    assert await rt.scheduled("0 */6 * * *")
    keys = await rt.env.DIRECTORY.getByName("directory").keyIds()
    assert len(json.loads(keys)["data"]) == 2
    assert (await api(rt, "GET", "/api/me", s["accessToken"]))["username"] == "alice"
    s2 = await login(rt, "alice")
    await rt.advance(20 * 60 + 1)
    assert (await api(rt, "GET", "/api/me", s["accessToken"], expect=401))["error"]["code"] in ("auth_expired", "auth_invalid")
    refreshed = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": s2["refreshToken"]})
    assert (await api(rt, "GET", "/api/me", refreshed["accessToken"]))["username"] == "alice"


async def test_account_deletion_returns_a_receipt_and_closes_sockets(rt):
    s = await api(rt, "POST", "/api/auth/register", body={"username": "temp", "password": "temporary-pass"})
    ws, _ = await room(rt, "general", s)
    receipt = await api(rt, "DELETE", "/api/me", s["accessToken"], body={"password": "temporary-pass"})
    assert receipt["deleted"] == s["user"]["id"] and receipt["closedSockets"] >= 1
    assert await _closed(ws) == (4010, "account deleted")
    assert (await api(rt, "POST", "/api/auth/login", body={"username": "temp", "password": "temporary-pass"}, expect=401))
    users = await api(rt, "GET", "/api/users", (await login(rt, "bob"))["accessToken"])
    assert "temp" not in [u["username"] for g in ("online", "offline") for u in users[g]]


async def test_deleted_account_leaves_no_session_or_account_record(rt):
    s = await api(rt, "POST", "/api/auth/register", body={"username": "gone", "password": "temporary-pass"})
    s2 = await login(rt, "gone", "temporary-pass")
    await api(rt, "POST", "/api/auth/logout", s2["accessToken"], body={})
    uid = s["user"]["id"]
    await api(rt, "DELETE", "/api/me", s["accessToken"], body={"password": "temporary-pass"})
    store = rt.storage("DIRECTORY", "directory")
    keys = list(store.list())
    assert not [k for k in keys if uid in k or k == "name:gone"]
    raw = json.dumps({k: store.get(k) for k in keys})
    assert uid not in raw and s["sessionId"] not in raw and s2["sessionId"] not in raw
