"""Account deletion reaches every store: room logs (redacted in place, sequences kept), D1, R2 archives,
inboxes, presence, limiter counters; then every store is searched for the user's data."""

from __future__ import annotations

import json

import pytest

from encryption_support import opened_lines
from messenger_client import api, drain, frames_until, login, room, say

SECRET = "quartzvox"


async def _zoe_talks(rt):
    """A registered user who chats in a room, DMs an offline human and a persona; archives exported."""
    zoe = await api(rt, "POST", "/api/auth/register",
                    body={"username": "zoe", "password": "zoe-password-1", "displayName": "Zoe Quill"})
    uid = zoe["user"]["id"]
    bob = await login(rt, "bob")
    await api(rt, "PUT", "/api/me/status", zoe["accessToken"], body={"message": f"{SECRET} mood"})
    b, _ = await room(rt, "general", bob)
    z, _ = await room(rt, "general", zoe)
    await say(z, f"{SECRET} one in general")
    await say(b, "bob keeps this")
    await z.send('{"type":"typing"}')
    dm = f"dm_ubob__{uid}" if "ubob" < uid else f"dm_{uid}__ubob"
    zd, _ = await room(rt, dm, zoe)
    await say(zd, f"{SECRET} two for bob")                     # bob has no socket there: inbox pointer
    bot = f"dm_bsage__{uid}"
    zb, _ = await room(rt, bot, zoe)
    await say(zb, f"{SECRET} three for sage")
    await frames_until(zb, "msg")                              # the persona's answer
    await rt.advance(2)                                        # the delivery queue's batch timeout
    assert (await api(rt, "GET", "/api/inbox", bob["accessToken"]))["pointers"]
    await rt.advance(86_400)
    assert await rt.scheduled("15 0 * * *")                   # yesterday's NDJSON archives
    texts = [await (await rt.env.ARCHIVE.get(o.key)).text() for o in (await rt.env.ARCHIVE.list(prefix="archive/")).objects]
    assert not any(SECRET in t for t in texts)                 # sealed at rest
    opened = [m for t in texts for m in await opened_lines(rt, t)]
    assert any(SECRET in m.get("text", "") for m in opened)
    # A day later: tokens renewed, and more of her words today (in the log and D1, not yet in R2).
    zoe = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": zoe["refreshToken"]})
    bob = await login(rt, "bob")
    z, _ = await room(rt, "general", zoe)
    await say(z, f"{SECRET} today")
    b, _ = await room(rt, "general", bob)
    await rt.settle()
    return zoe, uid, bob, b, dm, bot


def _all_object_storage(rt) -> dict:
    out = {}
    for binding in ("CHAT", "PRESENCE", "INBOX", "DIRECTORY", "SESSIONS", "AI_QUOTA", "LIMITER"):
        for oid in rt.list_ids(binding):
            store = rt.storage(binding, oid)
            out[(binding, oid)] = {k: store.get(k) for k in store.list()}
    return out


async def test_deleting_an_account_redacts_its_messages_and_leaves_nothing_of_it(rt):
    zoe, uid, bob, b, dm, bot = await _zoe_talks(rt)
    before = await api(rt, "GET", "/api/rooms/general/history", bob["accessToken"])
    drain(b)

    receipt = await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": "zoe-password-1"})
    assert receipt["deleted"] == uid
    assert receipt["notYet"] == []
    assert receipt["counts"]["messagesRedacted"] == 3 and receipt["counts"]["roomsWiped"] == 1

    # The room log keeps every sequence; hers are tombstones, everyone else's are untouched.
    after = await api(rt, "GET", "/api/rooms/general/history", bob["accessToken"])
    assert after["lastSeq"] == before["lastSeq"]
    assert [m["seq"] for m in after["messages"]] == [m["seq"] for m in before["messages"]]
    tomb = after["messages"][0]
    assert tomb["kind"] == "deleted" and tomb["from"] is None and "text" not in tomb and tomb["name"] == ""
    assert after["messages"][1]["text"] == "bob keeps this"
    # A live member hears of it; a reconnecting one gets the same tombstones in its gap.
    redact, _ = await frames_until(b, "redact")
    assert redact == {"type": "redact", "room": "general", "seqs": [1, 3]}
    b2, _ = await room(rt, "general", bob, since=0)
    sync, _ = await frames_until(b2, "sync")
    assert [m["kind"] for m in sync["messages"]] == ["deleted", "text", "deleted"]
    dm_page = await api(rt, "GET", f"/api/rooms/{dm}/history", bob["accessToken"])
    assert [m["kind"] for m in dm_page["messages"]] == ["deleted"]

    # Bob's inbox no longer points at her DM; search finds nothing.
    inbox = await api(rt, "GET", "/api/inbox", bob["accessToken"])
    assert inbox == {"pointers": [], "counts": {}}
    assert (await api(rt, "GET", f"/api/search?q={SECRET}", bob["accessToken"]))["results"] == []

    # D1: no row of hers, no search term of her messages.
    rows = (await rt.env.DB.prepare("SELECT * FROM messages").all()).results
    assert rows and not [r for r in rows if r["sender"] == uid or r["room"] == bot]
    ids = {r["id"] for r in rows}
    terms = (await rt.env.DB.prepare("SELECT message_id FROM message_terms").all()).results
    assert {t["message_id"] for t in terms} <= ids
    # R2: the archives that held her messages are rewritten without them.
    listed = await rt.env.ARCHIVE.list()
    for obj in listed.objects:
        text = await (await rt.env.ARCHIVE.get(obj.key)).text()
        assert SECRET not in text and uid not in text and "Zoe Quill" not in text, obj.key
    assert f"archive/{bot}/" not in " ".join(o.key for o in listed.objects)
    # KV: no presence mirror, no marker naming her.
    keys = (await rt.env.KV.list())["keys"]
    for k in keys:
        value = await rt.env.KV.get(k.name) or ""
        assert uid not in k.name and uid not in value and SECRET not in value, k.name

    # Every Durable Object's storage: nothing of hers but DM room names (a random id linked to nothing).
    for (binding, oid), data in _all_object_storage(rt).items():
        for key, value in data.items():
            text = json.dumps(value)
            assert SECRET not in key + text and "Zoe Quill" not in text and "zoe" not in key, (binding, key, value)
            if uid in key + text:
                assert binding == "CHAT" and key == "room" and value == json.dumps(dm), (binding, key, value)


async def test_deleted_account_name_can_be_registered_again_and_sees_nothing_old(rt):
    zoe, uid, bob, b, dm, bot = await _zoe_talks(rt)
    await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": "zoe-password-1"})
    again = await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": "zoe-password-2"})
    assert again["user"]["id"] != uid
    assert (await api(rt, "GET", "/api/inbox", again["accessToken"])) == {"pointers": [], "counts": {}}
    me = await api(rt, "GET", "/api/me", again["accessToken"])
    assert me["message"] == ""


async def test_no_byte_of_a_deleted_users_messages_is_left_in_the_state_directory(rt, tmp_path):
    zoe, uid, bob, b, dm, bot = await _zoe_talks(rt)
    await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": "zoe-password-1"})
    await rt.close()
    leaks = [p for p in (tmp_path / "state").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []


async def test_an_admin_deletes_any_user_with_the_admin_token(tmp_path):
    from cfemu.testing import Runtime
    from messenger_support import test_config

    async with Runtime.from_config(test_config(tmp_path, {"ADMIN_TOKEN": "s3cret-admin-token-0123456789"}),
                                   persist_to=tmp_path / "s") as rt:
        zoe = await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": "zoe-password-1"})
        z, _ = await room(rt, "general", zoe)
        await say(z, f"{SECRET} by zoe")
        alice = await login(rt, "alice")
        path = f"/api/admin/users/{zoe['user']['id']}"
        for token in (None, alice["accessToken"], "wrong", "s3cret-admin-token-012345678"):
            denied = await api(rt, "DELETE", path, token, expect=None)
            assert denied["ok"] is False and denied["error"]["code"] in ("not_authenticated", "forbidden"), token
        receipt = await api(rt, "DELETE", path, "s3cret-admin-token-0123456789")
        assert receipt["deleted"] == zoe["user"]["id"] and receipt["by"] == "admin"
        assert receipt["counts"]["messagesRedacted"] == 1
        assert (await api(rt, "GET", "/api/me", zoe["accessToken"], expect=401))["error"]["code"] == "session_revoked"
        gone = await api(rt, "DELETE", path, "s3cret-admin-token-0123456789", expect=404)
        assert gone["error"]["code"] == "not_found"
        bad = await api(rt, "DELETE", "/api/admin/users/" + "x" * 300, "s3cret-admin-token-0123456789", expect=404)
        assert bad["error"]["code"] == "not_found"


async def test_without_an_admin_token_configured_the_admin_api_is_off(rt):
    alice = await login(rt, "alice")
    off = await api(rt, "DELETE", "/api/admin/users/ubob", alice["accessToken"], expect=403)
    assert off["error"] == {"code": "forbidden", "message": "the admin API is disabled (no ADMIN_TOKEN secret)"}
    assert (await login(rt, "bob"))["user"]["id"] == "ubob"


async def test_a_dm_with_a_deleted_account_refuses_new_messages_and_delivers_nothing(rt):
    zoe = await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": "zoe-password-1"})
    uid = zoe["user"]["id"]
    bob = await login(rt, "bob")
    dm = f"dm_ubob__{uid}" if "ubob" < uid else f"dm_{uid}__ubob"
    b, _ = await room(rt, dm, bob)
    await say(b, "hello zoe")
    await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": "zoe-password-1"})
    await b.send('{"type":"send","cid":"late-1","kind":"text","text":"are you there?"}')
    err, _ = await frames_until(b, "error")
    assert err["code"] == "forbidden" and err["cid"] == "late-1"
    b2, welcome = await room(rt, dm, bob)
    assert welcome["gone"] is True
    # Nothing reaches a deleted account's inbox, even through the queue.
    await rt.env.DELIVERY.send(json.dumps({"to": uid, "room": dm, "seq": 1, "from": "ubob", "ts": 0}))
    await rt.advance(2)
    assert list(rt.storage("INBOX", uid).list()) == ["deleted"]


async def test_a_message_whose_archive_write_lands_after_the_deletion_does_not_survive_in_d1(tmp_path, modules):
    """The D1 copy of a message is written after the ack (waitUntil).  When the account is deleted
    before that write lands, the row used to be inserted after the deletion had swept D1, and stay."""
    import asyncio

    from cfemu.testing import Runtime
    from messenger_support import test_config

    archive = modules["archive"]
    original, gate, started = archive.record, asyncio.Event(), asyncio.Event()

    async def slow_record(env, room_name, msg):
        if msg.get("name") == "Zoe":
            started.set()
            await gate.wait()                                 # D1 is slow today
        return await original(env, room_name, msg)

    archive.record = slow_record
    try:
        async with Runtime.from_config(test_config(tmp_path, {"ADMIN_TOKEN": "s3cret-admin-token-0123456789"}),
                                       persist_to=tmp_path / "s") as rt:
            zoe = await api(rt, "POST", "/api/auth/register",
                            body={"username": "zoe", "password": "zoe-password-1", "displayName": "Zoe"})
            z, _ = await room(rt, "general", zoe)
            await say(z, f"{SECRET} late row")
            await asyncio.wait_for(started.wait(), 5)
            await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": "zoe-password-1"})
            gate.set()
            await rt.settle()
            rows = (await rt.env.DB.prepare("SELECT sender FROM messages").all()).results
            assert [r["sender"] for r in rows if r["sender"] == zoe["user"]["id"]] == []
    finally:
        archive.record = original


async def test_deleting_ones_own_account_needs_the_current_password_and_counts_as_a_sign_in(rt):
    """A stolen 20-minute access token alone must not erase an account: the password is checked with
    the sign-in throttle (a wrong one is a counted failure, and the limit stops guessing)."""
    zoe = await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": "zoe-password-1"})
    token = zoe["accessToken"]
    missing = await api(rt, "DELETE", "/api/me", token, expect=400)
    assert missing["error"]["code"] == "invalid_field" and "'password' is required" in missing["error"]["message"]
    wrong = await api(rt, "DELETE", "/api/me", token, body={"password": "not-her-password"}, expect=401)
    assert wrong["error"] == {"code": "bad_credentials", "message": "wrong username or password"}
    assert (await api(rt, "GET", "/api/me", token))["username"] == "zoe"      # still there
    for _ in range(9):                                                         # 10 failures in 15 minutes
        await api(rt, "DELETE", "/api/me", token, body={"password": "guess"}, expect=401)
    limited = await api(rt, "DELETE", "/api/me", token, body={"password": "zoe-password-1"}, expect=429)
    assert limited["error"]["code"] == "rate_limited"
    # The same counter as sign-in: a password login from this address is throttled too.
    await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": "zoe-password-1"}, expect=429)
    await rt.advance(15 * 60 + 1)
    fresh = await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": "zoe-password-1"})
    receipt = await api(rt, "DELETE", "/api/me", fresh["accessToken"], body={"password": "zoe-password-1"})
    assert receipt["deleted"] == zoe["user"]["id"] and receipt["by"] == "self"
