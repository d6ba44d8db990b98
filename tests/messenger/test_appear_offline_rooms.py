"""Appear-offline chosen while already in rooms: every room the user is in hides them at once, and
shows them again when they come back, exactly as the buddy lists do."""

from __future__ import annotations

import json

from messenger_client import api, drain, frames_until, login, presence_socket, room


def _about(frames, uid):
    return [f for f in frames if uid in json.dumps(f)]


async def test_going_appear_offline_in_a_room_hides_the_user_there_at_once(rt):
    alice, bob, carol = await login(rt, "alice"), await login(rt, "bob"), await login(rt, "carol")
    b, _ = await room(rt, "general", bob)
    a, _ = await room(rt, "general", alice)
    a_dm, _ = await room(rt, "dm_ualice__ubob", alice)
    b_dm, _ = await room(rt, "dm_ualice__ubob", bob)
    await a.send('{"type":"typing"}')
    await frames_until(b, "typing")
    await rt.settle()
    drain(b), drain(b_dm)

    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "appear-offline"})
    # No settling: the change reached the rooms before the call returned, as it reaches buddy lists.
    got = drain(b)
    assert {"type": "leave", "user": "ualice"} in got
    assert {"type": "typing", "user": "ualice", "on": False} in got
    assert {"type": "leave", "user": "ualice"} in drain(b_dm)

    # Typing while hidden is not announced; a newcomer's welcome does not list her.
    await a.send('{"type":"typing"}')
    await a_dm.send('{"type":"typing"}')
    await rt.settle()
    assert _about(drain(b) + drain(b_dm), "ualice") == []
    c, welcome = await room(rt, "general", carol)
    assert "ualice" not in [m["id"] for m in welcome["members"]]
    assert welcome["typing"] == []
    b2, welcome = await room(rt, "dm_ualice__ubob", bob)
    assert {m["id"]: m["online"] for m in welcome["members"]}["ualice"] is False
    # She still sees herself.
    a2, welcome = await room(rt, "general", alice)
    assert "ualice" in [m["id"] for m in welcome["members"]]
    await rt.settle()
    assert _about(drain(b) + drain(c), "ualice") == []

    # Closing a hidden socket says nothing either.
    await a2.close()
    await rt.settle()
    assert _about(drain(b) + drain(c), "ualice") == []

    # Back to online (through the presence socket's status frame this time): the rooms see her join.
    p, _ = await presence_socket(rt, alice)
    await p.send(json.dumps({"type": "status", "state": "online"}))
    await frames_until(p, "presence")
    await rt.settle()
    for ws in (b, c, b_dm):
        joins = [f for f in drain(ws) if f["type"] == "join" and f["user"]["id"] == "ualice"]
        assert joins == [{"type": "join", "user": {"id": "ualice", "name": "Alice"}}], joins
    _, welcome = await room(rt, "general", carol)
    assert "ualice" in [m["id"] for m in welcome["members"]]


async def test_busy_and_away_changes_say_nothing_to_rooms(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    b, _ = await room(rt, "general", bob)
    a, _ = await room(rt, "general", alice)
    await rt.settle()
    drain(b)
    for state in ("busy", "away", "online"):
        await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": state})
    await rt.settle()
    assert [f for f in drain(b) if f["type"] in ("join", "leave")] == []


async def test_hidden_state_holds_after_the_room_is_evicted(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    a, _ = await room(rt, "music", alice)
    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "appear-offline"})
    await rt.evict("CHAT", "music")
    _, welcome = await room(rt, "music", bob)
    assert "ualice" not in [m["id"] for m in welcome["members"]]
    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "away"})
    _, welcome = await room(rt, "music", bob)
    assert "ualice" in [m["id"] for m in welcome["members"]]


async def test_a_switch_racing_a_socket_being_admitted_is_not_lost(rt):
    """The room asked presence (still visible), then the switch to appear-offline lands before the socket
    is admitted: the newer version wins, so she is neither announced nor listed."""
    import asyncio

    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    b, _ = await room(rt, "general", bob)
    await rt.settle()
    drain(b)
    rooms_mod = rt.worker_module("rooms")
    original = rooms_mod.ChatRoom._visibility
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow(self, uid):
        answer = await original(self, uid)
        if uid == "ualice":
            asked.set()
            await release.wait()
        return answer

    rooms_mod.ChatRoom._visibility = slow
    try:
        joining = asyncio.ensure_future(room(rt, "general", alice))
        await asyncio.wait_for(asked.wait(), 5)
        await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "appear-offline"})
        release.set()
        a, welcome = await joining
    finally:
        rooms_mod.ChatRoom._visibility = original
    await rt.settle()
    assert _about(drain(b), "ualice") == []
    _, welcome = await room(rt, "general", bob)
    assert "ualice" not in [m["id"] for m in welcome["members"]]
    # And the room stays on her list: coming back reaches it.
    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "online"})
    assert [f for f in drain(b) if f["type"] == "join" and f["user"]["id"] == "ualice"]


async def test_rooms_she_has_left_are_forgotten_by_presence(rt):
    alice = await login(rt, "alice")
    a, _ = await room(rt, "music", alice)
    g, _ = await room(rt, "general", alice)
    assert json.loads(rt.storage("PRESENCE", "global").get("r:ualice")) == ["music", "general"]
    await a.close()
    await rt.settle()
    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"state": "appear-offline"})
    assert json.loads(rt.storage("PRESENCE", "global").get("r:ualice")) == ["general"]


async def test_a_changed_display_name_is_used_in_rooms_already_open_and_in_me(rt):
    alice, bob = await login(rt, "alice"), await login(rt, "bob")
    b, _ = await room(rt, "general", bob)
    a, _ = await room(rt, "general", alice)
    await api(rt, "PUT", "/api/me/status", alice["accessToken"], body={"name": "Ally"})
    from messenger_client import say

    await say(a, "new name")
    msg, _ = await frames_until(b, "msg")
    assert msg["message"]["name"] == "Ally"
    a2, welcome = await room(rt, "music", alice)
    assert welcome["you"]["name"] == "Ally"
    assert (await api(rt, "GET", "/api/me", alice["accessToken"]))["displayName"] == "Ally"
