"""What ChatRoom and PresenceRoom share: hibernatable sockets that authenticate in their first frame.

Each socket carries its state in its attachment (JSON text): whether it is authenticated, the user
and session, the access token's expiry and when it was last heard from.  One alarm per object
enforces every deadline: the 10 s to authenticate, token expiry (unless re-authenticated), the 90 s
heartbeat timeout, plus whatever the subclass adds (typing expiry).
"""

from __future__ import annotations

import json

from js import Date, WebSocketPair, WebSocketRequestResponsePair
from workers import DurableObject, Response

import events
import sessions
from protocol import CLOSE, PING, PONG, error_frame
from store import py

__all__ = ["SocketHost", "AUTH_TIMEOUT_MS", "IDLE_MS", "HEARTBEAT_MS", "attachment", "save", "send", "close_socket"]

AUTH_TIMEOUT_MS = 10_000
IDLE_MS = 90_000
HEARTBEAT_MS = 30_000
REAUTH_MIN_MS = 10_000  # at most one re-auth per socket this often
TRUSTED_USER_HEADER = "x-messenger-claims"  # set by our worker after it verified Sec-WebSocket-Protocol


def attachment(ws) -> dict:
    raw = ws.deserializeAttachment()
    if raw is None:
        return {}
    if hasattr(raw, "to_py"):
        raw = raw.to_py()
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def save(ws, att: dict) -> None:
    ws.serializeAttachment(json.dumps(att, separators=(",", ":")))


def send(ws, frame) -> bool:
    try:
        ws.send(frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":")))
        return True
    except Exception:
        return False  # the socket went away under us; its close event cleans up


def close_socket(ws, reason_name: str) -> None:
    code, reason = CLOSE[reason_name]
    try:
        ws.close(code, reason)
    except Exception:
        pass


def _ms(value) -> int:
    if value is None:
        return 0
    if hasattr(value, "getTime"):
        return int(value.getTime())
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1000)
    return int(value)


class SocketHost(DurableObject):
    """Base of the socket-holding objects: accept, authenticate, sweep deadlines with the alarm."""

    kind = "socket"

    def __init__(self, ctx, env) -> None:
        super().__init__(ctx, env)
        try:
            # Heartbeats are answered without waking the object; the sweep reads their timestamps.
            ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair.new(PING, PONG))
        except Exception as error:
            print(f"{self.kind}: no WebSocket auto-response: {error}")

    # -- accept -----------------------------------------------------------------------------------

    async def _accept(self, request, extra: dict) -> Response:
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        now = Date.now()
        att = {"authed": False, "opened": now, "last": now, **extra}
        headers = {}
        trusted = request.headers.get(TRUSTED_USER_HEADER)
        save(server, att)
        if trusted:
            # Authenticated by the worker through Sec-WebSocket-Protocol; echo the sub-protocol.
            headers["sec-websocket-protocol"] = "messenger"
            await self._authenticated(server, att, json.loads(trusted), {})
        await self._schedule()
        return Response(None, status=101, web_socket=client, headers=headers)

    def _sockets(self, authed_only: bool = True) -> list[tuple[object, dict]]:
        out = []
        for ws in self.ctx.getWebSockets():
            try:
                att = attachment(ws)
            except Exception:
                continue
            if att.get("closing"):
                continue
            if att.get("authed") or not authed_only:
                out.append((ws, att))
        return out

    def _broadcast(self, frame, *, skip=None, only_user: str | None = None, except_user: str | None = None) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        for ws, att in self._sockets():
            if ws is skip or (only_user is not None and att.get("uid") != only_user):
                continue
            if except_user is not None and att.get("uid") == except_user:
                continue
            send(ws, text)

    def _close(self, ws, att: dict, reason_name: str) -> None:
        if att.get("uid"):
            self._dropped = getattr(self, "_dropped", set()) | {att["uid"]}
        att["closing"] = True
        try:
            save(ws, att)
        except Exception:
            pass
        close_socket(ws, reason_name)

    # -- authentication ---------------------------------------------------------------------------

    async def _verify(self, token: str) -> dict:
        # Signature here, liveness from the session's own object (authoritative; never a global object).
        return await sessions.socket_claims(self.env, token)

    async def _auth_frame(self, ws, att: dict, frame: dict) -> None:
        if att.get("authed"):
            # A client re-authenticates once per token lifetime; a flood of auth frames on an open
            # socket must not turn into a flood of calls to the session's object.
            now = Date.now()
            wait = att.get("reauthAt", 0) + REAUTH_MIN_MS - now
            if wait > 0:
                send(ws, error_frame("rate_limited", "re-authenticate at most once every 10 s", retryAfterMs=wait))
                return
            att["reauthAt"] = now
            save(ws, att)
        result = await self._verify(frame["token"])
        if att.get("authed"):
            # Re-authentication on an open socket after a refresh: same user and session only.  A token
            # of another session would move the socket out of reach of its own session's revocation
            # (revocation closes the rooms each session joined), so it is refused.
            if not result["ok"]:
                send(ws, error_frame(result["code"], result["message"]))
                if result["code"] == "session_revoked":
                    self._close(ws, att, "session_revoked")
                    await self._after_closes()
                return
            if result["data"]["sub"] != att["uid"] or result["data"]["sid"] != att.get("sid"):
                send(ws, error_frame("auth_invalid", "re-authentication must renew this socket's own session"))
                return
            att["exp"] = result["data"]["exp"] * 1000
            save(ws, att)
            send(ws, {"type": "reauthed", "expiresAt": att["exp"]})
            await self._schedule()
            return
        if not result["ok"]:
            send(ws, error_frame(result["code"], result["message"]))
            self._close(ws, att, "token_expired" if result["code"] == "auth_expired" else
                        "session_revoked" if result["code"] == "session_revoked" else "auth_failed")
            return
        await self._authenticated(ws, att, result["data"], frame)
        await self._schedule()

    async def _authenticated(self, ws, att: dict, claims: dict, frame: dict) -> None:
        """Subclasses check membership, then call `_admit`."""
        raise NotImplementedError

    def _admit(self, ws, att: dict, claims: dict) -> None:
        att.update({"authed": True, "uid": claims["sub"], "sid": claims["sid"], "name": claims.get("name", ""),
                    "exp": claims["exp"] * 1000, "last": Date.now()})
        save(ws, att)
        events.emit(self.env, "ws_connect", blobs=(self.kind,), user=claims["sub"])

    async def _register(self, ws, att: dict, room: str) -> bool:
        """Tell the session's object it has a socket in `room`; close the socket if the session is gone."""
        try:
            result = py(await sessions.session_stub(self.env, att["sid"]).noteRoom(room))
        except Exception as error:
            print(f"{self.kind}: noteRoom failed: {error!r}")
            return True
        if result.get("ok") or result.get("code") != "session_revoked":
            return True
        send(ws, error_frame("session_revoked", "session revoked"))
        self._close(ws, att, "session_revoked")
        await self._after_closes()
        return False

    async def revokeSessions(self, sids_json: str, reason_name: str = "session_revoked") -> str:
        """RPC: close every socket of these sessions now (sign-out, reuse detection, deletion)."""
        sids = set(json.loads(sids_json))
        closed = 0
        for ws, att in self._sockets():
            if att.get("sid") in sids:
                self._close(ws, att, reason_name if reason_name in CLOSE else "session_revoked")
                closed += 1
        await self._after_closes()
        return json.dumps({"closed": closed})

    async def _after_closes(self) -> None:
        """Called after the server closed sockets itself (sweep, revocation)."""
        self._dropped = set()

    # -- deadlines --------------------------------------------------------------------------------

    def _last_heard(self, ws, att: dict) -> int:
        auto = 0
        try:
            auto = _ms(self.ctx.getWebSocketAutoResponseTimestamp(ws))
        except Exception:
            pass
        return max(att.get("last", 0), auto)

    async def _sweep(self, now: int) -> int | None:
        """Close sockets past a deadline; the earliest deadline still ahead (or None)."""
        nxt = None
        for ws, att in self._sockets(authed_only=False):
            if not att.get("authed"):
                due = att["opened"] + AUTH_TIMEOUT_MS
                if due <= now:
                    self._close(ws, att, "auth_timeout")
                    continue
            else:
                if att["exp"] <= now:
                    send(ws, error_frame("auth_expired", "access token expired; sign in again"))
                    self._close(ws, att, "token_expired")
                    continue
                idle_due = self._last_heard(ws, att) + IDLE_MS
                if idle_due <= now:
                    self._close(ws, att, "idle_timeout")
                    continue
                due = min(att["exp"], idle_due)
            nxt = due if nxt is None else min(nxt, due)
        return nxt

    def _extra_deadline(self) -> int | None:
        return None

    async def _schedule(self) -> None:
        """Point the alarm at the earliest deadline (only ever earlier than one already set)."""
        deadlines = []
        for ws, att in self._sockets(authed_only=False):
            if not att.get("authed"):
                deadlines.append(att["opened"] + AUTH_TIMEOUT_MS)
            else:
                deadlines.append(min(att["exp"], self._last_heard(ws, att) + IDLE_MS))
        extra = self._extra_deadline()
        if extra is not None:
            deadlines.append(extra)
        if not deadlines:
            return
        due = min(deadlines)
        current = await self.ctx.storage.getAlarm()
        if current is None or _ms(current) > due or _ms(current) < Date.now() - 60_000:
            await self.ctx.storage.setAlarm(due)

    async def alarm(self, alarm_info=None) -> None:
        now = Date.now()
        nxt = await self._sweep(now)
        await self._after_closes()
        extra = await self._on_alarm(now)
        deadlines = [d for d in (nxt, extra) if d is not None]
        if deadlines:
            due = min(deadlines)
            if nxt is not None:
                # Sweep at least every heartbeat interval so silent sockets are found within 90 s (with
                # no socket, only the object's own deadlines wake it: typing, retention, grace).
                due = min(due, now + HEARTBEAT_MS)
            await self.ctx.storage.setAlarm(max(due, now + 50))

    async def _on_alarm(self, now: int) -> int | None:
        return None

    async def webSocketError(self, ws, error) -> None:
        await self.webSocketClose(ws, 1006, "error", False)
