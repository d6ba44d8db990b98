"""The PresenceRoom Durable Object: who is online, from live sockets with heartbeats.

A user is online while at least one of their sockets is open (several tabs count once) and goes
offline when the last one closes or falls silent for 90 s (the alarm closes it).  The chosen state
(online, busy, away, appear-offline), display name and personal message persist; others see
appear-offline as offline.  Every change is pushed to every buddy list and mirrored into KV
(`presence:<user id>`, with a TTL so a dead object can never leave anyone "online" forever).
"""

from __future__ import annotations

import json

from js import Date

import bots
from protocol import PRESENCE_FRAMES, ProtocolError, error_frame, parse_frame
from sockets import SocketHost, attachment, save, send
from store import jget, jlist, jput, py

__all__ = ["PresenceRoom", "presence", "KV_TTL_S", "visible_status"]

KV_TTL_S = 120
KV_REFRESH_MS = 60_000
# A user whose last socket closes stays "online" this long, so a page reload or a quick reconnect
# never shows as offline-then-online (no flicker).  Dead connections get no grace: the heartbeat
# sweep already waited 90 s for them.
OFFLINE_GRACE_MS = 5_000


def presence(env):
    return env.PRESENCE.getByName("global")


def visible_status(chosen: str | None, online: bool, *, to_self: bool = False) -> str:
    """What others (or the user) see: offline without sockets; appear-offline looks offline to others."""
    if not online:
        return "offline"
    chosen = chosen or "online"
    if chosen == "appear-offline" and not to_self:
        return "offline"
    return chosen


class PresenceRoom(SocketHost):
    """One instance ("global"): every signed-in client's presence socket."""

    kind = "presence"

    async def fetch(self, request):
        await self._load_grace()
        return await self._accept(request, {})

    async def _load_grace(self) -> None:
        if getattr(self, "_grace", None) is None:
            self._grace = await jget(self.ctx.storage, "grace") or {}

    async def _save_grace(self) -> None:
        await jput(self.ctx.storage, "grace", self._grace)

    def _online_users(self) -> dict[str, int]:
        """Users with a live socket (their socket count), plus users inside the offline grace (0)."""
        counts: dict[str, int] = {uid: 0 for uid in (getattr(self, "_grace", None) or {})}
        for _, att in self._sockets():
            counts[att["uid"]] = counts.get(att["uid"], 0) + 1
        return counts

    def _extra_deadline(self) -> int | None:
        return min((getattr(self, "_grace", None) or {}).values(), default=None)

    async def _profile(self, uid: str) -> dict:
        return await jget(self.ctx.storage, f"p:{uid}") or {}

    async def _entry(self, uid: str, online: bool, *, to_self: bool = False, profile: dict | None = None) -> dict:
        profile = profile if profile is not None else await self._profile(uid)
        return {"id": uid, "status": visible_status(profile.get("state"), online, to_self=to_self),
                "message": profile.get("message", ""), "name": profile.get("name")}

    async def _publish(self, uid: str, *, skip=None, was_online: bool | None = None) -> None:
        """Push a user's presence to everyone and mirror it into KV.

        With `was_online`, others hear of it only when what they see changed: an appear-offline user
        coming or going looks exactly like an offline user doing nothing (no frame, not even timing).
        """
        online = uid in self._online_users()
        profile = await self._profile(uid)
        entry = await self._entry(uid, online, profile=profile)
        if was_online is None or await self._entry(uid, was_online, profile=profile) != entry:
            self._broadcast({"type": "presence", "user": entry}, skip=skip)
        own = await self._entry(uid, online, to_self=True, profile=profile)
        self._broadcast({"type": "presence", "user": own}, only_user=uid, skip=skip)
        await self._mirror(uid, entry)

    async def _mirror(self, uid: str, entry: dict) -> None:
        kv = getattr(self.env, "KV", None)
        if kv is None:
            return
        try:
            if entry["status"] == "offline":
                await kv.delete(f"presence:{uid}")
            else:
                await kv.put(f"presence:{uid}", json.dumps(entry), expirationTtl=KV_TTL_S)
        except Exception as error:
            print(f"presence: KV mirror failed: {error!r}")

    async def _authenticated(self, ws, att: dict, claims: dict, frame: dict) -> None:
        uid = claims["sub"]
        await self._load_grace()
        was_online = uid in self._online_users()
        if self._grace.pop(uid, None) is not None:
            await self._save_grace()  # back within the grace: nobody saw them leave
        self._admit(ws, att, claims)
        if not await self._register(ws, att, "presence"):
            return
        send(ws, {"type": "roster", "you": await self._entry(uid, True, to_self=True), "users": await self._roster(),
                  "inbox": await self._inbox(uid)})
        if not was_online:
            await self._publish(uid, skip=ws, was_online=False)

    async def _inbox(self, uid: str) -> dict:
        try:
            return py(await self.env.INBOX.getByName(uid).counts())
        except Exception as error:
            print(f"presence: inbox counts failed: {error!r}")
            return {}

    async def _roster(self) -> list[dict]:
        online = self._online_users()
        profiles = {k[2:]: v for k, v in await jlist(self.ctx.storage, prefix="p:")}
        out = []
        for uid in sorted(set(online) | set(profiles)):
            out.append(await self._entry(uid, uid in online, profile=profiles.get(uid, {})))
        for p in bots.PERSONAS:
            out.append({"id": p["id"], "status": p["presence"], "message": p["message"], "name": p["name"], "bot": True})
        return out

    async def webSocketMessage(self, ws, message) -> None:
        await self._load_grace()
        att = attachment(ws)
        att["last"] = Date.now()
        save(ws, att)
        try:
            frame = parse_frame(message, PRESENCE_FRAMES)
            if frame["type"] == "ping":
                send(ws, {"type": "pong"})
            elif frame["type"] == "auth":
                await self._auth_frame(ws, att, frame)
            elif not att.get("authed"):
                raise ProtocolError("not_authenticated", "send an auth frame first")
            elif frame["type"] == "status":
                await self.setStatus(att["uid"], json.dumps({k: v for k, v in frame.items() if k != "type"}))
        except ProtocolError as error:
            send(ws, error_frame(error.code, error.message, **error.extra))
        except Exception as error:
            print(f"presence: frame failed: {error!r}")
            send(ws, error_frame("internal", "the server could not process that frame"))

    async def setStatus(self, uid: str, changes_json: str) -> str:
        """RPC (and the `status` frame): change state, personal message or display name."""
        await self._load_grace()
        changes = json.loads(changes_json)
        profile = await self._profile(uid)
        was_hidden, old_name = profile.get("state") == "appear-offline", profile.get("name")
        for field, key in (("state", "state"), ("message", "message"), ("name", "name")):
            if field in changes:
                profile[key] = changes[field]
        # The version orders what rooms hear (a room may ask `joinRoom` while a change is on its way).
        profile["v"] = profile.get("v", 0) + 1
        await jput(self.ctx.storage, f"p:{uid}", profile)
        await self._publish(uid)
        hidden = profile.get("state") == "appear-offline"
        renamed = profile.get("name") != old_name
        if hidden != was_hidden or renamed:
            await self._tell_rooms(uid, hidden, profile["v"], profile.get("name") if renamed else None)
        return json.dumps(await self._entry(uid, uid in self._online_users(), to_self=True, profile=profile))

    # -- the rooms a user is in: appear-offline hides them there too ------------------------------

    async def joinRoom(self, uid: str, room: str) -> str:
        """RPC for a ChatRoom admitting a socket of `uid`: {"hidden", "v", "name"}, and the room is remembered
        (in the same event, so a later switch to or from appear-offline cannot miss it)."""
        self._joins = getattr(self, "_joins", {})
        self._joins[uid] = self._joins.get(uid, 0) + 1
        rooms = await jget(self.ctx.storage, f"r:{uid}") or []
        if room not in rooms:
            await jput(self.ctx.storage, f"r:{uid}", rooms + [room])
        profile = await self._profile(uid)
        return json.dumps({"hidden": profile.get("state") == "appear-offline", "v": profile.get("v", 0),
                           "name": profile.get("name")})

    async def _tell_rooms(self, uid: str, hidden: bool, version: int, name: str | None) -> None:
        """Every room the user has joined applies the change (appear-offline or not, a new display name)
        before setStatus returns (as buddy lists do);
        rooms where they have no socket (and none being admitted) are forgotten."""
        import asyncio

        rooms = await jget(self.ctx.storage, f"r:{uid}") or []
        joins = getattr(self, "_joins", {}).get(uid, 0)

        async def tell(room: str):
            try:
                return room, py(await self.env.CHAT.getByName(room).setHidden(room, uid, hidden, version, name))
            except Exception as error:
                print(f"presence: telling {room} failed: {error!r}")
                return room, None

        answers = await asyncio.gather(*(tell(room) for room in rooms))
        idle = {room for room, answer in answers if answer is not None and not answer.get("present")}
        if idle and getattr(self, "_joins", {}).get(uid, 0) == joins:  # no room joined meanwhile
            current = await jget(self.ctx.storage, f"r:{uid}") or []
            await jput(self.ctx.storage, f"r:{uid}", [r for r in current if r not in idle])

    async def snapshot(self) -> str:
        """RPC: {user id: {status, message, name}} as other users see it."""
        await self._load_grace()
        online = self._online_users()
        out = {}
        for uid, profile in [(k[2:], v) for k, v in await jlist(self.ctx.storage, prefix="p:")]:
            out[uid] = await self._entry(uid, uid in online, profile=profile)
        for uid in online:
            if uid not in out:
                out[uid] = await self._entry(uid, True, profile={})
        return json.dumps(out)

    async def own(self, uid: str) -> str:
        """RPC for `GET /api/me`: the user's presence as they see it (appear-offline shows as chosen)."""
        await self._load_grace()
        profile = await self._profile(uid)
        entry = await self._entry(uid, uid in self._online_users(), to_self=True, profile=profile)
        entry["chosen"] = profile.get("state") or "online"  # what rooms need to keep appear-offline hidden
        return json.dumps(entry)

    async def notify(self, uid: str, frame_json: str) -> str:
        """RPC: push a frame to every presence socket of `uid` (new offline DM, etc.)."""
        delivered = 0
        for ws, att in self._sockets():
            if att.get("uid") == uid and send(ws, frame_json):
                delivered += 1
        return json.dumps({"delivered": delivered})

    async def forget(self, uid: str) -> str:
        """RPC for account deletion: drop the profile and go offline everywhere; {"ok", "rooms"}: the rooms
        the user had joined."""
        rooms = await jget(self.ctx.storage, f"r:{uid}") or []
        await self.ctx.storage.delete([f"p:{uid}", f"r:{uid}"])
        await self._load_grace()
        if self._grace.pop(uid, None) is not None:
            await self._save_grace()
        self._broadcast({"type": "presence", "user": {"id": uid, "status": "offline", "message": "", "name": None,
                                                      "deleted": True}})
        kv = getattr(self.env, "KV", None)
        if kv is not None:
            await kv.delete(f"presence:{uid}")
        return json.dumps({"ok": True, "rooms": rooms})

    async def _after_closes(self) -> None:
        await self._load_grace()
        dropped, self._dropped = getattr(self, "_dropped", set()), set()
        online = self._online_users()
        for uid in dropped:
            if uid not in online:
                await self._publish(uid, was_online=True)

    async def _on_alarm(self, now: int) -> int | None:
        await self._load_grace()
        due = [uid for uid, until in self._grace.items() if until <= now]
        for uid in due:
            del self._grace[uid]
        if due:
            await self._save_grace()
            online = self._online_users()
            for uid in due:
                if uid not in online:
                    await self._publish(uid, was_online=True)
        # Keep the KV mirror of online users fresh (its TTL is what bounds staleness).
        last = getattr(self, "_mirrored", 0)
        if now - last >= KV_REFRESH_MS:
            self._mirrored = now
            for uid in self._online_users():
                await self._mirror(uid, await self._entry(uid, True))
        return self._extra_deadline()

    async def webSocketClose(self, ws, code, reason, wasClean) -> None:
        att = attachment(ws)
        server_closed = bool(att.get("closing"))  # by the sweep or a revocation: already published
        if not server_closed:
            try:
                ws.close(1000, "bye")
            except Exception:
                pass
        att["closing"] = True
        try:
            save(ws, att)
        except Exception:
            pass
        if att.get("authed"):
            import events

            events.emit(self.env, "ws_disconnect", blobs=(self.kind, str(code)), user=att["uid"])
            await self._load_grace()
            if not server_closed and att["uid"] not in self._online_users():
                self._grace[att["uid"]] = Date.now() + OFFLINE_GRACE_MS
                await self._save_grace()
                await self._schedule()
