"""Sessions without a global object: one `Session` Durable Object per session, keys and markers in KV.

The hot path never reaches a single object.  An access token is verified in the worker itself against
the PUBLIC keys the Directory publishes in KV (`auth:keys`, cached in the isolate for a few seconds;
the Directory alone holds the private keys and signs, at sign-in and refresh);
whether its session is still live is answered by the KV session marker `session:<sid>` (for HTTP) or by
the session's own `Session` object (for sockets, authoritative).  The `Session` object holds the
refresh-token rotation, revocation and the rooms where the session has sockets, so revocation can close
them, and a socket registering after the revocation is told to close itself.
"""

from __future__ import annotations

import json

import jwt
from js import Date
from workers import DurableObject

import auth
from store import jget, jput, py

__all__ = ["Session", "session_stub", "signing_keys", "verify_local", "http_claims", "socket_claims",
           "revoke_sessions", "KEYS_KV", "KEY_CACHE_MS"]

KEYS_KV = "auth:keys"                  # the public verification keys, published by the Directory
KEY_CACHE_MS = 30_000                  # how long an isolate trusts the keys it read
KEY_RELOAD_MS = 1_000                  # one unknown kid re-reads KV at most this often
MARKER_PREFIX = "session:"             # KV session:<sid> = {"uid"} while live, {"revoked": true} after
MIN_KV_TTL_S = 60                      # KV's smallest expirationTtl
REVOKED_MARKER_TTL_S = auth.ACCESS_TTL_MS // 1000 + 120  # outlives every token the session was issued
REPUBLISH_MS = 60_000                  # a session object rewrites a missing marker at most this often

_KEYS: dict = {}                       # this isolate's copy of the keys: {"keys", "at"}
_MISSED: dict[str, int] = {}           # kid -> when a re-read last failed to find it


def session_stub(env, sid: str):
    """The stub of one session's object."""
    return env.SESSIONS.getByName(sid)


def _err(code: str, message: str, **extra) -> dict:
    return {"ok": False, "code": code, "message": message, **extra}


# -- signing keys --------------------------------------------------------------------------------

async def _read_keys(env) -> list[dict]:
    raw = await env.KV.get(KEYS_KV)
    keys = json.loads(raw) if raw is not None else None
    if keys is None or any("x" not in k for k in keys):
        # Nothing published yet (a fresh deployment), or HS256 secrets published before keys became
        # Ed25519: the Directory (re)generates its keys and publishes the public halves.
        from directory import directory

        return py(await directory(env).publishKeys())["data"]
    return keys


async def signing_keys(env, now: int, *, fresh: bool = False, kid: object = None) -> list[dict]:
    """The published public keys, from this isolate's memory while recent; KV again for an unknown `kid`."""
    at = _KEYS.get("at")
    stale = at is None or not 0 <= now - at < KEY_CACHE_MS
    unknown = kid is not None and all(k["kid"] != kid for k in _KEYS.get("keys", []))
    if unknown and 0 <= now - _MISSED.get(kid, -KEY_RELOAD_MS) < KEY_RELOAD_MS:
        unknown = False  # the same unknown kid re-reads at most once a second (a forged token's kid)
    if fresh or stale or unknown:
        _KEYS.update(keys=await _read_keys(env), at=now)
        if unknown and all(k["kid"] != kid for k in _KEYS["keys"]):
            if len(_MISSED) >= 256:
                _MISSED.clear()
            _MISSED[kid] = now
    return _KEYS["keys"]


async def verify_local(env, token: object, now: int) -> dict:
    """Claims of a validly signed, unexpired access token (no session check); raises auth.AuthError."""
    kid = None
    if isinstance(token, str) and len(token) <= 4096:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            kid = None
    keys = await signing_keys(env, now, kid=kid if isinstance(kid, str) else None)
    return auth.verify_access_token(token, keys, now)


async def http_claims(env, token: str) -> dict:
    """Signed-in HTTP: local signature check plus the KV session marker; {"ok", "data"|"code"}."""
    now = Date.now()
    try:
        claims = await verify_local(env, token, now)
    except auth.AuthError as error:
        return _err(error.code, error.message)
    raw = await env.KV.get(MARKER_PREFIX + claims["sid"])
    if raw is None:
        # No marker (not yet visible here): the session's object answers, and writes the marker again.
        return await _check_with_object(env, claims, republish=True)
    marker = json.loads(raw)
    if marker.get("revoked") or marker.get("uid") != claims["sub"]:
        return _err("session_revoked", "session revoked")
    return {"ok": True, "data": claims}


async def socket_claims(env, token: str) -> dict:
    """Socket auth: local signature check plus the session object's authoritative answer."""
    try:
        claims = await verify_local(env, token, Date.now())
    except auth.AuthError as error:
        return _err(error.code, error.message)
    return await _check_with_object(env, claims, republish=False)


async def _check_with_object(env, claims: dict, republish: bool) -> dict:
    result = py(await session_stub(env, claims["sid"]).check(claims["sub"], republish))
    if not result.get("ok"):
        return _err("session_revoked", "session revoked")
    return {"ok": True, "data": claims}


async def _write_marker(env, sid: str, session: dict | None) -> None:
    """KV `session:<sid>` as the stored session says: live until it lapses, or revoked."""
    if session is None or session.get("revoked"):
        value, ttl = {"revoked": True}, REVOKED_MARKER_TTL_S
    else:
        value, ttl = {"uid": session["uid"]}, max(MIN_KV_TTL_S, (session["expires"] - Date.now()) // 1000)
    await env.KV.put(MARKER_PREFIX + sid, json.dumps(value), expirationTtl=ttl)


async def revoke_sessions(env, sids: list[str], *, erase: bool = False) -> list[dict]:
    """Revoke (or, for account deletion, erase) sessions; returns [{sid, rooms}] whose sockets to close.

    Each object writes the revoked marker before it answers, so HTTP refuses the session before any
    socket is closed.
    """
    out = []
    for sid in sids:
        stub = session_stub(env, sid)
        result = py(await (stub.erase() if erase else stub.revoke()))
        if result.get("data"):
            out.append(result["data"])
    return out


# -- the per-session object -------------------------------------------------------------------------

def _ok(data) -> str:
    return json.dumps({"ok": True, "data": data})


def _no(code: str, message: str, **extra) -> str:
    return json.dumps(_err(code, message, **extra))


class Session(DurableObject):
    """One session: refresh-token rotation, revocation, and the rooms where it has sockets."""

    async def _get(self) -> dict | None:
        return await jget(self.ctx.storage, "session")

    async def _put(self, session: dict, *, mark: bool = True) -> None:
        await jput(self.ctx.storage, "session", session)
        await self.ctx.storage.setAlarm(session["expires"])  # forget the session when it lapses
        if mark:
            await self._mark(session)

    async def _mark(self, session: dict) -> None:
        """Mirror the state into the KV marker.  A revocation may land while a live marker is being
        written (the put lets other calls in), so the state is read again after it and a revoked
        marker written last if it changed: a live marker never outlasts a revocation."""
        sid = session["sid"]
        await _write_marker(self.env, sid, session)
        self._published = Date.now()
        if not session.get("revoked"):
            now = await self._get()
            if now is None or now.get("revoked"):
                await _write_marker(self.env, sid, None)

    async def start(self, session_json: str) -> str:
        """Called once by the Directory when the session is created."""
        session = json.loads(session_json)
        await self._put(session)
        return _ok(True)

    async def check(self, uid: str, republish: bool = False) -> str:
        """Live and belonging to `uid` (the authoritative answer for sockets; HTTP when KV had no marker)."""
        session = await self._get()
        if session is None or session.get("revoked") or session.get("uid") != uid:
            return _no("session_revoked", "session revoked")
        if republish and Date.now() - getattr(self, "_published", 0) >= REPUBLISH_MS:
            try:
                await self._mark(session)
            except Exception as error:  # KV refuses > 1 write/s per key; the next miss tries again
                print(f"session: marker not written: {error!r}")
        return _ok({"expires": session["expires"]})

    async def alive(self) -> str:
        session = await self._get()
        live = session is not None and not session.get("revoked") and session["expires"] > Date.now()
        return _ok(session["expires"] if live else None)

    async def refresh(self, token: str) -> str:
        """Rotate the refresh token; a replay of an already rotated one revokes the session."""
        session = await self._get()
        now = Date.now()
        verdict = auth.check_refresh(session, token, now)
        if verdict == "reuse":
            session["revoked"] = True
            await self._put(session)
            return _no("session_revoked", "refresh token reused; session revoked",
                       revoked=[{"sid": session["sid"], "rooms": session.get("rooms", [])}])
        if verdict != "ok":
            code = "session_revoked" if verdict == "revoked" else "refresh_invalid"
            return _no(code, f"refresh token {verdict}")
        refresh, refresh_hash = auth.new_refresh_token(session["sid"])
        session["previousHashes"] = (session["previousHashes"] + [session["refreshHash"]])[-16:]
        session["refreshHash"] = refresh_hash
        session["expires"] = now + auth.REFRESH_TTL_MS
        await self._put(session)
        return _ok({"refreshToken": refresh, "session": {k: session[k] for k in ("sid", "uid", "usr", "name", "expires")}})

    async def noteRoom(self, room: str) -> str:
        """Remember a room with a socket of this session; refused once revoked (the caller closes it)."""
        session = await self._get()
        if session is None or session.get("revoked"):
            return _no("session_revoked", "session revoked")
        if room not in session.setdefault("rooms", []):
            session["rooms"].append(room)
            await self._put(session, mark=False)  # nothing the marker shows changed
        return _ok(True)

    async def revoke(self) -> str:
        """Sign-out: {sid, rooms} to close, or null when it was already revoked."""
        session = await self._get()
        if session is None or session.get("revoked"):
            return _ok(None)
        session["revoked"] = True
        await self._put(session)
        return _ok({"sid": session["sid"], "rooms": session.get("rooms", [])})

    async def erase(self) -> str:
        """Account deletion: forget everything; {sid, rooms} to close when it was still live."""
        session = await self._get()
        await self.ctx.storage.deleteAlarm()
        await self.ctx.storage.deleteAll()
        if session is not None:
            await _write_marker(self.env, session["sid"], None)
        if session is None or session.get("revoked"):
            return _ok(None)
        return _ok({"sid": session["sid"], "rooms": session.get("rooms", [])})

    async def alarm(self, alarm_info=None) -> None:
        session = await self._get()
        if session is not None and session["expires"] > Date.now():
            await self.ctx.storage.setAlarm(session["expires"])
            return
        await self.ctx.storage.deleteAll()
