"""What acts on a whole account: closing its sessions' sockets, and erasing it from every store.

Account deletion (own or by an admin) is described in messenger/README.md, "Account deletion".  The
account record goes last: if any step fails the call answers 500 and can simply be made again (every
step is idempotent), by the user after signing in again, or by an admin.
"""

from __future__ import annotations

import json

from js import Date

import archive
import bots
import events
import sessions
from directory import directory
from naming import PUBLIC_ROOMS, dm_participants, dm_room, may_join, valid_room
from presence import presence
from store import py

__all__ = ["close_sessions", "erase_account", "STORES", "KEPT"]

STORES = ["directory:account", "directory:sessions", "sessions", "kv:session-markers", "presence", "kv:presence",
          "rooms:messages(tombstones)", "rooms:receipts", "rooms:typing", "rooms:client-ids", "rooms:persona-dms",
          "inbox", "inbox:partners", "d1:messages", "d1:search-terms", "r2:archives", "limiter:chat",
          "limiter:sign-in", "ai-quota"]
KEPT = ["analytics: keyed hashes only, never ids, names or text",
        "audit trail: the account's security events under a keyed hash of its id (no id, name or address)",
        "direct-message room names: they carry the random user id, which nothing links to anyone now",
        "persona replies to the user's @mentions in public rooms (the persona's messages)"]


def _data(result):
    result = py(result)
    if not result.get("ok"):
        raise RuntimeError(f"directory: {result.get('code')}: {result.get('message')}")
    return result.get("data")


async def close_sessions(env, revoked: list[dict], reason_name: str) -> int:
    """Close every socket of the revoked sessions, in presence and in each room they joined."""
    by_room: dict[str, list[str]] = {}
    for entry in revoked:
        for room in set(entry.get("rooms", [])) | {"presence"}:
            by_room.setdefault(room, []).append(entry["sid"])
    closed = 0
    for room, sids in by_room.items():
        stub = presence(env) if room == "presence" else env.CHAT.getByName(room)
        try:
            closed += py(await stub.revokeSessions(json.dumps(sids), reason_name)).get("closed", 0)
        except Exception as error:
            print(f"messenger: closing sessions in {room} failed: {error!r}")
    return closed


async def erase_account(env, uid: str) -> dict | None:
    """Erase `uid` everywhere; the receipt, or None when there is no such account."""
    found = py(await directory(env).getUser(uid))
    if not found.get("ok"):
        return None
    me = found["data"]
    sids = _data(await directory(env).sessionsOf(uid))
    # First no session can act any more (nor send a message while its rooms are being redacted).
    erased = await sessions.revoke_sessions(env, sids, erase=True)
    closed = await close_sessions(env, erased, "account_deleted")
    joined = py(await presence(env).forget(uid)).get("rooms", [])
    users = _data(await directory(env).listUsers())
    rooms = set(PUBLIC_ROOMS) | set(joined) | set(await archive.rooms_of(env, uid))
    rooms |= {room for e in erased for room in e.get("rooms", [])}
    rooms |= {dm_room(uid, other) for other in [u["id"] for u in users] + [p["id"] for p in bots.PERSONAS]
              if other != uid}
    rooms = sorted(r for r in rooms if valid_room(r) and may_join(r, uid))
    counts = {"roomsRedacted": 0, "messagesRedacted": 0, "roomsWiped": 0, "inboxPointers": 0}
    wiped = []
    for room in rooms:
        pair = dm_participants(room)
        other = (pair[0] if pair[1] == uid else pair[1]) if pair else None
        persona_dm = other is not None and bots.persona(other) is not None
        result = py(await env.CHAT.getByName(room).eraseUser(room, uid, persona_dm))
        if result.get("wiped"):
            counts["roomsWiped"] += 1
            wiped.append(room)
        elif result.get("redacted"):
            counts["roomsRedacted"] += 1
            counts["messagesRedacted"] += result["redacted"]
        if other is not None and not persona_dm:
            # The other participant's inbox points at the user's DMs (and names them).
            counts["inboxPointers"] += py(await env.INBOX.getByName(other).dropRoom(room)).get("cleared", 0)
    cold = await archive.erase_user(env, uid, wiped)
    await env.INBOX.getByName(uid).wipe()
    await env.LIMITER.getByName(uid).forget()
    await env.LIMITER.getByName("login:" + me["username"]).forget()
    await env.AI_QUOTA.getByName("global").forget(events.keyed_hash(env, uid))
    result = _data(await directory(env).deleteUser(uid))
    late = [s for s in result["sessions"] if s not in sids]  # signed in while this ran
    if late:
        closed += await close_sessions(env, await sessions.revoke_sessions(env, late, erase=True), "account_deleted")
    counts.update(d1Rows=cold["rows"], archivesRewritten=len(cold["archives"]))
    return {"deleted": uid, "at": Date.now(), "closedSockets": closed, "counts": counts, "stores": list(STORES),
            "kept": list(KEPT), "notYet": []}
