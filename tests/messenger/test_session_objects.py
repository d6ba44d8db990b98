"""Sessions without a global object: signed-in traffic never reaches the Directory; the per-session
objects and KV markers keep every revocation guarantee."""

from __future__ import annotations

import json

import pytest

from messenger_client import api, login, room


async def _closed(ws):
    from cfemu.testing import WebSocketClosed

    with pytest.raises(WebSocketClosed) as closed:
        for _ in range(50):
            await ws.receive()
    return closed.value.code, closed.value.reason


def _count_directory_calls(rt, monkeypatch) -> list[str]:
    directory_mod = rt.worker_module("directory")
    calls: list[str] = []
    for name, fn in list(vars(directory_mod.Directory).items()):
        if name.startswith("_") or not callable(fn):
            continue

        def wrap(fn=fn, name=name):
            async def counted(self, *args):
                calls.append(name)
                return await fn(self, *args)
            return counted

        monkeypatch.setattr(directory_mod.Directory, name, wrap())
    return calls


async def test_signed_in_http_and_socket_auth_never_reach_the_directory(rt, monkeypatch):
    alice = await login(rt, "alice")
    calls = _count_directory_calls(rt, monkeypatch)
    for _ in range(5):
        assert (await api(rt, "GET", "/api/me", alice["accessToken"]))["username"] == "alice"
        await api(rt, "GET", "/api/search?q=hello", alice["accessToken"])
        await api(rt, "GET", "/api/inbox", alice["accessToken"])
    ws, welcome = await room(rt, "general", alice)
    assert welcome["you"]["id"] == "ualice"
    refreshed = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": alice["refreshToken"]})
    await ws.send(json.dumps({"type": "auth", "token": refreshed["accessToken"]}))
    await api(rt, "POST", "/api/auth/logout", refreshed["accessToken"], body={})
    assert await _closed(ws) == (4003, "session revoked")
    # Only the refresh reaches it, to have the new access token signed (the private key lives there).
    assert calls == ["issueToken"]


async def test_keys_are_read_from_kv_once_per_cache_period_not_per_request(rt, monkeypatch):
    alice = await login(rt, "alice")
    sessions_mod = rt.worker_module("sessions")
    reads = []
    original = sessions_mod._read_keys

    async def counting(env):
        reads.append(1)
        return await original(env)

    monkeypatch.setattr(sessions_mod, "_read_keys", counting)
    for _ in range(10):
        await api(rt, "GET", "/api/me", alice["accessToken"])
    assert len(reads) <= 1
    await rt.advance(sessions_mod.KEY_CACHE_MS / 1000 + 1)
    await api(rt, "GET", "/api/me", alice["accessToken"])
    assert len(reads) <= 2
    # Garbage kids do not turn into one KV read each.
    before = len(reads)
    for i in range(10):
        forged = alice["accessToken"].replace(alice["accessToken"].split(".")[0], "eyJhbGciOiJIUzI1NiIsImtpZCI6Inh4In0")
        await api(rt, "GET", "/api/me", forged, expect=401)
    assert len(reads) - before <= 1


async def test_without_its_kv_marker_a_session_is_answered_by_its_object_which_rewrites_it_once_a_minute(rt):
    alice = await login(rt, "alice")
    sid = alice["sessionId"]
    await rt.env.KV.delete(f"session:{sid}")
    assert (await api(rt, "GET", "/api/me", alice["accessToken"]))["sessionId"] == sid
    # The object wrote the marker a moment ago (at sign-in), so it does not write it again yet ...
    assert await rt.env.KV.get(f"session:{sid}") is None
    await rt.advance(61)
    assert (await api(rt, "GET", "/api/me", alice["accessToken"]))["sessionId"] == sid
    assert json.loads(await rt.env.KV.get(f"session:{sid}")) == {"uid": "ualice"}
    # Revoked in its object only (the marker lost): HTTP still refuses it.
    await rt.env.SESSIONS.getByName(sid).revoke()
    await rt.env.KV.delete(f"session:{sid}")
    assert (await api(rt, "GET", "/api/me", alice["accessToken"], expect=401))["error"]["code"] == "session_revoked"


async def test_revocation_marker_outlives_every_token_of_the_session_then_the_object_answers(rt):
    alice = await login(rt, "alice")
    await api(rt, "POST", "/api/auth/logout", alice["accessToken"], body={})
    assert json.loads(await rt.env.KV.get(f"session:{alice['sessionId']}")) == {"revoked": True}
    await rt.advance(19 * 60)
    assert (await api(rt, "GET", "/api/me", alice["accessToken"], expect=401))["error"]["code"] == "session_revoked"
    await rt.advance(5 * 60)
    assert await rt.env.KV.get(f"session:{alice['sessionId']}") is None
    assert (await api(rt, "GET", "/api/me", alice["accessToken"], expect=401))["error"]["code"] == "auth_expired"


async def test_sign_out_everywhere_reaches_a_session_kept_alive_by_refresh_past_its_first_expiry(rt):
    s1 = await login(rt, "alice")
    await rt.advance(6 * 24 * 3600)
    r1 = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": s1["refreshToken"]})
    await rt.advance(2 * 24 * 3600)  # past s1's first expiry, as the Directory recorded it
    s2 = await login(rt, "alice")  # prunes lapsed sessions from the Directory's list
    r1 = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": r1["refreshToken"]})
    ws, _ = await room(rt, "general", r1)
    out = await api(rt, "POST", "/api/auth/logout", s2["accessToken"], body={"everywhere": True})
    assert out["revokedSessions"] == 2
    assert await _closed(ws) == (4003, "session revoked")
    assert (await api(rt, "GET", "/api/me", r1["accessToken"], expect=401))["error"]["code"] == "session_revoked"


async def test_a_session_object_forgets_everything_when_its_refresh_token_lapses(rt):
    alice = await login(rt, "alice")
    sid = alice["sessionId"]
    assert list(rt.storage("SESSIONS", sid).list())
    await rt.advance(7 * 24 * 3600 + 5)
    assert list(rt.storage("SESSIONS", sid).list()) == []
    dead = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": alice["refreshToken"]}, expect=401)
    assert dead["error"]["code"] == "refresh_invalid"


async def test_account_deletion_erases_the_session_objects(rt):
    s = await api(rt, "POST", "/api/auth/register", body={"username": "brief", "password": "temporary-pass"})
    s2 = await login(rt, "brief", "temporary-pass")
    await api(rt, "DELETE", "/api/me", s["accessToken"], body={"password": "temporary-pass"})
    for sess in (s, s2):
        assert list(rt.storage("SESSIONS", sess["sessionId"]).list()) == []
        assert (await api(rt, "GET", "/api/me", sess["accessToken"], expect=401))["error"]["code"] == "session_revoked"
    ws = await rt.websocket("/ws/room/general")
    await ws.send(json.dumps({"type": "auth", "token": s2["accessToken"]}))
    assert await _closed(ws) == (4003, "session revoked")
