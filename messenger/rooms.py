"""The ChatRoom Durable Object: one per room, the single writer of its message log.

Every message gets the next room sequence number and is committed (message, sequence, client-id
dedup entry and rate-limit counters in one atomic put) before the sender's ack.  A client that
reconnects sends the last sequence it saw and gets exactly the gap; history pages backwards.
All of it lives in storage, so an object that wakes with empty memory (eviction, reroute, crash,
redeploy) serves the same log.
"""

from __future__ import annotations

import json
import uuid

from js import Date

import archive
import bodies
import bots
import events
import keys
import receipts
import retention
from naming import dm_participants, is_public, may_join, valid_room
from presence import presence
from protocol import CHAT_FRAMES, ProtocolError, error_frame, parse_frame
from sockets import SocketHost, attachment, save, send
from store import jget, jget_many, jlist, jput, jput_many, py

__all__ = ["ChatRoom", "TYPING_MS", "REPLAY_LIMIT"]

TYPING_MS = 3_000
ARCHIVE_RETRY_MS = 60_000  # a D1 write that failed after a send is tried again this much later
REPLAY_LIMIT = 500
PAGE_DEFAULT = 50


def _mkey(seq: int) -> str:
    return f"m:{seq:012d}"


def _public(msg: dict, ring, room: str) -> dict:
    """A stored message as clients see it (the body opened).  A body that does not open (altered,
    moved, its key gone) costs that message only: it is shown as `unreadable`, without content."""
    out = {k: v for k, v in msg.items() if k != "body"}
    if "body" in msg:
        try:
            out.update(bodies.open_body(msg["body"], ring, room, msg["seq"], msg["id"], msg.get("from"), msg.get("kind")))
        except bodies.BodyError as error:
            print(f"chat {room}: {error}")
            out["unreadable"] = True
            out["error"] = bodies.UNREADABLE
    return out


class ChatRoom(SocketHost):
    """A room's sockets, log, receipts, typing and rate limits."""

    kind = "chat"

    def __init__(self, ctx, env) -> None:
        super().__init__(ctx, env)
        self.room: str | None = None
        self.seq: int | None = None  # cache of the stored counter; storage is the truth
        self._gone = False                                  # a DM whose other participant was deleted
        self._purge_due: int | None = None                  # when the oldest message passes the retention
        self._archive_due: int | None = None                # when to retry the D1 copies that failed (arc:<seq>)
        self._pending: dict[str, int] = {}                  # uid -> sockets between presence lookup and admission
        self._latest: dict[str, tuple] = {}                 # uid -> newest (version, hidden, name) presence told us

    async def _load(self, room: str | None = None) -> None:
        if self.room is None:
            self.room = room or await jget(self.ctx.storage, "room")
        if room and self.room != room:
            self.room = room
        if self.seq is None:
            meta = await jget(self.ctx.storage, "meta") or {"seq": 0}
            self.seq = meta["seq"]
            typing = await jget(self.ctx.storage, "typing") or {}
            self._typing_due = min((v["until"] for v in typing.values()), default=None)
            self._gone = bool(await jget(self.ctx.storage, "gone"))
            await self._next_purge()
            # Archive copies left to retry (an object evicted or restarted before its alarm ran).
            self._archive_due = Date.now() if await jlist(self.ctx.storage, prefix="arc:", limit=1) else None
            if self._purge_due is not None or self._archive_due is not None:
                await self._schedule()  # a log written before retention existed gets its alarm here
        if room and await jget(self.ctx.storage, "room") is None:
            await jput(self.ctx.storage, "room", room)

    # -- HTTP (upgrade) ---------------------------------------------------------------------------

    async def fetch(self, request):
        room = request.headers.get("x-messenger-room")
        if not room or not valid_room(room):
            return _json_error(400, "bad_request", "unknown room")
        await self._load(room)
        return await self._accept(request, {"room": room})

    async def _authenticated(self, ws, att: dict, claims: dict, frame: dict) -> None:
        await self._load(att.get("room"))
        if not may_join(self.room, claims["sub"]):
            send(ws, error_frame("forbidden", "only the two participants may join a direct-message room"))
            self._close(ws, att, "forbidden")
            return
        # Asked before admission (an RPC lets other events in; the socket must not get live frames yet).
        # A switch to or from appear-offline that reaches this room meanwhile (`setHidden`) has a newer
        # version than the answer, and wins.
        uid = claims["sub"]
        self._pending[uid] = self._pending.get(uid, 0) + 1
        try:
            hidden, version, name = await self._visibility(uid)
            latest = self._latest.get(uid)
            if latest is not None and latest[0] > version:
                version, hidden, name = latest[0], latest[1], latest[2] or name
            att["hidden"], att["hv"] = hidden, version
            if name:  # a display name chosen since sign-in (the token carries the one from then)
                claims = {**claims, "name": name}
            self._admit(ws, att, claims)
        finally:
            self._pending[uid] -= 1
            if not self._pending[uid]:
                del self._pending[uid]
        marks = await self._all_marks()
        welcome = {"type": "welcome", "room": self.room, "you": {"id": claims["sub"], "name": att["name"]},
                   "lastSeq": self.seq, "receipts": marks, "members": self._members(claims["sub"]),
                   "typing": await self._typing_now()}
        if self._gone:
            welcome["gone"] = True  # the other participant deleted their account
        send(ws, welcome)
        if not att["hidden"]:  # an appear-offline user reading a room is not announced to it
            self._broadcast({"type": "join", "user": {"id": claims["sub"], "name": att["name"]}}, skip=ws)
        if "since" in frame:
            await self._replay(ws, frame["since"])
        # Only after welcome and sync: an RPC lets other events in, and a message sent meanwhile would
        # reach this (already admitted) socket live and again inside the sync frame.
        await self._register(ws, att, self.room)

    async def _visibility(self, uid: str) -> tuple[bool, int, str | None]:
        """(appears offline?, version, chosen display name) from the presence object, which also notes
        this room for the user."""
        try:
            answer = py(await presence(self.env).joinRoom(uid, self.room))
            return bool(answer["hidden"]), int(answer["v"]), answer.get("name")
        except Exception as error:
            print(f"chat {self.room}: presence lookup failed: {error!r}")
            return False, -1, None

    async def setHidden(self, room: str, uid: str, hidden: bool, version: int, name: str | None = None) -> str:
        """RPC from presence: `uid` switched to (or from) appear-offline, or chose a new display name
        (`name`); others here see them leave (or join) now, and later messages carry the new name.
        {"present": whether they have a socket here, or one being admitted}."""
        await self._load(room)
        latest = self._latest.get(uid)
        if latest is None or latest[0] < version:
            self._latest[uid] = (version, hidden, name)
        mine = [(ws, att) for ws, att in self._sockets() if att.get("uid") == uid]
        was_visible = any(not att.get("hidden") for _, att in mine)
        for ws, att in mine:
            if att.get("hv", -1) < version:
                att["hidden"], att["hv"] = hidden, version
                if name:
                    att["name"] = name
                save(ws, att)
        visible = any(not att.get("hidden") for _, att in mine)
        if was_visible and not visible:
            self._broadcast({"type": "leave", "user": uid}, except_user=uid)
            await self._clear_typing(uid)
        elif visible and not was_visible:
            name = next((att.get("name", "") for _, att in mine if not att.get("hidden")), "")
            self._broadcast({"type": "join", "user": {"id": uid, "name": name}}, except_user=uid)
        return json.dumps({"present": bool(mine) or self._pending.get(uid, 0) > 0})

    def _members(self, viewer: str | None = None) -> list[dict]:
        seen = {}
        for _, att in self._sockets():
            if att.get("hidden") and att["uid"] != viewer:
                continue
            seen[att["uid"]] = att.get("name", "")
        pair = dm_participants(self.room or "")
        if pair:
            for uid in pair:
                seen.setdefault(uid, None)
        return [{"id": k, "name": v, "online": v is not None} for k, v in seen.items()]

    # -- frames -----------------------------------------------------------------------------------

    async def webSocketMessage(self, ws, message) -> None:
        att = attachment(ws)
        att["last"] = Date.now()
        save(ws, att)
        try:
            frame = parse_frame(message, CHAT_FRAMES)
            await self._load(att.get("room"))
            if frame["type"] == "ping":
                send(ws, {"type": "pong"})
            elif frame["type"] == "auth":
                await self._auth_frame(ws, att, frame)
            elif not att.get("authed"):
                raise ProtocolError("not_authenticated", "send an auth frame first")
            elif frame["type"] == "send":
                await self._send(ws, att, frame)
            elif frame["type"] == "typing":
                await self._typing(ws, att)
            elif frame["type"] == "receipt":
                await self._receipt(ws, att, frame)
            elif frame["type"] == "history":
                await self._history_frame(ws, frame)
            elif frame["type"] == "sync":
                await self._replay(ws, frame["since"])
        except ProtocolError as error:
            send(ws, error_frame(error.code, error.message, **error.extra))
        except Exception as error:  # a bug must cost one frame, never the object
            print(f"chat {self.room}: frame failed: {error!r}")
            send(ws, error_frame("internal", "the server could not process that frame"))

    async def _send(self, ws, att: dict, frame: dict) -> None:
        uid, cid = att["uid"], frame["cid"]
        if self._gone:
            raise ProtocolError("forbidden", "the other participant deleted their account", cid=cid)
        if await self._ack_duplicate(ws, uid, cid):
            return  # a resend after a reconnect: the original ack again, no second message, no second count
        bucket = "nudge" if frame["kind"] == "nudge" else "chat"
        verdict = py(await self.env.LIMITER.getByName(uid).take(bucket))
        if not verdict["ok"]:
            events.emit(self.env, "rate_limited", blobs=(bucket,), user=uid)
            raise ProtocolError("rate_limited", f"too many {bucket} frames; retry later", cid=cid,
                                retryAfterMs=verdict["retryAfterMs"])
        if await self._ack_duplicate(ws, uid, cid):
            return  # the same cid raced in from another socket meanwhile: this socket gets its ack too
        now = Date.now()
        content = {"kind": frame["kind"]}
        if frame["kind"] == "text":
            content["text"] = frame["text"]
        elif frame["kind"] == "wink":
            content["wink"] = frame["wink"]
        msg = await self._append(uid, att.get("name", ""), cid, content, now)
        send(ws, {"type": "ack", "cid": cid, "seq": msg["seq"], "id": msg["id"], "ts": msg["ts"]})
        public = await self._open([msg])
        public = public[0]
        self._broadcast({"type": "msg", "message": public}, skip=ws)
        await self._clear_typing(uid)
        events.emit(self.env, "message_sent", blobs=(frame["kind"], "dm" if not is_public(self.room) else "room"),
                    doubles=(len(content.get("text", "")),), user=uid)
        self._after(self._fan_out(public))

    async def _ack_duplicate(self, ws, uid: str, cid: str) -> bool:
        """Ack `cid` again (marked duplicate) when it is already stored; False when it is new."""
        known = await jget(self.ctx.storage, f"cid:{uid}:{cid}")
        if known is None:
            return False
        msg = await jget(self.ctx.storage, _mkey(known))
        send(ws, {"type": "ack", "cid": cid, "seq": known, "id": msg["id"] if msg else None,
                  "ts": msg["ts"] if msg else None, "duplicate": True})
        return True

    async def _append(self, uid: str, name: str, cid: str, content: dict, now: int, extra: dict | None = None) -> dict:
        """Assign the next sequence and commit the message atomically; returns the stored record."""
        # Reserve the number before awaiting: nothing else can take it even if another event runs
        # meanwhile; a failed write resets the object, which reloads the counter from storage.
        ring = await keys.keyring(self.env)  # before the number is taken: a failure here leaves no gap
        seq = self.seq = self.seq + 1
        mid = uuid.uuid4().hex
        msg = {"seq": seq, "id": mid, "cid": cid, "from": uid, "name": name, "kind": content["kind"],
               "ts": now, "body": bodies.seal_body(content, ring, self.room, seq, mid, uid, content["kind"])}
        batch = {"meta": {"seq": seq}, _mkey(seq): msg, f"cid:{uid}:{cid}": seq}
        batch.update(extra or {})
        await jput_many(self.ctx.storage, batch)
        if self._purge_due is None and self.room:
            self._purge_due = now + retention.retention_ms(self.env, self.room)
            await self._schedule()
        return msg

    def _after(self, coro) -> None:
        """Work that follows an ack (archive, offline delivery, personas): never delays the sender."""
        wait = getattr(self.ctx, "waitUntil", None)
        if wait is not None:
            wait(coro)
        else:  # pragma: no cover - every runtime we target has waitUntil
            import asyncio

            asyncio.ensure_future(coro)

    async def _archive(self, msg: dict) -> bool:
        """Copy one message (public form) to D1; False when that failed (the caller keeps it to retry)."""
        try:
            await archive.record(self.env, self.room, msg)
            # An account deletion that swept D1 while this write was on its way has already redacted
            # the message here (rooms first, D1 after): the late row goes too.
            stored = await jget(self.ctx.storage, _mkey(msg["seq"]))
            if not stored or stored.get("id") != msg["id"] or stored.get("from") != msg["from"]:
                await archive.forget(self.env, msg["id"])
            return True
        except Exception as error:
            print(f"chat {self.room}: archive failed, retried in {ARCHIVE_RETRY_MS // 1000} s: {error!r}")
            return False

    async def _archive_or_remember(self, msg: dict) -> None:
        """The D1 copy after a send; a failure is remembered (`arc:<seq>`) for the alarm to retry, so
        the message still reaches search and the daily R2 archive (made from D1)."""
        if await self._archive(msg):
            return
        try:
            await jput(self.ctx.storage, f"arc:{msg['seq']:012d}", 1)
            due = Date.now() + ARCHIVE_RETRY_MS
            if self._archive_due is None or self._archive_due > due:
                self._archive_due = due
            await self._schedule()
        except Exception as error:
            print(f"chat {self.room}: could not remember message {msg['seq']} for the archive: {error!r}")

    async def _retry_archive(self, now: int) -> None:
        """Retry the D1 copies that failed, oldest first; stop at the first failure and wait again."""
        storage = self.ctx.storage
        self._archive_due = None
        pending = await jlist(storage, prefix="arc:", limit=64)
        for key, _ in pending:
            try:
                seq = int(key[len("arc:"):])
            except ValueError:
                await storage.delete(key)
                continue
            stored = await jget(storage, _mkey(seq))
            # Purged, redacted (deleted account) or unreadable: nothing left to copy.
            public = (await self._open([stored]))[0] if stored and stored.get("from") else None
            if public is not None and not public.get("unreadable") and public.get("kind") != "deleted":
                if not await self._archive(public):
                    self._archive_due = now + ARCHIVE_RETRY_MS
                    return
            await storage.delete(key)
        if len(pending) == 64:
            self._archive_due = now + 1_000  # more to do: soon, in a fresh alarm

    async def _fan_out(self, msg: dict) -> None:
        await self._archive_or_remember(msg)
        pair = dm_participants(self.room)
        if pair:
            other = pair[0] if pair[1] == msg["from"] else pair[1]
            persona = bots.persona(other)
            if persona is not None:
                if msg["kind"] == "text":
                    await self._persona_reply(persona, msg)
            elif not any(att.get("uid") == other for _, att in self._sockets()):
                await self._offline(other, msg)
        elif msg["kind"] == "text" and bots.persona(msg["from"]) is None:
            for persona in bots.mentioned(msg.get("text", "")):
                await self._persona_reply(persona, msg)

    async def _offline(self, to: str, msg: dict) -> None:
        """The recipient has no socket here: a pointer (room, seq) goes through the queue to their inbox."""
        queue = getattr(self.env, "DELIVERY", None)
        if queue is None:
            return
        pointer = {"to": to, "room": self.room, "seq": msg["seq"], "from": msg["from"], "name": msg.get("name", ""),
                   "ts": msg["ts"]}
        await queue.send(json.dumps(pointer))

    async def _persona_reply(self, persona: dict, trigger: dict) -> None:
        self._broadcast({"type": "typing", "user": persona["id"], "name": persona["name"], "on": True,
                         "until": Date.now() + TYPING_MS})
        history = (await self._open([m for _, m in await jlist(self.ctx.storage, prefix="m:", reverse=True, limit=8)]))[::-1]
        text, outcome = await bots.generate(self.env, persona, trigger["from"], history, trigger.get("text", ""))
        self._broadcast({"type": "typing", "user": persona["id"], "name": persona["name"], "on": False})
        if text is None:
            code = "ai_disabled" if outcome == "disabled" else "quota_exceeded" if outcome.startswith("quota") else "internal"
            self._broadcast(error_frame(code, f"{persona['name']} cannot answer right now ({outcome})"),
                            only_user=trigger["from"])
            return
        cid = f"ai-{trigger['seq']}-{persona['id']}"
        if await jget(self.ctx.storage, f"cid:{persona['id']}:{cid}") is not None:
            return  # already answered (a retried waitUntil)
        msg = await self._append(persona["id"], persona["name"], cid, {"kind": "text", "text": text}, Date.now())
        public = (await self._open([msg]))[0]
        self._broadcast({"type": "msg", "message": public})
        await self._archive_or_remember(public)

    # -- typing -----------------------------------------------------------------------------------

    async def _typing_now(self) -> list[dict]:
        now = Date.now()
        typing = await jget(self.ctx.storage, "typing") or {}
        return [{"user": u, "name": v["name"], "until": v["until"]} for u, v in typing.items() if v["until"] > now]

    async def _typing(self, ws, att: dict) -> None:
        if att.get("hidden"):
            return  # an appear-offline user typing would give them away
        now = Date.now()
        typing = await jget(self.ctx.storage, "typing") or {}
        current = typing.get(att["uid"])
        if current and current["until"] - now > TYPING_MS - 1000:
            return  # announced less than a second ago: no write, no broadcast (typing is not rate-limited)
        typing[att["uid"]] = {"name": att.get("name", ""), "until": now + TYPING_MS}
        await jput(self.ctx.storage, "typing", typing)
        self._typing_due = min(v["until"] for v in typing.values())
        self._broadcast({"type": "typing", "user": att["uid"], "name": att.get("name", ""), "on": True,
                         "until": now + TYPING_MS}, skip=ws)
        await self._schedule()

    async def _clear_typing(self, uid: str) -> None:
        typing = await jget(self.ctx.storage, "typing") or {}
        if typing.pop(uid, None) is not None:
            await jput(self.ctx.storage, "typing", typing)
            self._broadcast({"type": "typing", "user": uid, "on": False})

    def _extra_deadline(self) -> int | None:
        due = [d for d in (getattr(self, "_typing_due", None), getattr(self, "_purge_due", None),
                           getattr(self, "_archive_due", None)) if d is not None]
        return min(due, default=None)

    async def _on_alarm(self, now: int) -> int | None:
        await self._load()
        if self._purge_due is not None and self._purge_due <= now:
            await self._purge(now)
        if self._archive_due is not None and self._archive_due <= now:
            await self._retry_archive(now)
        typing = await jget(self.ctx.storage, "typing") or {}
        expired = [u for u, v in typing.items() if v["until"] <= now]
        for uid in expired:
            typing.pop(uid)
            self._broadcast({"type": "typing", "user": uid, "on": False})
        if expired:
            await jput(self.ctx.storage, "typing", typing)
        self._typing_due = min((v["until"] for v in typing.values()), default=None)
        return self._extra_deadline()

    # -- retention --------------------------------------------------------------------------------

    async def _next_purge(self) -> None:
        """When the oldest stored message passes the room's retention (None: no message)."""
        oldest = await jlist(self.ctx.storage, prefix="m:", limit=1)
        room = self.room or await jget(self.ctx.storage, "room")
        self._purge_due = oldest[0][1]["ts"] + retention.retention_ms(self.env, room) if oldest and room else None

    async def _purge(self, now: int) -> None:
        """Delete every message older than the room's retention, with its client-id entry.  Sequences
        are never reused (the counter stays), so resume and paging simply start later."""
        cutoff = now - retention.retention_ms(self.env, self.room)
        storage = self.ctx.storage
        purged = 0
        while True:
            rows = await jlist(storage, prefix="m:", limit=128)
            old = []
            for key, msg in rows:
                if msg.get("ts", 0) > cutoff:
                    break  # the log is in time order: everything after is newer
                old.append((key, msg))
            if not old:
                break
            keys = [k for k, _ in old] + [f"cid:{m['from']}:{m['cid']}" for _, m in old if m.get("from") and m.get("cid")]
            for i in range(0, len(keys), 128):
                await storage.delete(keys[i:i + 128])
            purged += len(old)
            if len(old) < len(rows):
                break
        if purged:
            print(f"chat {self.room}: retention purged {purged} messages")
        await self._next_purge()
        if self._purge_due is not None and self._purge_due <= now:
            self._purge_due = now + 3_600_000  # never a tight alarm loop, whatever is stored

    # -- receipts ---------------------------------------------------------------------------------

    async def _all_marks(self) -> dict:
        return {k[len("rcpt:"):]: v for k, v in await jlist(self.ctx.storage, prefix="rcpt:")}

    async def _receipt(self, ws, att: dict, frame: dict) -> None:
        uid = att["uid"]
        marks = await jget(self.ctx.storage, f"rcpt:{uid}")
        marks, changed = receipts.apply_receipt(marks, frame["seq"], frame["state"], self.seq)
        if not changed:
            return
        await jput(self.ctx.storage, f"rcpt:{uid}", marks)
        self._broadcast({"type": "receipt", "user": uid, "delivered": marks["delivered"], "read": marks["read"]})
        if frame["state"] == "read" and dm_participants(self.room):
            self._after(self._clear_inbox(uid, marks["read"]))

    async def _clear_inbox(self, uid: str, upto: int) -> None:
        try:
            await self.env.INBOX.getByName(uid).clear(self.room, upto)
        except Exception as error:
            print(f"chat {self.room}: inbox clear failed: {error!r}")

    # -- history ----------------------------------------------------------------------------------

    async def _open(self, msgs: list[dict]) -> list[dict]:
        """Stored messages as clients see them (the keyring re-read if one names a key it lacks)."""
        want = {bodies.kid_of(m.get("body")) for m in msgs} - {None}
        try:
            ring = await keys.keyring(self.env, want) if want else None
        except Exception as error:  # no ring: every sealed body shows as unreadable, the room goes on
            print(f"chat {self.room}: keyring unavailable: {error!r}")
            ring = None
        return [_public(m, ring, self.room) for m in msgs]

    async def _page(self, before: int | None, limit: int) -> dict:
        end = _mkey(before) if before else _mkey(self.seq + 1)
        rows = await jlist(self.ctx.storage, prefix="m:", end=end, reverse=True, limit=limit + 1)
        more = len(rows) > limit
        msgs = (await self._open([m for _, m in rows[:limit]]))[::-1]
        return {"messages": msgs, "hasMore": more, "lastSeq": self.seq}

    async def _history_frame(self, ws, frame: dict) -> None:
        page = await self._page(frame.get("before"), frame.get("limit", PAGE_DEFAULT))
        send(ws, {"type": "history", **page})

    async def _replay(self, ws, since: int) -> None:
        """Exactly the messages after `since` (capped; `more` tells the client to sync again)."""
        rows = await jlist(self.ctx.storage, start=_mkey(since + 1), end=_mkey(self.seq + 1), limit=REPLAY_LIMIT + 1)
        more = len(rows) > REPLAY_LIMIT
        send(ws, {"type": "sync", "since": since, "messages": await self._open([m for _, m in rows[:REPLAY_LIMIT]]),
                  "more": more, "lastSeq": self.seq})

    async def history(self, room: str, uid: str, before: int = 0, limit: int = PAGE_DEFAULT) -> str:
        """RPC for `GET /api/rooms/<room>/history`: a page of messages before `before` (0 = newest)."""
        if not may_join(room, uid):
            return json.dumps({"ok": False, "code": "forbidden", "message": "not a member of this room"})
        await self._load(room)
        page = await self._page(before or None, max(1, min(100, limit)))
        page["receipts"] = await self._all_marks()
        return json.dumps({"ok": True, "data": page})

    async def eraseUser(self, room: str, uid: str, wipe: bool = False) -> str:
        """RPC for account deletion.  Each of `uid`'s messages becomes a tombstone in place (same seq and
        id, no author, no body), so replay and resume stay consistent; their client ids, receipts and
        typing go.  `wipe` (a DM with a persona: nobody else can read it) deletes the whole room.
        Members still here get a `redact` frame.  {"redacted": n, "wiped": bool}."""
        storage = self.ctx.storage
        if not await jlist(storage, limit=1):
            return json.dumps({"redacted": 0, "wiped": False})  # never used: nothing to create
        if wipe:
            for ws, att in self._sockets(authed_only=False):
                self._close(ws, att, "account_deleted")
            await storage.deleteAlarm()
            await storage.deleteAll()
            self.room, self.seq = None, None
            return json.dumps({"redacted": 0, "wiped": True})
        await self._load(room)
        cids = await jlist(storage, prefix=f"cid:{uid}:")
        seqs = sorted({seq for _, seq in cids if isinstance(seq, int)})
        for i in range(0, len(seqs), 128):
            stored = await jget_many(storage, [_mkey(s) for s in seqs[i:i + 128]])
            tombs = {k: {"seq": m["seq"], "id": m["id"], "from": None, "name": "", "kind": "deleted", "ts": m["ts"]}
                     for k, m in stored.items() if m and m.get("from") == uid}
            if tombs:
                await jput_many(storage, tombs)
        keys = [k for k, _ in cids] + [f"rcpt:{uid}"]
        for i in range(0, len(keys), 128):
            await storage.delete(keys[i:i + 128])
        typing = await jget(storage, "typing") or {}
        if typing.pop(uid, None) is not None:
            await jput(storage, "typing", typing)
        if dm_participants(room):
            await jput(storage, "gone", True)  # a DM with nobody on the other side takes no new message
            self._gone = True
        if seqs:
            self._broadcast({"type": "redact", "room": self.room, "seqs": seqs})
        return json.dumps({"redacted": len(seqs), "wiped": False})

    async def reseal(self, room: str, everything: bool = False) -> str:
        """RPC for re-encryption: rewrite with the current data key every stored body that is legacy
        plain text, or (`everything`) sealed with an older key.  Bodies that do not open are left as
        they are and counted.  {"resealed": n, "unreadable": n}."""
        storage = self.ctx.storage
        if not await jlist(storage, limit=1):
            return json.dumps({"resealed": 0, "unreadable": 0})  # never used: nothing to create
        await self._load(room)
        ring = await keys.keyring(self.env, fresh=True)  # a rotation made elsewhere seals from now on
        done = bad = 0
        start = "m:"
        while True:
            rows = await jlist(storage, prefix="m:", start=start, limit=128)
            if not rows:
                break
            start, full = rows[-1][0] + "\x00", len(rows) == 128
            want = {bodies.kid_of(m.get("body")) for _, m in rows} - {None}
            if want - set(ring.keys):
                ring = await keys.keyring(self.env, want)
            # Read and written with no other await between (the input gate keeps other events out):
            # a message redacted meanwhile is never written back.
            rows = await jlist(storage, prefix="m:", start=rows[0][0], end=start, limit=128)
            changed = {}
            for key, msg in rows:
                if not bodies.needs_reseal(msg.get("body"), ring.current, everything):
                    continue
                try:
                    content = bodies.open_body(msg["body"], ring, self.room, msg["seq"], msg["id"], msg.get("from"),
                                               msg.get("kind"))
                except bodies.BodyError as error:
                    print(f"chat {self.room}: not re-encrypted: {error}")
                    bad += 1
                    continue
                changed[key] = {**msg, "body": bodies.seal_body(content, ring, self.room, msg["seq"], msg["id"], msg.get("from"),
                                                                 msg.get("kind"))}
            if changed:
                await jput_many(storage, changed)
                done += len(changed)
            if not full:
                break
        return json.dumps({"resealed": done, "unreadable": bad})

    async def summary(self, room: str) -> str:
        await self._load(room)
        return json.dumps({"room": room, "lastSeq": self.seq, "online": len(self._sockets())})

    # -- close ------------------------------------------------------------------------------------

    async def webSocketClose(self, ws, code, reason, wasClean) -> None:
        att = attachment(ws)
        if not att.get("closing"):
            try:
                ws.close(1000, "bye")
            except Exception:
                pass
        if att.get("authed"):
            events.emit(self.env, "ws_disconnect", blobs=(self.kind, str(code)), user=att["uid"])
            still = [a for w, a in self._sockets() if w is not ws and a.get("uid") == att["uid"]]
            if not still and not att.get("hidden"):
                self._broadcast({"type": "leave", "user": att["uid"]}, skip=ws)
                await self._clear_typing(att["uid"])


def _json_error(status: int, code: str, message: str):
    from workers import Response

    return Response.json({"ok": False, "error": {"code": code, "message": message}}, status=status)
