"""The messenger end to end through the fixture: rooms, DMs, receipts, gaps, durability, limits."""

from __future__ import annotations

import json

import pytest

from messenger_client import api, drain, frames_until, login, room, say



async def test_two_users_chat_in_a_room(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, welcome = await room(rt, "general", alice)
    b, _ = await room(rt, "general", bob)
    assert welcome["room"] == "general" and welcome["lastSeq"] == 0
    ack = await say(a, "hello bob :)")
    assert ack["seq"] == 1
    msg, _ = await frames_until(b, "msg")
    assert msg["message"]["text"] == "hello bob :)" and msg["message"]["from"] == "ualice"
    assert msg["message"]["seq"] == 1 and msg["message"]["name"] == "Alice"
    ack = await say(b, "hi alice")
    msg, _ = await frames_until(a, "msg")
    assert (ack["seq"], msg["message"]["seq"]) == (2, 2)


async def test_dm_is_private_to_its_two_participants(rt):
    alice, bob, carol = await login(rt, "alice"), await login(rt, "bob"), await login(rt, "carol")
    dm = "dm_ualice__ubob"
    a, _ = await room(rt, dm, alice)
    b, _ = await room(rt, dm, bob)
    await say(a, "secret")
    msg, _ = await frames_until(b, "msg")
    assert msg["message"]["text"] == "secret"
    c = await rt.websocket(f"/ws/room/{dm}")
    await c.send(json.dumps({"type": "auth", "token": carol["accessToken"]}))
    err, _ = await frames_until(c, "error")
    assert err["code"] == "forbidden"
    from cfemu.testing import WebSocketClosed

    with pytest.raises(WebSocketClosed) as closed:
        await c.receive()
    assert closed.value.code == 4004
    denied = await api(rt, "GET", f"/api/rooms/{dm}/history", carol["accessToken"], expect=403)
    assert denied["error"]["code"] == "forbidden"
    page = await api(rt, "GET", f"/api/rooms/{dm}/history", bob["accessToken"])
    assert [m["text"] for m in page["messages"]] == ["secret"]
    assert (await api(rt, "GET", "/api/rooms/dm_ubob__ualice/history", bob["accessToken"], expect=404))["error"]["code"] == "not_found"


async def test_receipts_only_move_forward(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    dm = "dm_ualice__ubob"
    a, _ = await room(rt, dm, alice)
    b, _ = await room(rt, dm, bob)
    for i in range(3):
        await say(a, f"m{i}")
    await b.send(json.dumps({"type": "receipt", "seq": 3, "state": "read"}))
    r, _ = await frames_until(a, "receipt")
    assert (r["user"], r["delivered"], r["read"]) == ("ubob", 3, 3)
    await b.send(json.dumps({"type": "receipt", "seq": 2, "state": "delivered"}))  # backwards: ignored
    await b.send(json.dumps({"type": "receipt", "seq": 1, "state": "read"}))
    await rt.settle()
    assert not [f for f in drain(a) if f["type"] == "receipt"]
    page = await api(rt, "GET", f"/api/rooms/{dm}/history", alice["accessToken"])
    assert page["receipts"]["ubob"] == {"delivered": 3, "read": 3}


async def test_reconnect_gets_exactly_the_gap_and_resends_are_deduplicated(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "general", alice)
    b, _ = await room(rt, "general", bob)
    await say(a, "one")
    first, _ = await frames_until(b, "msg")
    last_seen = first["message"]["seq"]
    await b.close()
    for text in ("two", "three", "four"):
        await say(a, text)
    dup = await say(a, "four", cid=None)  # a different cid is a different message
    again = await a.send(json.dumps({"type": "send", "cid": "fixed", "kind": "text", "text": "x"}))
    ack1, _ = await frames_until(a, "ack")
    await a.send(json.dumps({"type": "send", "cid": "fixed", "kind": "text", "text": "x"}))
    ack2, _ = await frames_until(a, "ack")
    assert ack1["seq"] == ack2["seq"] and ack2["duplicate"] is True
    b2, welcome = await room(rt, "general", bob, since=last_seen)
    sync, _ = await frames_until(b2, "sync")
    assert [m["text"] for m in sync["messages"]] == ["two", "three", "four", "four", "x"]
    assert [m["seq"] for m in sync["messages"]] == list(range(last_seen + 1, welcome["lastSeq"] + 1))
    assert sync["more"] is False and dup["seq"] == 5 and again is None


async def test_history_pages_backwards(rt):
    alice = await login(rt, "alice")
    a, _ = await room(rt, "music", alice)
    for i in range(1, 8):
        await say(a, f"song {i}")
    page = await api(rt, "GET", "/api/rooms/music/history?limit=3", alice["accessToken"])
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7] and page["hasMore"]
    page = await api(rt, "GET", "/api/rooms/music/history?limit=3&before=5", alice["accessToken"])
    assert [m["seq"] for m in page["messages"]] == [2, 3, 4] and page["hasMore"]
    page = await api(rt, "GET", "/api/rooms/music/history?limit=3&before=2", alice["accessToken"])
    assert [m["seq"] for m in page["messages"]] == [1] and not page["hasMore"]
    await a.send(json.dumps({"type": "history", "before": 3, "limit": 5}))
    frame, _ = await frames_until(a, "history")
    assert [m["text"] for m in frame["messages"]] == ["song 1", "song 2"]


async def test_eviction_mid_conversation_loses_nothing_acknowledged(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "general", alice)
    acked = [(await say(a, f"before {i}"))["seq"] for i in range(3)]
    await rt.evict("CHAT", "general")
    acked += [(await say(a, f"after {i}"))["seq"] for i in range(2)]  # the hibernated socket wakes the object
    await rt.reroute("CHAT", "general")
    b, welcome = await room(rt, "general", bob, since=0)
    sync, _ = await frames_until(b, "sync")
    assert [m["seq"] for m in sync["messages"]] == acked == [1, 2, 3, 4, 5]
    assert welcome["lastSeq"] == 5


async def test_acknowledged_messages_survive_a_crash(rt):
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    acked = [(await say(a, f"m{i}"))["seq"] for i in range(4)]
    await rt.crash()
    await rt.restart()
    alice = await login(rt, "alice")
    page = await api(rt, "GET", "/api/rooms/general/history", alice["accessToken"])
    assert [m["seq"] for m in page["messages"]] == acked
    a, welcome = await room(rt, "general", alice)
    assert (await say(a, "after restart"))["seq"] == 5


async def test_rate_limits_are_per_user_across_rooms_and_hold_across_reroute_and_restart(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "general", alice)
    for i in range(8):
        await say(a, f"m{i}")
    m, _ = await room(rt, "music", alice)
    for i in range(2):
        await say(m, f"music {i}")
    await rt.reroute("CHAT", "general")  # connections drop, as when an object moves
    await rt.reroute("LIMITER", "ualice")
    a, _ = await room(rt, "general", alice)
    for i in range(5):
        await say(a, f"n{i}")
    for ws in (a, m):  # 15 in 60 s across both rooms: the 16th is refused in either
        await ws.send(json.dumps({"type": "send", "cid": "over", "kind": "text", "text": "too many"}))
        err, _ = await frames_until(ws, "error")
        assert err["code"] == "rate_limited" and err["cid"] == "over" and err["retryAfterMs"] > 0
    b, _ = await room(rt, "general", bob)
    await say(b, "bob is not limited by alice")
    await a.send('{"type":"ping"}')  # pings and typing do not count
    await a.send('{"type":"typing"}')
    await rt.crash()
    await rt.restart()
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    await a.send(json.dumps({"type": "send", "cid": "still", "kind": "text", "text": "still too many"}))
    err, _ = await frames_until(a, "error")
    assert err["code"] == "rate_limited"
    await rt.advance(61)
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    assert (await say(a, "the window has passed"))["seq"] == 15
    page = await api(rt, "GET", "/api/rooms/general/history", alice["accessToken"])
    assert [m["cid"] for m in page["messages"]].count("over") == 0


async def test_nudges_are_limited_to_one_per_five_seconds_and_reach_the_other_side(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    dm = "dm_ualice__ubob"
    a, _ = await room(rt, dm, alice)
    b, _ = await room(rt, dm, bob)
    await a.send(json.dumps({"type": "send", "cid": "n1", "kind": "nudge"}))
    await frames_until(a, "ack")
    msg, _ = await frames_until(b, "msg")
    assert msg["message"]["kind"] == "nudge" and msg["message"]["from"] == "ualice"
    await a.send(json.dumps({"type": "send", "cid": "n2", "kind": "nudge"}))
    err, _ = await frames_until(a, "error")
    assert err["code"] == "rate_limited"
    await rt.advance(5)
    await a.send(json.dumps({"type": "send", "cid": "n3", "kind": "nudge"}))
    await frames_until(a, "ack")
    await a.send(json.dumps({"type": "send", "cid": "w1", "kind": "wink", "wink": "wave"}))
    ack, _ = await frames_until(a, "ack")
    msg, _ = await frames_until(b, "msg")
    while msg["message"]["kind"] != "wink":
        msg, _ = await frames_until(b, "msg")
    assert msg["message"]["wink"] == "wave"


async def test_typing_expires_after_three_seconds(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "general", alice)
    b, _ = await room(rt, "general", bob)
    await a.send('{"type":"typing"}')
    on, _ = await frames_until(b, "typing")
    assert on["on"] is True and on["user"] == "ualice"
    await rt.advance(2)
    assert not [f for f in drain(b) if f["type"] == "typing"]
    await rt.advance(1.5)
    off, _ = await frames_until(b, "typing")
    assert off["on"] is False and off["user"] == "ualice"


async def test_malformed_frames_get_error_frames_and_the_room_keeps_working(rt):
    alice = await login(rt, "alice")
    ws = await rt.websocket("/ws/room/general")
    await ws.send(json.dumps({"type": "send", "cid": "c", "kind": "text", "text": "before auth"}))
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "not_authenticated"
    await ws.send(json.dumps({"type": "auth", "token": alice["accessToken"]}))
    await frames_until(ws, "welcome")
    for bad, code in (("{{{", "bad_json"), ('{"type":"boom"}', "unknown_type"), (b"\x00\x01", "bad_request"),
                      (json.dumps({"type": "send", "cid": "c", "kind": "text", "text": "x" * 3000}), "invalid_field")):
        await ws.send(bad)
        err, _ = await frames_until(ws, "error")
        assert err["code"] == code
    assert (await say(ws, "still here"))["seq"] == 1


async def test_unknown_room_and_plain_http_to_a_socket_route(rt):
    resp = await rt.fetch("/ws/room/not..a..room", headers={"upgrade": "websocket"})
    assert resp.status == 404
    resp = await rt.fetch("/ws/room/general")
    assert resp.status == 426


async def test_history_survives_a_redeploy_that_renames_the_room_class(tmp_path):
    """A deploy that renames ChatRoom (a `renamed_classes` migration) keeps every room's log."""
    import shutil

    from cfemu.testing import Runtime
    from messenger_support import ROOT, test_config

    worker = tmp_path / "app"
    shutil.copytree(ROOT / "messenger", worker / "messenger", ignore=shutil.ignore_patterns("__pycache__"))
    config = test_config(tmp_path)
    raw = json.loads(config.read_text())
    raw["main"] = str(worker / "messenger" / "entry.py")
    config.write_text(json.dumps(raw))
    async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        acked = [(await say(a, f"v1 message {i}"))["seq"] for i in range(3)]
        with open(worker / "messenger" / "entry.py", "a") as f:
            f.write("\n\nclass ChatRoomV2(ChatRoom):\n    \"\"\"The same room under its new name.\"\"\"\n")
        raw["durable_objects"]["bindings"] = [b if b["name"] != "CHAT" else {**b, "class_name": "ChatRoomV2"}
                                              for b in raw["durable_objects"]["bindings"]]
        raw["migrations"].append({"tag": "rename-chatroom", "renamed_classes": [{"from": "ChatRoom", "to": "ChatRoomV2"}]})
        config.write_text(json.dumps(raw))
        await rt.redeploy(config)
        alice = await login(rt, "alice")
        page = await api(rt, "GET", "/api/rooms/general/history", alice["accessToken"])
        assert [m["seq"] for m in page["messages"]] == acked
        a, welcome = await room(rt, "general", alice)
        assert welcome["lastSeq"] == 3 and (await say(a, "after the rename"))["seq"] == 4
