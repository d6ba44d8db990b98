"""Review findings: socket/session binding, appear-offline leaks, hostile unicode and nesting, JWT tricks."""

from __future__ import annotations

import base64
import json

import pytest

from messenger_client import api, drain, frames_until, login, presence_socket, room, say


async def _closed(ws):
    from cfemu.testing import WebSocketClosed

    with pytest.raises(WebSocketClosed) as closed:
        for _ in range(50):
            await ws.receive()
    return closed.value.code, closed.value.reason


# -- sessions and sockets ---------------------------------------------------------------------------

async def test_reauth_with_another_sessions_token_is_refused_so_sign_out_still_closes_the_socket(rt):
    """A socket stays bound to the session it opened with: re-auth may only renew that session."""
    s1, s2 = await login(rt, "alice"), await login(rt, "alice")
    ws, _ = await room(rt, "music", s1)
    await ws.send(json.dumps({"type": "auth", "token": s2["accessToken"]}))
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "auth_invalid"
    # Session 2 never joined "music"; signing it out must not leave a socket of it behind, and signing
    # out session 1 closes this one.
    await api(rt, "POST", "/api/auth/logout", s2["accessToken"], body={})
    assert not ws.closed
    await api(rt, "POST", "/api/auth/logout", s1["accessToken"], body={})
    assert await _closed(ws) == (4003, "session revoked")


async def test_reauth_with_a_revoked_sessions_token_closes_the_socket(rt):
    s1 = await login(rt, "alice")
    ws, _ = await room(rt, "general", s1)
    refreshed = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": s1["refreshToken"]})
    await rt.env.SESSIONS.getByName(s1["sessionId"]).revoke()  # the session's object only: no socket closing
    await ws.send(json.dumps({"type": "auth", "token": refreshed["accessToken"]}))
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "session_revoked"
    assert await _closed(ws) == (4003, "session revoked")


async def test_refresh_token_lapses_after_its_ttl_on_the_virtual_clock(rt):
    s = await login(rt, "alice")
    await rt.advance(7 * 24 * 3600 - 60)
    r = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": s["refreshToken"]})
    await rt.advance(7 * 24 * 3600 + 1)
    dead = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": r["refreshToken"]}, expect=401)
    assert dead["error"]["code"] == "refresh_invalid"


def _b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_forged_tokens_alg_none_hs512_missing_or_odd_kid_are_refused(rt):
    import hashlib
    import hmac

    s = await login(rt, "alice")
    header, payload, _sig = s["accessToken"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    keys = rt.storage("DIRECTORY", "directory").get("keys")
    keys = json.loads(keys) if isinstance(keys, str) else keys
    published = json.loads(await rt.env.KV.get("auth:keys"))
    assert [k["kid"] for k in published] == [kid]
    # Algorithm confusion: the public key (anyone can read it) used as an HMAC secret.
    secret = base64.urlsafe_b64decode(published[0]["x"] + "=")
    evil = {**claims, "sub": "ubob"}

    def signed(hdr, body, alg=hashlib.sha256, key=secret):
        msg = f"{_b64(hdr)}.{_b64(body)}".encode()
        return msg.decode() + "." + _b64(hmac.new(key, msg, alg).digest())

    forged = [
        f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(evil)}.",
        f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(evil)}",
        signed({"alg": "HS512", "kid": kid}, evil, hashlib.sha512),
        signed({"alg": "HS256"}, evil),                         # no kid
        signed({"alg": "HS256", "kid": [kid]}, evil),            # kid of the wrong type
        signed({"alg": "HS256", "kid": kid + "x"}, evil),
        signed({"alg": "RS256", "kid": kid}, evil),              # HS/RS confusion
        signed({"alg": "HS256", "kid": kid}, {**evil, "typ": "refresh"}),
        signed({"alg": "HS256", "kid": kid}, {k: v for k, v in evil.items() if k != "exp"}),
        signed({"alg": "HS256", "kid": kid}, {**evil, "exp": str(evil["exp"])}),
        signed({"alg": "HS256", "kid": kid}, {**evil, "iss": "someone-else"}),
        signed({"alg": "HS256", "kid": kid, "typ": "JWT"}, evil),  # a perfect HS256 token keyed by the public key
        signed({"alg": "EdDSA", "kid": kid}, evil),                # an HMAC passed off as EdDSA
    ]
    for text_secret in (published[0]["x"].encode(), json.dumps(published[0]).encode()):
        forged.append(signed({"alg": "HS256", "kid": kid}, evil, key=text_secret))
    for token in forged:
        err = await api(rt, "GET", "/api/me", token, expect=401)
        assert err["error"]["code"] in ("auth_invalid", "auth_expired"), token
    # The same forgeries through a socket's first frame close it, never admit it.
    ws = await rt.websocket("/ws/room/dm_ualice__ubob")
    await ws.send(json.dumps({"type": "auth", "token": forged[0]}))
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "auth_invalid"
    assert (await _closed(ws))[0] == 4001
    # A correctly signed token for a session that is not bob's is refused too (sub/sid mismatch).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(keys[0]["private"] + "="))
    msg = f"{_b64({'alg': 'EdDSA', 'kid': kid, 'typ': 'JWT'})}.{_b64(evil)}".encode()
    mismatched = msg.decode() + "." + _b64(private.sign(msg))
    assert (await api(rt, "GET", "/api/me", mismatched, expect=401))["error"]["code"] == "session_revoked"


# -- presence privacy -------------------------------------------------------------------------------

def _presence_of(frames, uid):
    return [f["user"] for f in frames if f["type"] == "presence" and f["user"]["id"] == uid]


async def test_appear_offline_user_coming_and_going_sends_others_nothing(rt):
    """Others must not be able to tell an appear-offline user from an offline one, not even by timing."""
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "appear-offline"})
    pb, roster = await presence_socket(rt, bob)
    assert {u["id"]: u["status"] for u in roster["users"]}["ualice"] == "offline"
    drain(pb)
    pa, mine = await presence_socket(rt, alice)
    assert mine["you"]["status"] == "appear-offline"
    assert (await api(rt, "GET", "/api/me", alice["accessToken"]))["status"] == "appear-offline"  # her own view
    assert (await api(rt, "GET", "/api/presence/ualice", bob["accessToken"]))["status"] == "offline"
    users = await api(rt, "GET", "/api/users", bob["accessToken"])
    assert [u["status"] for u in users["offline"] if u["id"] == "ualice"] == ["offline"]
    await rt.settle()
    assert _presence_of(drain(pb), "ualice") == []
    await pa.close()
    await rt.advance(10)
    await pb.send('{"type":"ping"}')
    assert _presence_of(drain(pb), "ualice") == []


# -- hostile input ------------------------------------------------------------------------------------

async def test_lone_surrogates_in_http_bodies_get_a_400_not_a_500(rt):
    for body in ('{"username":"zed","password":"\\ud800abcdefgh"}',
                 '{"username":"zed","password":"abcdefgh12","displayName":"\\udfff"}'):
        resp = await rt.fetch("/api/auth/register", method="POST", body=body, headers={"content-type": "application/json"})
        data = await resp.json()
        assert resp.status == 400 and data["error"]["code"] == "invalid_field", data
    alice = await login(rt, "alice")
    resp = await rt.fetch("/api/me/status", method="PUT", body='{"message":"\\ud83d"}',
                          headers={"authorization": f"Bearer {alice['accessToken']}"})
    assert resp.status == 400


async def test_a_username_with_a_trailing_newline_is_not_a_second_alice(rt):
    for name in ("alice\n", "zed\n"):
        bad = await api(rt, "POST", "/api/auth/register", body={"username": name, "password": "long-enough-1"}, expect=400)
        assert bad["error"]["code"] == "invalid_field"


async def test_deeply_nested_json_is_bad_json_over_http_and_sockets(rt):
    nested = "[" * 5000 + "]" * 5000
    resp = await rt.fetch("/api/auth/login", method="POST", body=nested)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_json"
    alice = await login(rt, "alice")
    ws, _ = await room(rt, "general", alice)
    await ws.send('{"type":"history","x":' + "[" * 5000 + "]" * 5000 + "}")
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "bad_json"
    await ws.send(json.dumps({"type": "send", "cid": "s1", "kind": "text", "text": "\ud800"}))
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "invalid_field"
    assert (await say(ws, "still fine"))["seq"] == 1


async def test_presence_lookup_with_a_huge_or_odd_user_is_a_clean_answer(rt):
    alice = await login(rt, "alice")
    for user in ("u" * 2000, "..", "ALICE", "%C3%A9"):  # ("%00" breaks cfemu/assets.py first: reported)
        resp = await rt.fetch(f"/api/presence/{user}", headers={"authorization": f"Bearer {alice['accessToken']}"})
        assert resp.status in (200, 400, 404), (user, resp.status)
        body = await resp.json()
        assert "Traceback" not in json.dumps(body)
        if resp.status == 200:
            assert body["data"]["status"] == "offline"


def test_emoticons_tokenize_text_whose_upper_case_is_longer(modules):
    e = modules["emoticons"]
    assert e.tokenize("ß:)") == [("text", "ß"), ("emoticon", "smile")]
    assert e.tokenize("ﬃ (h)") == [("text", "ﬃ "), ("emoticon", "hot")]


# -- exactly once -------------------------------------------------------------------------------------

async def test_the_same_cid_racing_in_on_two_sockets_is_stored_once_and_acked_on_both(rt):
    alice = await login(rt, "alice")
    a1, _ = await room(rt, "general", alice)
    a2, _ = await room(rt, "general", alice)
    frame = json.dumps({"type": "send", "cid": "same-1", "kind": "text", "text": "once"})
    await a1.send(frame)
    await a2.send(frame)
    await rt.settle()
    acks = [f for ws in (a1, a2) for f in drain(ws) if f["type"] == "ack"]
    assert len(acks) == 2 and {a["seq"] for a in acks} == {1}
    page = await api(rt, "GET", "/api/rooms/general/history", alice["accessToken"])
    assert [m["cid"] for m in page["messages"]] == ["same-1"]


# -- analytics privacy ----------------------------------------------------------------------------------

async def test_no_analytics_column_of_any_event_carries_ids_names_sessions_or_text(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    await api(rt, "POST", "/api/auth/login", body={"username": "bob", "password": "wrong-password"}, expect=401)
    a, _ = await room(rt, "dm_ualice__ubob", alice)
    await say(a, "zanzibar quokka")
    s, _ = await room(rt, "general", alice)
    await say(s, "hey @sage tell me about quokkas")
    for i in range(15):
        await s.send(json.dumps({"type": "send", "cid": f"flood{i}", "kind": "text", "text": f"flood quokka {i}"}))
    await rt.settle()
    r = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": bob["refreshToken"]})
    await api(rt, "POST", "/api/auth/logout", r["accessToken"], body={"everywhere": True})
    await a.close()
    await rt.settle()
    rows = rt.analytics.query("SELECT * FROM messenger_events FORMAT JSON")
    rows = rows["data"] if isinstance(rows, dict) else json.loads(rows)["data"]
    seen = {r["blob1"] for r in rows}
    assert {"login_failure", "login_success", "message_sent", "rate_limited", "ai_invocation", "token_refresh",
            "session_revoked", "ws_connect", "ws_disconnect"} <= seen, seen
    text = json.dumps(rows).lower()
    for secret in ("ualice", "ubob", "alice", "bob", "zanzibar", "quokka", alice["sessionId"], bob["sessionId"],
                   alice["refreshToken"][:20], "dm_"):
        assert secret.lower() not in text, secret


async def test_a_message_sent_while_a_socket_authenticates_reaches_it_once(rt):
    """Live frames and the reconnect's sync frame never both carry the same sequence."""
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "general", alice)
    await say(a, "before")
    for i in range(3):
        b = await rt.websocket("/ws/room/general")
        await b.send(json.dumps({"type": "auth", "token": bob["accessToken"], "since": 0}))
        await a.send(json.dumps({"type": "send", "cid": f"during-{i}", "kind": "text", "text": f"during {i}"}))
        await rt.settle()
        frames = drain(b)
        seqs = [f["message"]["seq"] for f in frames if f["type"] == "msg"]
        seqs += [m["seq"] for f in frames if f["type"] == "sync" for m in f["messages"]]
        assert sorted(seqs) == list(range(1, i + 3)), frames
        await b.close()


async def test_a_socket_verified_just_before_its_session_was_revoked_is_closed_when_it_registers(rt, monkeypatch):
    """Revocation closes the rooms a session registered; a socket registering after it must close itself."""
    sessions_mod = rt.worker_module("sessions")

    async def check_that_saw_a_live_session(self, uid, republish=False):  # the state a racing verify saw: session still live
        return sessions_mod._ok({"expires": int(rt.now() * 1000) + 60_000})

    alice = await login(rt, "alice")
    await rt.env.SESSIONS.getByName(alice["sessionId"]).revoke()
    monkeypatch.setattr(sessions_mod.Session, "check", check_that_saw_a_live_session)
    for path in ("/ws/room/general", "/ws/presence"):
        ws = await rt.websocket(path)
        await ws.send(json.dumps({"type": "auth", "token": alice["accessToken"]}))
        assert await _closed(ws) == (4003, "session revoked")


# -- the protocol document --------------------------------------------------------------------------------

def test_protocol_md_documents_every_frame_close_code_and_error_code(modules):
    import re
    from pathlib import Path

    p = modules["protocol"]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    for frame in set(p.CHAT_FRAMES) | set(p.PRESENCE_FRAMES):
        assert f"`{frame}`" in doc, frame
    for name, spec in p.CHAT_FRAMES.items():
        for field in spec:
            assert re.search(rf"`{field}\??`", doc), (name, field)
    for code, reason in p.CLOSE.values():
        assert re.search(rf"\| {code} \| `{re.escape(reason)}` \|", doc), code
    for code, status in p.ERRORS.items():
        assert f"`{code}` {status}" in doc, code
    assert f"{p.MAX_TEXT_CHARS}" in doc and "16 KiB" in doc and p.MAX_FRAME_BYTES == 16 * 1024
    assert "another session" in doc  # re-auth renews only the socket's own session


async def test_a_token_in_the_url_never_authenticates_a_socket(rt):
    alice = await login(rt, "alice")
    for path in (f"/ws/room/general?token={alice['accessToken']}", f"/ws/presence?access_token={alice['accessToken']}"):
        ws = await rt.websocket(path)
        await ws.send(json.dumps({"type": "typing"}) if "room" in path else json.dumps({"type": "status", "state": "busy"}))
        err, _ = await frames_until(ws, "error")
        assert err["code"] == "not_authenticated"
        await rt.advance(11)
        assert (await _closed(ws))[0] == 4008


# -- heartbeats and the presence mirror -----------------------------------------------------------------

async def test_a_silent_room_socket_is_closed_by_the_alarm_at_ninety_seconds(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "general", alice)
    b, _ = await room(rt, "general", bob)
    for _ in range(3):
        await rt.advance(29)
        await b.send('{"type":"ping"}')  # bob keeps his heartbeat; alice falls silent
    assert not a.closed
    await rt.advance(5)
    assert await _closed(a) == (4009, "no heartbeat for 90 s")
    assert not b.closed
    leave, _ = await frames_until(b, "leave")
    assert leave["user"] == "ualice"


async def test_the_kv_presence_mirror_expires_when_the_presence_object_dies_with_users_online(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    pb, _ = await presence_socket(rt, bob)
    assert (await api(rt, "GET", "/api/presence/ubob", alice["accessToken"]))["status"] == "online"
    await rt.crash()  # no close event ever reaches the object: only the KV TTL can end "online"
    await rt.restart()
    alice = await login(rt, "alice")
    await rt.advance(121)
    assert (await api(rt, "GET", "/api/presence/ubob", alice["accessToken"]))["status"] == "offline"
    users = await api(rt, "GET", "/api/users", alice["accessToken"])
    assert [u["status"] for u in users["offline"] if u["id"] == "ubob"] == ["offline"]


async def test_an_appear_offline_user_opening_a_room_is_not_announced_to_it(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "appear-offline"})
    dm = "dm_ualice__ubob"
    b, _ = await room(rt, dm, bob)
    a, welcome = await room(rt, dm, alice)
    assert {m["id"]: m["online"] for m in welcome["members"]}["ualice"] is True  # she sees herself
    await rt.settle()
    assert not [f for f in drain(b) if f["type"] in ("join", "leave")]
    b2, welcome = await room(rt, dm, bob)
    assert {m["id"]: m["online"] for m in welcome["members"]}["ualice"] is False
    await a.close()
    await rt.settle()
    assert not [f for f in drain(b) + drain(b2) if f["type"] in ("join", "leave") and "ualice" in json.dumps(f)]


async def test_password_guessing_is_limited_per_username(rt):
    for i in range(10):
        bad = await api(rt, "POST", "/api/auth/login", body={"username": "alice", "password": f"guess-{i}"}, expect=401)
        assert bad["error"]["code"] == "bad_credentials"
    limited = await api(rt, "POST", "/api/auth/login", body={"username": "alice", "password": "alice-demo"}, expect=429)
    assert limited["error"]["code"] == "rate_limited"
    assert (await login(rt, "bob"))["user"]["username"] == "bob"  # other accounts are unaffected
    await rt.advance(15 * 60)
    assert (await login(rt, "alice"))["user"]["username"] == "alice"
    for _ in range(12):  # successful sign-ins never count
        await login(rt, "alice")


async def test_re_auth_floods_do_not_reach_the_session_object(rt):
    """An open socket re-authenticates once per token lifetime; a flood of auth frames is refused early."""
    alice = await login(rt, "alice")
    ws, _ = await room(rt, "general", alice)
    calls = []
    sessions_mod = rt.worker_module("sessions")
    original = sessions_mod.Session.check

    async def counting(self, uid, republish=False):
        calls.append(1)
        return await original(self, uid, republish)

    sessions_mod.Session.check = counting
    try:
        for _ in range(20):
            await ws.send(json.dumps({"type": "auth", "token": alice["accessToken"]}))
        await rt.settle()
    finally:
        sessions_mod.Session.check = original
    frames = drain(ws)
    assert [f["type"] for f in frames].count("reauthed") == 1
    assert {f["code"] for f in frames if f["type"] == "error"} == {"rate_limited"}
    assert len(calls) == 1
    await rt.advance(10)
    await ws.send(json.dumps({"type": "auth", "token": alice["accessToken"]}))
    await frames_until(ws, "reauthed")


async def test_a_lapsed_token_closes_its_socket_within_a_second_of_expiry(rt):
    alice = await login(rt, "alice")
    ws, _ = await room(rt, "general", alice)
    p, _ = await presence_socket(rt, alice)
    expires_s = alice["expiresAt"] / 1000
    while rt.now() < expires_s - 31:
        await rt.advance(30)
        await ws.send('{"type":"ping"}')
        await p.send('{"type":"ping"}')
    await rt.advance(expires_s - 1 - rt.now())
    await ws.send('{"type":"ping"}')
    await p.send('{"type":"ping"}')
    await rt.settle()
    assert not ws.closed and not p.closed
    await rt.advance(1.5)
    assert await _closed(ws) == (4002, "access token expired")
    assert await _closed(p) == (4002, "access token expired")


async def test_a_third_user_on_a_dm_socket_sees_no_text_typing_or_receipts(rt):
    alice, bob, carol = await login(rt, "alice"), await login(rt, "bob"), await login(rt, "carol")
    dm = "dm_ualice__ubob"
    c = await rt.websocket(f"/ws/room/{dm}")  # open, not yet authenticated, while the DM is busy
    a, _ = await room(rt, dm, alice)
    b, _ = await room(rt, dm, bob)
    await a.send('{"type":"typing"}')
    await say(a, "for bob only")
    await b.send(json.dumps({"type": "receipt", "seq": 1, "state": "read"}))
    for frame in ({"type": "history"}, {"type": "sync", "since": 0}, {"type": "receipt", "seq": 1, "state": "read"}):
        await c.send(json.dumps(frame))
    await c.send(json.dumps({"type": "auth", "token": carol["accessToken"], "since": 0}))
    await rt.settle()
    got = [json.loads(m) for m in c.pending()]
    assert {f["type"] for f in got} == {"error"}, got
    assert "for bob only" not in json.dumps(got) and "ualice" not in json.dumps(got)
    assert c.closed and c.close_code == 4004
    for variant in ("dm_ualice__ubob%20", "dm_ualice__UBOB", "DM_ualice__ubob", "dm_ualice__ubob__ucarol",
                    "dm_ualice_ubob", "dm_ubob__ualice", "dm_%75alice__ubob"):
        resp = await rt.fetch(f"/api/rooms/{variant}/history", headers={"authorization": f"Bearer {carol['accessToken']}"})
        assert resp.status in (403, 404), variant
        assert "for bob only" not in await resp.text()
