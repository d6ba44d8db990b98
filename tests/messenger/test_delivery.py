"""Presence, offline DMs through the queue and the inbox, personas, archives, analytics, OpenAPI."""

from __future__ import annotations

import json
import re

from encryption_support import opened_lines
from messenger_client import api, drain, frames_until, login, presence_socket, room, say



def _status(frames, uid):
    return [f["user"]["status"] for f in frames if f["type"] == "presence" and f["user"]["id"] == uid]


async def test_presence_online_multi_tab_states_and_heartbeat_timeout(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    pa, roster = await presence_socket(rt, alice)
    assert {u["id"]: u["status"] for u in roster["users"]}["bsage"] == "online"
    pb1, _ = await presence_socket(rt, bob)
    first, _ = await frames_until(pa, "presence")
    assert first["user"] == {"id": "ubob", "status": "online", "message": "", "name": None}
    pb2, _ = await presence_socket(rt, bob)  # a second tab: no new event
    await pb1.send(json.dumps({"type": "status", "state": "busy", "message": "in a meeting"}))
    busy, _ = await frames_until(pa, "presence")
    assert (busy["user"]["status"], busy["user"]["message"]) == ("busy", "in a meeting")
    await pb1.send(json.dumps({"type": "status", "state": "appear-offline"}))
    hidden, _ = await frames_until(pa, "presence")
    assert hidden["user"]["status"] == "offline"
    own, _ = await frames_until(pb2, "presence")
    while own["user"]["status"] != "appear-offline":
        own, _ = await frames_until(pb2, "presence")
    await pb1.send(json.dumps({"type": "status", "state": "online"}))
    await frames_until(pa, "presence")
    await pb1.close()  # one tab left: still online
    await rt.settle()
    assert _status(drain(pa), "ubob") == []
    assert (await api(rt, "GET", "/api/presence/ubob", alice["accessToken"]))["status"] == "online"  # KV mirror
    # Bob's remaining tab falls silent; Alice keeps pinging.  Within 90 s Bob is offline.
    for _ in range(4):
        await rt.advance(30)
        await pa.send('{"type":"ping"}')
    assert _status(drain(pa), "ubob") == ["offline"]  # once, at the timeout
    assert pb2.closed and pb2.close_code == 4009
    await rt.advance(10)
    await pa.send('{"type":"ping"}')
    assert _status(drain(pa), "ubob") == []
    assert not pa.closed
    users = await api(rt, "GET", "/api/users", alice["accessToken"])
    assert [u["username"] for u in users["offline"] if u["id"] == "ubob"] == ["bob"]
    assert (await api(rt, "GET", "/api/presence/ubob", alice["accessToken"]))["status"] == "offline"


async def test_presence_does_not_flicker_on_a_quick_reconnect_and_goes_offline_after_a_clean_leave(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    pa, _ = await presence_socket(rt, alice)
    pb, _ = await presence_socket(rt, bob)
    await frames_until(pa, "presence")  # bob online
    await pb.close()  # a page reload: the last socket closes...
    await rt.advance(2)
    pb, _ = await presence_socket(rt, bob)  # ...and comes back within the grace
    await rt.advance(10)
    await pa.send('{"type":"ping"}')
    assert _status(drain(pa), "ubob") == []  # never shown offline
    await pb.close()
    await rt.advance(4)
    assert _status(drain(pa), "ubob") == []
    await rt.advance(1.5)
    assert _status(drain(pa), "ubob") == ["offline"]


async def test_offline_dm_goes_through_the_queue_to_the_inbox_and_arrives_at_next_sign_in(rt):
    alice = await login(rt, "alice")
    dm = "dm_ualice__ubob"
    a, _ = await room(rt, dm, alice)
    acks = [await say(a, "are you there?"), await say(a, "call me (L)")]
    await rt.advance(2)  # the queue batch timeout
    bob = await login(rt, "bob")
    users = await api(rt, "GET", "/api/users", bob["accessToken"])
    assert [u["unread"] for u in users["offline"] + users["online"] if u["id"] == "ualice"] == [2]
    inbox = await api(rt, "GET", "/api/inbox", bob["accessToken"])
    assert [(p["room"], p["seq"]) for p in inbox["pointers"]] == [(dm, acks[0]["seq"]), (dm, acks[1]["seq"])]
    pb, roster = await presence_socket(rt, bob)
    assert roster["inbox"][dm]["unread"] == 2
    b, _ = await room(rt, dm, bob, since=0)
    sync, _ = await frames_until(b, "sync")
    assert [m["text"] for m in sync["messages"]] == ["are you there?", "call me (L)"]  # once each
    await b.send(json.dumps({"type": "receipt", "seq": acks[1]["seq"], "state": "read"}))
    r, _ = await frames_until(a, "receipt")
    assert r["read"] == acks[1]["seq"]
    await rt.settle()
    assert (await api(rt, "GET", "/api/inbox", bob["accessToken"]))["pointers"] == []
    # Bob is online in presence but has no socket in the DM: the pointer reaches his buddy list live.
    await b.close()
    await say(a, "one more")
    await rt.advance(2)
    note, _ = await frames_until(pb, "inbox")
    assert (note["room"], note["from"], note["unread"]) == (dm, "ualice", 1)


async def test_persona_answers_a_mention_and_a_dm_with_typing(rt):
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    await say(a, "hey @sage what is patience?")
    typing, _ = await frames_until(a, "typing")
    assert typing["user"] == "bsage" and typing["on"] is True
    reply, _ = await frames_until(a, "msg")
    assert reply["message"]["from"] == "bsage" and reply["message"]["name"] == "Sage" and reply["message"]["text"]
    dm = "dm_bjester__ualice"
    d, _ = await room(rt, dm, alice)
    await say(d, "tell me a joke")
    reply, _ = await frames_until(d, "msg")
    assert reply["message"]["from"] == "bjester"
    page = await api(rt, "GET", f"/api/rooms/{dm}/history", alice["accessToken"])
    assert [m["from"] for m in page["messages"]] == ["ualice", "bjester"]


async def test_ai_kill_switch_and_daily_quota(tmp_path):
    from cfemu.testing import Runtime
    from messenger_support import test_config

    async with Runtime.from_config(test_config(tmp_path, {"AI_DAILY_PER_USER": "2"}), persist_to=tmp_path / "s") as rt:
        alice = await login(rt, "alice")
        d, _ = await room(rt, "dm_bnova__ualice", alice)
        for i in range(2):
            await say(d, f"question {i}")
            reply, _ = await frames_until(d, "msg")
            assert reply["message"]["from"] == "bnova"
        await say(d, "question 3")
        err, _ = await frames_until(d, "error")
        assert err["code"] == "quota_exceeded"
        await rt.advance(86_400)
        alice = await login(rt, "alice")
        d, _ = await room(rt, "dm_bnova__ualice", alice)
        await rt.env.KV.put("ai:killswitch", "on")
        await say(d, "question 4")
        err, _ = await frames_until(d, "error")
        assert err["code"] == "ai_disabled"
        await rt.env.KV.delete("ai:killswitch")
        await say(d, "question 5")
        reply, _ = await frames_until(d, "msg")
        assert reply["message"]["from"] == "bnova"


async def test_archive_to_d1_search_and_daily_ndjson_in_r2(rt):
    alice, carol = await login(rt, "alice"), await login(rt, "carol")
    a, _ = await room(rt, "general", alice)
    d, _ = await room(rt, "dm_ualice__ubob", alice)
    await say(a, "Pineapple pizza is great")
    await say(a, "pizza again")
    await say(d, "private pineapple")
    await rt.settle()
    hits = await api(rt, "GET", "/api/search?q=pineapple", alice["accessToken"])
    assert sorted(h["text"] for h in hits["results"]) == ["Pineapple pizza is great", "private pineapple"]
    hits = await api(rt, "GET", "/api/search?q=pineapple%20pizza", alice["accessToken"])
    assert [h["text"] for h in hits["results"]] == ["Pineapple pizza is great"]
    hits = await api(rt, "GET", "/api/search?q=pineapple", carol["accessToken"])
    assert [h["text"] for h in hits["results"]] == ["Pineapple pizza is great"]  # not Alice's DM
    # No plaintext word in the token index.
    terms = await rt.env.DB.prepare("SELECT term FROM message_terms").all()
    assert all(re.fullmatch(r"[0-9a-f]{32}", row["term"]) for row in terms["results"])
    await rt.advance(86_400)
    obj = await rt.env.ARCHIVE.get("archive/general/" + _day(rt.now() - 86_400) + ".ndjson")
    assert obj is not None
    text = await obj.text()
    assert "izza" not in text                      # sealed: the day file holds no plaintext
    lines = await opened_lines(rt, text)
    assert [m["text"] for m in lines] == ["Pineapple pizza is great", "pizza again"]
    assert len({m["id"] for m in lines}) == len(lines)
    assert await rt.scheduled("15 0 * * *")  # a second export rewrites, never duplicates
    obj = await rt.env.ARCHIVE.get("archive/general/" + _day(rt.now() - 86_400) + ".ndjson")
    assert len((await obj.text()).splitlines()) == 2


def _day(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc).strftime("%Y-%m-%d")


async def test_analytics_events_carry_no_identities_or_text(rt):
    await api(rt, "POST", "/api/auth/login", body={"username": "alice", "password": "wrong-pass"}, expect=401)
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    await say(a, "the secret word is marmalade")
    await a.close()
    await rt.settle()
    rows = rt.analytics.query("SELECT blob1, index1, blob2, blob3, blob4 FROM messenger_events FORMAT JSON")
    rows = rows["data"] if isinstance(rows, dict) else json.loads(rows)["data"]
    seen = {r["blob1"] for r in rows}
    assert {"login_failure", "login_success", "ws_connect", "message_sent", "ws_disconnect"} <= seen
    text = json.dumps(rows)
    for secret in ("alice", "ualice", "Alice", "marmalade"):
        assert secret not in text


async def test_openapi_document_covers_every_route(rt, modules):
    doc = (await (await rt.fetch("/api/openapi.json")).json())
    assert doc["openapi"].startswith("3.")
    routes = rt.worker_module("entry").ROUTES
    for method, pattern, handler, needs_auth, _summary, _body in routes:
        op = doc["paths"][pattern][method.lower()]
        assert op["operationId"] == handler
        if handler.startswith("admin_"):
            assert op["security"] == [{"adminToken": []}]  # the ADMIN_TOKEN secret, not a user's token
        else:
            assert ("security" in op) == needs_auth
    assert sum(len(v) for v in doc["paths"].values()) == len(routes)
    resp = await rt.fetch("/api/nope")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await rt.fetch("/api/me", method="PATCH")
    assert resp.status == 405
    resp = await rt.fetch("/")
    assert resp.status == 200 and "text/html" in resp.headers.get("content-type")


async def test_poison_delivery_retries_with_backoff_then_lands_in_the_dead_letter_queue(rt):
    await rt.env.DELIVERY.send(json.dumps({"to": "unobody", "room": "dm_ualice__unobody"}))  # no seq: poison
    await rt.advance(2)
    queues = rt.service("queues")
    assert queues.pending("messenger-delivery-dlq") == 0
    await rt.advance(2 + 4 + 8 + 16 + 32 + 64)  # 2 s .. 64 s backoff between attempts
    assert queues.pending("messenger-delivery") == 0
    dead = queues.messages("messenger-delivery-dlq")
    assert len(dead) == 1 and json.loads(dead[0]["body"])["to"] == "unobody"


async def test_a_failed_d1_write_after_a_send_is_retried_by_the_rooms_alarm(rt, modules, monkeypatch):
    """The D1 copy is written after the ack (waitUntil); a failure there was only printed, so the
    message never reached search nor the R2 archives.  The room now remembers it and retries."""
    archive = modules["archive"]
    original, calls = archive.record, []

    async def flaky(env, room_name, msg):
        calls.append(msg["seq"])
        if len(calls) <= 2:
            raise RuntimeError("D1_ERROR: database is temporarily unavailable")
        return await original(env, room_name, msg)

    monkeypatch.setattr(archive, "record", flaky)
    for statement in archive.SCHEMA:
        await rt.env.DB.prepare(statement).run()
    alice = await login(rt, "alice")
    ws, _ = await room(rt, "general", alice)
    await say(ws, "quartzvox must reach the archive")
    await rt.settle()
    rows = (await rt.env.DB.prepare("SELECT seq FROM messages WHERE room = 'general'").all()).results
    assert rows == [] and calls == [1]
    assert list(rt.storage("CHAT", "general").list(prefix="arc:")) == ["arc:000000000001"]
    await rt.advance(61)                                  # the first retry fails too: it waits again
    assert calls == [1, 1]
    await rt.advance(61)
    rows = (await rt.env.DB.prepare("SELECT seq FROM messages WHERE room = 'general'").all()).results
    assert [r["seq"] for r in rows] == [1]
    assert list(rt.storage("CHAT", "general").list(prefix="arc:")) == []
    assert (await api(rt, "GET", "/api/search?q=quartzvox", alice["accessToken"]))["results"]


async def test_a_pending_archive_retry_survives_a_crash_and_skips_a_redacted_message(rt, modules, monkeypatch):
    archive = modules["archive"]
    original, fail = archive.record, [True]

    async def flaky(env, room_name, msg):
        if fail[0]:
            raise RuntimeError("D1_ERROR: database is temporarily unavailable")
        return await original(env, room_name, msg)

    monkeypatch.setattr(archive, "record", flaky)
    for statement in archive.SCHEMA:
        await rt.env.DB.prepare(statement).run()
    zoe = await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": "zoe-password-1"})
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    z, _ = await room(rt, "general", zoe)
    await say(a, "alice's words")
    await say(z, "zoe's words")
    await rt.settle()
    assert len(list(rt.storage("CHAT", "general").list(prefix="arc:"))) == 2
    await rt.crash()
    await rt.restart()
    fail[0] = False
    zoe = await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": "zoe-password-1"})
    await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": "zoe-password-1"})
    await rt.advance(61)
    rows = (await rt.env.DB.prepare("SELECT seq, sender FROM messages WHERE room = 'general'").all()).results
    assert [(r["seq"], r["sender"]) for r in rows] == [(1, "ualice")]    # zoe's is gone for good
    assert list(rt.storage("CHAT", "general").list(prefix="arc:")) == []
