"""Encryption at rest: message bodies are AES-256-GCM envelopes in every store (room logs, D1, R2),
members still read them, tampered or moved ciphertexts are refused per message, keys rotate."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

from encryption_support import data_keys, opened_lines, opened_rows
from hypothesis import given, settings
from hypothesis import strategies as st
from messenger_client import api, frames_until, login, room, say
from messenger_support import test_config

SECRET = "zanzibarquux"
ADMIN = "admin-token-for-encryption-tests-0123"


def _runtime(tmp_path: Path, state: str = "s", **extra):
    from cfemu.testing import Runtime

    return Runtime.from_config(test_config(tmp_path, {"ADMIN_TOKEN": ADMIN, **extra}), persist_to=tmp_path / state)


def _grep(state: Path, needle: str) -> list[str]:
    return [str(p) for p in state.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def _mk() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def _history(rt, name: str, who: str = "bob") -> list[dict]:
    return (await api(rt, "GET", f"/api/rooms/{name}/history", (await login(rt, who))["accessToken"]))["messages"]


# -- the state directory holds no plaintext message ------------------------------------------------

async def test_a_conversation_leaves_no_plaintext_in_the_state_directory_and_members_read_it(tmp_path):
    async with _runtime(tmp_path) as rt:
        alice, bob = await login(rt, "alice"), await login(rt, "bob")
        a, _ = await room(rt, "general", alice)
        b, _ = await room(rt, "general", bob)
        await say(a, f"{SECRET} in general")
        live, _ = await frames_until(b, "msg")
        assert live["message"]["text"] == f"{SECRET} in general"
        d, _ = await room(rt, "dm_ualice__ubob", alice)
        await say(d, f"{SECRET} for bob, offline in the dm")     # the queue carries a pointer, not the text
        p, _ = await room(rt, "dm_bsage__ualice", alice)
        await say(p, f"{SECRET} for sage")
        await frames_until(p, "msg")
        await rt.advance(2)
        await rt.advance(86_400)                                  # the daily cron writes the R2 day files
        # Members read plaintext everywhere they are served it.
        assert [m["text"] for m in await _history(rt, "general")] == [f"{SECRET} in general"]
        bob = await login(rt, "bob")
        b2, _ = await room(rt, "dm_ualice__ubob", bob, since=0)
        sync, _ = await frames_until(b2, "sync")
        assert [m["text"] for m in sync["messages"]] == [f"{SECRET} for bob, offline in the dm"]
        hits = await api(rt, "GET", f"/api/search?q={SECRET}", bob["accessToken"])
        assert sorted(h["text"] for h in hits["results"]) == [f"{SECRET} for bob, offline in the dm",
                                                              f"{SECRET} in general"]
        listed = await rt.env.ARCHIVE.list(prefix="archive/")
        texts = [await (await rt.env.ARCHIVE.get(o.key)).text() for o in listed.objects]
        assert len(texts) == 3
        opened = [m.get("text", "") for t in texts for m in await opened_lines(rt, t)]
        assert sum(SECRET in t for t in opened) >= 3           # (the persona may quote it back)
        rows = (await rt.env.DB.prepare("SELECT * FROM messages").all()).results
        assert all(json.loads(r["body"])["scheme"] == "aesgcm" for r in rows)
    assert _grep(tmp_path / "s", SECRET) == []
    assert _grep(tmp_path / "s", "for bob, offline") == []


# -- tampered and moved ciphertexts -----------------------------------------------------------------

def _edit_message(path: Path, key: str, change) -> None:
    """Rewrite one stored message of a closed object's SQLite file (as an attacker with the disk would)."""
    from cfemu.values import deserialize, serialize

    db = sqlite3.connect(path)
    (raw,) = db.execute("SELECT value FROM _cf_KV WHERE key = ?", (key,)).fetchone()
    msg = json.loads(deserialize(raw))
    change(msg)
    db.execute("UPDATE _cf_KV SET value = ? WHERE key = ?", (serialize(json.dumps(msg)), key))
    db.commit()
    db.close()


async def test_a_tampered_or_moved_ciphertext_shows_as_unreadable_and_the_room_carries_on(tmp_path):
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        for text in ("first words", "second word", "third words"):
            await say(a, text)
        await rt.settle()
        path = rt.storage("CHAT", "general").path
    stored = {}

    def flip(msg):
        ct = bytearray(base64.b64decode(msg["body"]["ct"]))
        ct[0] ^= 1
        msg["body"]["ct"] = base64.b64encode(bytes(ct)).decode()

    def take(msg):
        stored["body"] = msg["body"]

    def put(msg):
        msg["body"] = stored["body"]

    _edit_message(path, "m:000000000001", flip)
    _edit_message(path, "m:000000000003", take)
    _edit_message(path, "m:000000000002", put)                 # seq 3's ciphertext copied onto seq 2
    async with _runtime(tmp_path) as rt:
        page = await _history(rt, "general")
        assert [m.get("text") for m in page] == [None, None, "third words"]
        for m in page[:2]:
            assert m["unreadable"] is True and m["error"] == "this message cannot be decrypted"
            assert m["kind"] == "text" and m["from"] == "ualice"
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice, since=0)
        sync, _ = await frames_until(a, "sync")
        assert [m.get("unreadable", False) for m in sync["messages"]] == [True, True, False]
        await say(a, "still talking")                          # the room is fine
        assert (await _history(rt, "general"))[-1]["text"] == "still talking"


async def test_a_ciphertext_from_another_room_does_not_open(tmp_path):
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        for name in ("general", "music"):
            ws, _ = await room(rt, name, alice)
            await say(ws, f"only in {name}")
        await rt.settle()
        general, music = rt.storage("CHAT", "general").path, rt.storage("CHAT", "music").path
    stored = {}
    _edit_message(music, "m:000000000001", lambda m: stored.update(body=m["body"]))
    _edit_message(general, "m:000000000001", lambda m: m.update(body=stored["body"]))
    async with _runtime(tmp_path) as rt:
        assert (await _history(rt, "general"))[0]["unreadable"] is True
        assert (await _history(rt, "music"))[0]["text"] == "only in music"


# -- rotation ---------------------------------------------------------------------------------------

async def _kids(rt, name: str) -> list[str]:
    store = rt.storage("CHAT", name)
    return [json.loads(v)["body"]["kid"] for k, v in sorted(store.list().items()) if k.startswith("m:")]


async def test_the_admin_rotates_the_data_key_old_messages_stay_readable_then_get_reencrypted(tmp_path):
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "under the first key")
        denied = await api(rt, "POST", "/api/admin/keys/rotate", alice["accessToken"], expect=403)
        assert denied["error"] == {"code": "forbidden", "message": "not the admin token"}
        got = await api(rt, "POST", "/api/admin/keys/rotate?reencrypt=0", ADMIN)
        first = (await _kids(rt, "general"))[0]
        assert got["current"] != first
        await say(a, "under the second key")
        await rt.settle()
        kids = await _kids(rt, "general")
        assert kids == [first, got["current"]]
        assert [m["text"] for m in await _history(rt, "general")] == ["under the first key", "under the second key"]
        assert len(await data_keys(rt)) == 2                    # the old key is kept to read old messages

        again = await api(rt, "POST", "/api/admin/keys/rotate", ADMIN)
        assert again["reencrypted"]["chat"]["resealed"] == 2
        assert again["reencrypted"]["d1"]["resealed"] == 2
        assert await _kids(rt, "general") == [again["current"]] * 2
        rows = (await rt.env.DB.prepare("SELECT * FROM messages ORDER BY seq").all()).results
        assert {json.loads(r["body"])["kid"] for r in rows} == {again["current"]}
        assert [r["text"] for r in await opened_rows(rt, rows)] == ["under the first key", "under the second key"]
        assert [m["text"] for m in await _history(rt, "general")] == ["under the first key", "under the second key"]
        hits = await api(rt, "GET", "/api/search?q=first", alice["accessToken"])
        assert [h["text"] for h in hits["results"]] == ["under the first key"]


async def test_the_daily_cron_starts_a_new_data_key_every_message_key_days(tmp_path):
    async with _runtime(tmp_path, MESSAGE_KEY_DAYS="2") as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "day zero")
        await rt.advance(86_400)
        assert len(await data_keys(rt)) == 1
        await rt.advance(2 * 86_400)
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await rt.advance(61)                                      # rooms re-read the ring within a minute
        await say(a, "day three")
        assert len(await data_keys(rt)) == 2
        kids = await _kids(rt, "general")
        assert kids[0] != kids[1]
        assert [m["text"] for m in await _history(rt, "general")] == ["day zero", "day three"]


async def test_master_key_rotation_rewraps_data_keys_with_the_previous_key_given_meanwhile(tmp_path):
    old, new = _mk(), _mk()
    async with _runtime(tmp_path, MESSAGE_MASTER_KEY=old) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "wrapped by the old master")
        await rt.settle()
    # The new master alone cannot unwrap: the message is unreadable, nothing crashes.
    async with _runtime(tmp_path, MESSAGE_MASTER_KEY=new) as rt:
        page = await _history(rt, "general")
        assert page[0]["unreadable"] is True
    # During the transition both are given; the rotation re-wraps every data key under the new one.
    async with _runtime(tmp_path, MESSAGE_MASTER_KEY=new, MESSAGE_MASTER_KEY_PREVIOUS=old) as rt:
        assert (await _history(rt, "general"))[0]["text"] == "wrapped by the old master"
        got = await api(rt, "POST", "/api/admin/keys/rotate", ADMIN)
        assert got["rewrapped"] == 1 and got["unusableKeys"] == []
    async with _runtime(tmp_path, MESSAGE_MASTER_KEY=new) as rt:
        assert [m["text"] for m in await _history(rt, "general")] == ["wrapped by the old master"]
        rows = (await rt.env.DB.prepare("SELECT kid, mkid FROM message_keys").all()).results
        assert len({r["mkid"] for r in rows}) <= 2
    assert _grep(tmp_path / "s", "wrapped by the old master") == []


async def test_a_bad_master_key_secret_is_reported_clearly(tmp_path):
    async with _runtime(tmp_path, MESSAGE_MASTER_KEY="not base64 at all!") as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await a.send(json.dumps({"type": "send", "cid": "c1", "kind": "text", "text": "hello"}))
        err, _ = await frames_until(a, "error")
        assert err["code"] == "internal"
        # The daily cron's other work (archives, retention, audit) is not stopped by it.
        assert await rt.scheduled("15 0 * * *")


# -- legacy plain bodies ----------------------------------------------------------------------------

async def test_legacy_plain_bodies_stay_readable_and_the_migration_reencrypts_them(tmp_path):
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "legacyvoice one")
        await say(a, "legacyvoice two")
        await rt.settle()
        path = rt.storage("CHAT", "general").path
        # As a state directory from before encryption holds them: plain bodies in D1 and R2 too.
        rows = (await rt.env.DB.prepare("SELECT * FROM messages ORDER BY seq").all()).results
        plain = await opened_rows(rt, rows)
        for r in plain:
            await rt.env.DB.prepare("UPDATE messages SET body = ? WHERE id = ?").bind(
                json.dumps({"scheme": "plain", "v": {"text": r["text"]}}), r["id"]).run()
        lines = "".join(json.dumps({"id": r["id"], "room": r["room"], "seq": r["seq"], "from": r["sender"],
                                    "name": r["name"], "kind": r["kind"], "ts": r["ts"], "text": r["text"]}) + "\n"
                        for r in plain)
        day = plain[0]["day"]
        await rt.env.ARCHIVE.put(f"archive/general/{day}.ndjson", lines)
    for key, text in (("m:000000000001", "legacyvoice one"), ("m:000000000002", "legacyvoice two")):
        _edit_message(path, key, lambda m, text=text: m.update(body={"scheme": "plain", "v": {"text": text}}))
    async with _runtime(tmp_path) as rt:
        assert [m["text"] for m in await _history(rt, "general")] == ["legacyvoice one", "legacyvoice two"]
        bob = await login(rt, "bob")
        hits = await api(rt, "GET", "/api/search?q=legacyvoice", bob["accessToken"])
        assert len(hits["results"]) == 2
        await rt.advance(86_400)                                  # the daily cron migrates them
        assert {k for k in await _kids(rt, "general")} != {None}
        rows = (await rt.env.DB.prepare("SELECT * FROM messages ORDER BY seq").all()).results
        assert all(json.loads(r["body"])["scheme"] == "aesgcm" for r in rows)
        text = await (await rt.env.ARCHIVE.get(f"archive/general/{day}.ndjson")).text()
        assert "legacyvoice" not in text
        assert [m["text"] for m in await opened_lines(rt, text)] == ["legacyvoice one", "legacyvoice two"]
        assert [m["text"] for m in await _history(rt, "general")] == ["legacyvoice one", "legacyvoice two"]
    # SQLite may keep freed pages of the old rows until they are reused; secure_delete zeroes them.
    assert _grep(tmp_path / "s", "legacyvoice") == []


# -- the envelope, unit level -----------------------------------------------------------------------

def _ring(modules, kid="dk-test"):
    ring = modules["keys"].Keyring()
    ring.add(kid, os.urandom(32))
    ring.current = kid
    return ring


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), room=st.text(min_size=1, max_size=40), seq=st.integers(1, 2**40))
def test_seal_then_open_round_trips_any_text(modules, text, room, seq):
    bodies = modules["bodies"]
    ring = _ring(modules)
    sealed = bodies.seal_body({"kind": "text", "text": text, "other": "dropped"}, ring, room, seq, "mid")
    assert sealed["scheme"] == "aesgcm" and sealed["kid"] == "dk-test"
    assert set(sealed) == {"scheme", "kid", "n", "ct"}
    assert len(text) < 8 or text.encode("utf-8", "surrogatepass") not in base64.b64decode(sealed["ct"])
    assert bodies.open_body(json.loads(json.dumps(sealed)), ring, room, seq, "mid") == {"text": text}


@settings(max_examples=50, deadline=None)
@given(text=st.text(min_size=1, max_size=50),
       which=st.sampled_from(["room", "seq", "mid", "ct", "kid", "sender", "kind", "version"]))
def test_any_change_of_context_or_ciphertext_is_refused(modules, text, which):
    import pytest

    bodies = modules["bodies"]
    ring = _ring(modules)
    sealed = bodies.seal_body({"text": text}, ring, "general", 7, "abc", "ualice", "text")
    assert sealed["v"] == 2
    assert bodies.open_body(dict(sealed), ring, "general", 7, "abc", "ualice", "text") == {"text": text}
    room, seq, mid, sender, kind = "general", 7, "abc", "ualice", "text"
    if which == "sender":
        sender = "ubob"
    elif which == "kind":
        kind = "wink"
    elif which == "version":
        del sealed["v"]                                      # relabelled as a v1 body: still refused
    elif which == "room":
        room = "music"
    elif which == "seq":
        seq = 8
    elif which == "mid":
        mid = "abd"
    elif which == "ct":
        ct = bytearray(base64.b64decode(sealed["ct"]))
        ct[-1] ^= 0x80
        sealed["ct"] = base64.b64encode(bytes(ct)).decode()
    else:
        sealed["kid"] = "dk-other"
    with pytest.raises(bodies.BodyError) as info:
        bodies.open_body(sealed, ring, room, seq, mid, sender, kind)
    assert "cannot be decrypted" in str(info.value)


def test_plain_bodies_open_and_unknown_schemes_are_refused(modules):
    import pytest

    bodies = modules["bodies"]
    assert bodies.open_body({"scheme": "plain", "v": {"text": "hi"}}, None, "general", 1, "x") == {"text": "hi"}
    with pytest.raises(bodies.BodyError, match="unknown body scheme 'rot13'"):
        bodies.open_body({"scheme": "rot13"}, None, "general", 1, "x")
    assert bodies.needs_reseal({"scheme": "plain", "v": {}}, "k2", False)
    assert not bodies.needs_reseal({"scheme": "aesgcm", "kid": "k1"}, "k2", False)
    assert bodies.needs_reseal({"scheme": "aesgcm", "kid": "k1"}, "k2", True)
    assert not bodies.needs_reseal({"scheme": "aesgcm", "kid": "k2"}, "k2", True)


def test_master_key_secrets_are_checked(modules):
    import pytest

    keys = modules["keys"]

    class Env:
        MESSAGE_MASTER_KEY = base64.b64encode(b"x" * 16).decode()

    with pytest.raises(keys.KeyError_, match=r"MESSAGE_MASTER_KEY must be 32 bytes \(base64\), got 16"):
        keys.master_keys(Env())
    Env.MESSAGE_MASTER_KEY = "%%%"
    with pytest.raises(keys.KeyError_, match="MESSAGE_MASTER_KEY is not valid base64"):
        keys.master_keys(Env())
    Env.MESSAGE_MASTER_KEY = _mk()
    current, all_keys = keys.master_keys(Env())
    assert current in all_keys and len(all_keys) == 2          # the development key still unwraps old keys


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(_json, st.fixed_dictionaries({"scheme": st.sampled_from(["plain", "aesgcm"])},
                                                   optional={"v": _json, "kid": _json, "n": _json, "ct": _json})))
def test_any_stored_body_opens_to_a_dict_or_is_refused_with_body_error(modules, body):
    bodies = modules["bodies"]
    try:
        opened = bodies.open_body(body, _ring(modules), "general", 1, "x")
    except bodies.BodyError:
        return
    assert isinstance(opened, dict)


async def test_r2_reencryption_never_overwrites_a_day_file_rewritten_meanwhile(tmp_path):
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "kept words")
        await rt.advance(86_400)
        key = (await rt.env.ARCHIVE.list(prefix="archive/")).objects[0].key
        bucket = rt.env.ARCHIVE
        original_get = bucket.get

        async def racing_get(k, *args, **kwargs):
            got = await original_get(k, *args, **kwargs)
            if k == key:  # an account deletion rewrites the file between the read and the write
                await bucket.put(key, "rewritten meanwhile\n")
            return got

        bucket.get = racing_get
        try:
            got = await api(rt, "POST", "/api/admin/keys/rotate", ADMIN)
        finally:
            del bucket.get
        assert got["reencrypted"]["r2"]["files"] == 0
        assert await (await rt.env.ARCHIVE.get(key)).text() == "rewritten meanwhile\n"


# -- the public development key never makes a sealing key --------------------------------------------

async def test_a_data_key_slipped_in_under_the_public_dev_key_never_seals_after_rewrap(tmp_path):
    """Someone who can write D1 but has no master key adds a data key wrapped by the (public) development
    key, dated in the future.  The cron's master-key rewrap must not turn it into the key new messages
    are sealed with (it would read every later message)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from encryption_support import DEV_MASTER
    import hashlib

    real = _mk()
    async with _runtime(tmp_path, MESSAGE_MASTER_KEY=real) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "before")
        evil_key, kid = os.urandom(32), "dk-9999999999999-evil0001"
        nonce = os.urandom(12)
        wrapped = base64.b64encode(nonce + AESGCM(DEV_MASTER).encrypt(nonce, evil_key, b"cf-messenger data key:" + kid.encode())).decode()
        dev_id = "mk-" + hashlib.sha256(b"cf-messenger master key id:" + DEV_MASTER).hexdigest()[:12]
        await rt.env.DB.prepare("INSERT INTO message_keys (kid, mkid, wrapped, created) VALUES (?,?,?,?)").bind(
            kid, dev_id, wrapped, 9_999_999_999_999).run()
        assert await rt.scheduled("15 0 * * *")              # rekey.maintain: rewrap under the real master
        await rt.advance(61)                                  # rooms re-read the ring
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "after")
        await rt.settle()
        kids = await _kids(rt, "general")
        assert kid not in kids
        assert [m["text"] for m in await _history(rt, "general")] == ["before", "after"]
        rows = (await rt.env.DB.prepare("SELECT body FROM messages").all()).results
        assert all(json.loads(r["body"])["kid"] != kid for r in rows)


# -- the associated data binds the author -------------------------------------------------------------

async def test_a_message_moved_to_another_author_does_not_open(tmp_path):
    """Someone with the disk rewrites who sent a stored message (room log, D1 row): the text must not
    show under the other name; the message reads as unreadable instead."""
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        await say(a, "alice really said this")
        await say(a, "and this too")
        await rt.settle()
        path = rt.storage("CHAT", "general").path
        await rt.env.DB.prepare("UPDATE messages SET sender = 'ubob' WHERE seq = 1").run()
        bob = await login(rt, "bob")
        hits = (await api(rt, "GET", "/api/search?q=really", bob["accessToken"]))["results"]
        assert [(h["from"], h.get("text"), h.get("unreadable")) for h in hits] == [("ubob", None, True)]
    _edit_message(path, "m:000000000002", lambda m: m.update({"from": "ubob"}))
    _edit_message(path, "m:000000000001", lambda m: m.update({"kind": "wink"}))
    async with _runtime(tmp_path) as rt:
        page = await _history(rt, "general")
        assert [(m["from"], m.get("text"), m.get("unreadable")) for m in page] == [
            ("ualice", None, True), ("ubob", None, True)]


async def test_the_rotation_reencrypt_flag_is_documented_and_checked(tmp_path):
    """`reencrypt` is a documented query parameter taking 0 or 1; anything else is a 400 naming it
    (`reencrypt=false` used to mean "re-encrypt everything", the heavy opposite)."""
    async with _runtime(tmp_path) as rt:
        doc = await (await rt.fetch("/api/openapi.json")).json()
        params = doc["paths"]["/api/admin/keys/rotate"]["post"].get("parameters", [])
        assert [(p["name"], p["in"], p["schema"].get("enum")) for p in params] == [("reencrypt", "query", [0, 1])]
        got = await api(rt, "POST", "/api/admin/keys/rotate?reencrypt=false", ADMIN, expect=400)
        assert got["error"] == {"code": "invalid_field", "message": "reencrypt must be 0 or 1"}
        tables = (await rt.env.DB.prepare("SELECT name FROM sqlite_master WHERE name = 'message_keys'").all()).results
        assert list(tables) == []                              # refused before anything was done
        assert (await api(rt, "POST", "/api/admin/keys/rotate?reencrypt=0", ADMIN))["current"]
        assert (await api(rt, "POST", "/api/admin/keys/rotate?reencrypt=1", ADMIN))["current"]


async def test_a_mangled_stored_body_costs_one_message_not_the_whole_reencryption(tmp_path):
    """A D1 body that is not JSON (or an R2 day-file line that is not) is counted unreadable; the other
    bodies are still re-encrypted, and the admin call answers instead of a 500."""
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        for text in ("one", "two", "three"):
            await say(a, text)
        await a.close()
        await rt.advance(86_400)                                 # day files in R2
        await rt.env.DB.prepare("UPDATE messages SET body = 'not json {' WHERE seq = 2").run()
        key = (await rt.env.ARCHIVE.list(prefix="archive/")).objects[0].key
        text = await (await rt.env.ARCHIVE.get(key)).text()
        lines = text.splitlines()
        await rt.env.ARCHIVE.put(key, "\n".join([lines[0], "{broken", *lines[1:]]) + "\n")
        got = await api(rt, "POST", "/api/admin/keys/rotate", ADMIN)
        assert got["reencrypted"]["d1"] == {"resealed": 2, "unreadable": 1}
        assert got["reencrypted"]["r2"]["lines"] == 3 and got["reencrypted"]["r2"]["unreadable"] == 1
        rows = (await rt.env.DB.prepare("SELECT seq, body FROM messages ORDER BY seq").all()).results
        assert [json.loads(r["body"])["kid"] for r in rows if r["seq"] != 2] == [got["current"]] * 2


async def test_a_crash_in_the_middle_of_a_rotation_leaves_every_message_readable(tmp_path, modules):
    """kill -9 after the new key is stored, and a re-encryption that dies after the rooms and D1 but
    before R2: every store still opens with the ring in D1, and the next rotation finishes the job."""
    archive = modules["archive"]
    async with _runtime(tmp_path) as rt:
        alice = await login(rt, "alice")
        a, _ = await room(rt, "general", alice)
        for text in ("one", "two"):
            await say(a, text)
        await a.close()
        await rt.advance(86_400)                                 # day file in R2
        await api(rt, "POST", "/api/admin/keys/rotate?reencrypt=0", ADMIN)
        await rt.crash()
        await rt.restart()
        assert [m["text"] for m in await _history(rt, "general")] == ["one", "two"]
        original = archive.reseal_r2

        async def dies(env, everything=False):
            raise RuntimeError("the machine died here")

        archive.reseal_r2 = dies
        try:
            await api(rt, "POST", "/api/admin/keys/rotate", ADMIN, expect=500)
        finally:
            archive.reseal_r2 = original
        await rt.crash()
        await rt.restart()
        assert [m["text"] for m in await _history(rt, "general")] == ["one", "two"]
        key = (await rt.env.ARCHIVE.list(prefix="archive/")).objects[0].key
        assert [m["text"] for m in await opened_lines(rt, await (await rt.env.ARCHIVE.get(key)).text())] == ["one", "two"]
        done = await api(rt, "POST", "/api/admin/keys/rotate", ADMIN)
        assert done["reencrypted"]["r2"]["lines"] == 2 and done["reencrypted"]["chat"]["resealed"] == 2
        assert set(await _kids(rt, "general")) == {done["current"]}
        assert [m["text"] for m in await _history(rt, "general")] == ["one", "two"]
