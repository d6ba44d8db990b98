"""The Inbox Durable Object: one per user, pointers (room, seq) to DMs that arrived while offline.

It holds pointers, not copies: the client fetches the messages from the room (gap replay), so a
message that reaches it both ways is shown once.  Adding is idempotent (the queue delivers at least
once), and a read receipt in the room clears pointers up to that sequence.
"""

from __future__ import annotations

import json

from js import Date
from workers import DurableObject

import retention
from store import jlist, jput

__all__ = ["Inbox", "pointer_key"]


def pointer_key(room: str, seq: int) -> str:
    return f"p:{room}:{seq:012d}"


class Inbox(DurableObject):
    """RPC: add(pointer_json), pending(), counts(), clear(room, upto), dropRoom(room), wipe()."""

    async def add(self, pointer_json: str) -> str:
        if await self.ctx.storage.get("deleted"):
            return json.dumps({})  # the account was deleted: nothing is kept for it
        p = json.loads(pointer_json)
        key = pointer_key(p["room"], p["seq"])
        if await self.ctx.storage.get(key) is None:
            await jput(self.ctx.storage, key, {"room": p["room"], "seq": p["seq"], "from": p["from"],
                                               "name": p.get("name", ""), "ts": p["ts"]})
        return json.dumps(await self._counts())

    async def _live(self) -> list[dict]:
        """The pointers whose message is still within its room's retention (the others are dropped:
        the room has purged what they point at)."""
        now, live, gone = Date.now(), [], []
        for key, p in await jlist(self.ctx.storage, prefix="p:"):
            (gone if now - p["ts"] >= retention.retention_ms(self.env, p["room"]) else live).append((key, p))
        keys = [k for k, _ in gone]
        for i in range(0, len(keys), 128):
            await self.ctx.storage.delete(keys[i:i + 128])
        return [p for _, p in live]

    async def pending(self) -> str:
        return json.dumps(await self._live())

    async def _counts(self) -> dict:
        counts: dict = {}
        for p in await self._live():
            entry = counts.setdefault(p["room"], {"room": p["room"], "from": p["from"], "name": p.get("name", ""),
                                                  "unread": 0, "firstSeq": p["seq"]})
            entry["unread"] += 1
        return counts

    async def counts(self) -> str:
        return json.dumps(await self._counts())

    async def clear(self, room: str, upto: int) -> str:
        keys = [k for k, _ in await jlist(self.ctx.storage, prefix=f"p:{room}:", end=pointer_key(room, upto + 1))]
        for i in range(0, len(keys), 128):
            await self.ctx.storage.delete(keys[i:i + 128])
        return json.dumps({"cleared": len(keys)})

    async def dropRoom(self, room: str) -> str:
        """Forget every pointer into `room` (its other participant's account was deleted)."""
        keys = [k for k, _ in await jlist(self.ctx.storage, prefix=f"p:{room}:")]
        for i in range(0, len(keys), 128):
            await self.ctx.storage.delete(keys[i:i + 128])
        return json.dumps({"cleared": len(keys)})

    async def wipe(self) -> str:
        """Account deletion: every pointer goes; a bare marker stays so a late delivery adds none."""
        await self.ctx.storage.deleteAll()
        await self.ctx.storage.put("deleted", True)
        return json.dumps({"ok": True})
