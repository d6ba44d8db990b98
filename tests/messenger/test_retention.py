"""Retention: messages older than their room's limit (default 30 days) go from the room's log, D1 and R2."""

from __future__ import annotations

import json

from encryption_support import opened_rows
from messenger_client import api, frames_until, login, room, say


async def _history(rt, name):
    return await api(rt, "GET", f"/api/rooms/{name}/history", (await login(rt, "carol"))["accessToken"])


async def test_messages_past_the_retention_are_purged_everywhere_and_newer_ones_stay(rt):
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    await say(a, "ancient words")
    await rt.advance(2 * 86_400)                       # the daily cron archives them to R2
    alice = await login(rt, "alice")
    a, _ = await room(rt, "general", alice)
    await say(a, "recent words")
    await a.close()
    await rt.advance(2 * 86_400)
    day_files = [o.key for o in (await rt.env.ARCHIVE.list(prefix="archive/")).objects]
    assert len(day_files) == 2
    page = await _history(rt, "general")
    assert [m["text"] for m in page["messages"]] == ["ancient words", "recent words"]

    await rt.advance(27 * 86_400)                      # 31 days after the first, 29 after the second
    page = await _history(rt, "general")
    assert [m["text"] for m in page["messages"]] == ["recent words"]
    assert page["lastSeq"] == 2                        # sequence numbers are never reused
    rows = (await rt.env.DB.prepare("SELECT * FROM messages").all()).results
    assert len(rows) == 1 and (await opened_rows(rt, rows))[0]["text"] == "recent words"
    files = [o.key for o in (await rt.env.ARCHIVE.list(prefix="archive/")).objects]
    assert files == [day_files[1]]
    # A client resuming from before the purge gets what is left, nothing twice.
    carol = await login(rt, "carol")
    c, _ = await room(rt, "general", carol, since=0)
    sync, _ = await frames_until(c, "sync")
    assert [m["seq"] for m in sync["messages"]] == [2]
    store = rt.storage("CHAT", "general")
    assert not [k for k in store.list() if k.startswith("cid:")][1:]  # only the recent message's dedup entry

    await rt.advance(3 * 86_400)
    assert (await _history(rt, "general"))["messages"] == []
    assert (await rt.env.DB.prepare("SELECT count(*) AS n FROM messages").all()).results[0]["n"] == 0
    assert [o.key for o in (await rt.env.ARCHIVE.list(prefix="archive/")).objects] == []


async def test_room_retention_overrides_and_bad_values_fall_back(tmp_path):
    from cfemu.testing import Runtime
    from messenger_support import test_config

    extra = {"RETENTION_DAYS": "10", "ROOM_RETENTION_DAYS": json.dumps({"music": 2, "general": "junk"})}
    async with Runtime.from_config(test_config(tmp_path, extra), persist_to=tmp_path / "s") as rt:
        alice = await login(rt, "alice")
        for name in ("general", "music"):
            ws, _ = await room(rt, name, alice)
            await say(ws, f"in {name}")
            await ws.close()
        await rt.advance(3 * 86_400)
        carol = (await login(rt, "carol"))["accessToken"]
        assert (await api(rt, "GET", "/api/rooms/music/history", carol))["messages"] == []
        assert len((await api(rt, "GET", "/api/rooms/general/history", carol))["messages"]) == 1
        await rt.advance(8 * 86_400)
        carol = (await login(rt, "carol"))["accessToken"]
        assert (await api(rt, "GET", "/api/rooms/general/history", carol))["messages"] == []


def test_retention_policy_parsing(modules):
    r = modules["retention"]

    class Env:
        RETENTION_DAYS = "0"
        ROOM_RETENTION_DAYS = '{"music": 7, "x": -1}'

    assert r.retention_ms(Env, "general") == 30 * r.DAY_MS
    assert r.retention_ms(Env, "music") == 7 * r.DAY_MS
    assert r.retention_ms(Env, "x") == 30 * r.DAY_MS
    Env.ROOM_RETENTION_DAYS = "[1, 2]"
    assert r.overrides(Env) == {}


async def test_inbox_pointers_to_purged_messages_are_dropped(rt):
    alice = await login(rt, "alice")
    a, _ = await room(rt, "dm_ualice__ubob", alice)
    await say(a, "while you were away")
    await a.close()
    await rt.advance(2)
    bob = await login(rt, "bob")
    assert (await api(rt, "GET", "/api/inbox", bob["accessToken"]))["counts"]["dm_ualice__ubob"]["unread"] == 1
    await rt.advance(31 * 86_400)
    bob = await login(rt, "bob")
    assert await api(rt, "GET", "/api/inbox", bob["accessToken"]) == {"pointers": [], "counts": {}}
    users = await api(rt, "GET", "/api/users", bob["accessToken"])
    assert [u["unread"] for u in users["offline"] if u["id"] == "ualice"] == [0]


async def test_many_room_overrides_still_purge_and_a_failing_cron_step_stops_no_other(tmp_path):
    """ROOM_RETENTION_DAYS naming more rooms than D1 binds parameters (100) made the purge's statement
    fail, and with it the rest of the daily cron (key maintenance, audit retention)."""
    from cfemu.testing import Runtime
    from messenger_support import test_config

    table = {f"club{i}": 90 for i in range(120)}
    config = test_config(tmp_path, {"ROOM_RETENTION_DAYS": json.dumps(table), "AUDIT_RETENTION_DAYS": "2"})
    async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "ancient words")
        await a.close()
        await rt.advance(32 * 86_400)
        rows = (await rt.env.DB.prepare("SELECT count(*) AS n FROM messages").all()).results
        assert rows[0]["n"] == 0
        audit_files = [o.key for o in (await rt.env.ARCHIVE.list(prefix="audit/")).objects]
        assert audit_files == []                        # the sign-in's record is past its 2 days


async def test_a_failing_purge_does_not_stop_the_audit_retention_after_it(tmp_path):
    from cfemu.testing import Runtime
    from messenger_support import test_config

    config = test_config(tmp_path, {"AUDIT_RETENTION_DAYS": "2"})
    async with Runtime.from_config(config, persist_to=tmp_path / "state") as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "ancient words")
        await a.close()
        await rt.advance(86_400)
        await rt.env.DB.prepare("CREATE TRIGGER no_delete BEFORE DELETE ON messages "
                                "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END").run()
        await rt.advance(28 * 86_400)
        await login(rt, "alice")                        # an audit record two days before the purge fails
        await rt.advance(86_400)
        assert [o.key for o in (await rt.env.ARCHIVE.list(prefix="audit/")).objects]
        await rt.advance(4 * 86_400)                    # from day 30 the message purge fails every day
        assert (await rt.env.DB.prepare("SELECT count(*) AS n FROM messages").all()).results[0]["n"] == 1
        assert [o.key for o in (await rt.env.ARCHIVE.list(prefix="audit/")).objects] == []
