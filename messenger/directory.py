"""The Directory Durable Object: accounts, sessions, refresh tokens and JWT signing keys.

One instance ("directory") is the single writer for everything that must be consistent: a username
is taken once, a refresh token rotates exactly once (a replayed one revokes its session), and a
revoked session is refused at once by every verification.  Password hashing (the slow KDF) happens
in the stateless worker, never here, so the object stays responsive.
"""

from __future__ import annotations

import json
import secrets

from js import Date
from workers import DurableObject

import auth
import bots
from store import jget, jget_many, jlist, jput, jput_many

__all__ = ["Directory", "directory"]

MAX_PREVIOUS_HASHES = 16


def directory(env):
    """The stub of the one Directory instance."""
    return env.DIRECTORY.getByName("directory")


def _public(user: dict) -> dict:
    return {"id": user["id"], "username": user["username"], "displayName": user["displayName"]}


def _err(code: str, message: str) -> str:
    return json.dumps({"ok": False, "code": code, "message": message})


def _ok(data) -> str:
    return json.dumps({"ok": True, "data": data})


class Directory(DurableObject):
    """Accounts and sessions (RPC methods take and return JSON text, so they port unchanged)."""

    async def _ready(self) -> None:
        storage = self.ctx.storage
        if await jget(storage, "seeded"):
            return
        now = Date.now()
        batch = {"seeded": True, "keys": [auth.new_signing_key(now)]}
        for demo in auth.DEMO_ACCOUNTS:
            uid = "u" + demo["username"]
            batch[f"user:{uid}"] = {"id": uid, "username": demo["username"], "displayName": demo["displayName"],
                                    "hash": demo["hash"], "created": now, "demo": True}
            batch[f"name:{demo['username']}"] = uid
        await jput_many(storage, batch)

    async def _keys(self) -> list[dict]:
        await self._ready()
        return await jget(self.ctx.storage, "keys") or []

    # -- accounts -------------------------------------------------------------------------------

    async def createUser(self, username: str, password_hash: str, display_name: str) -> str:
        await self._ready()
        storage = self.ctx.storage
        if await jget(storage, f"name:{username}") is not None or bots.persona_by_username(username):
            return _err("conflict", "that username is taken")
        uid = "u" + secrets.token_hex(6)
        user = {"id": uid, "username": username, "displayName": display_name or username, "hash": password_hash,
                "created": Date.now()}
        await jput_many(storage, {f"user:{uid}": user, f"name:{username}": uid})
        return _ok(_public(user))

    async def credentials(self, username: str) -> str:
        """The stored hash for a sign-in check done by the worker (None-shaped when unknown)."""
        await self._ready()
        uid = await jget(self.ctx.storage, f"name:{username}")
        user = await jget(self.ctx.storage, f"user:{uid}") if uid else None
        if user is None:
            return _err("bad_credentials", "wrong username or password")
        return _ok({"id": user["id"], "hash": user["hash"]})

    async def getUser(self, uid: str) -> str:
        await self._ready()
        user = await jget(self.ctx.storage, f"user:{uid}")
        return _ok(_public(user)) if user else _err("not_found", "no such user")

    async def findUser(self, username: str) -> str:
        await self._ready()
        uid = await jget(self.ctx.storage, f"name:{username.lower()}")
        return await self.getUser(uid) if uid else _err("not_found", "no such user")

    async def listUsers(self) -> str:
        await self._ready()
        return _ok([_public(u) for _, u in await jlist(self.ctx.storage, prefix="user:")])

    async def deleteUser(self, uid: str) -> str:
        """Remove the account and revoke every session; returns the revoked sessions (for socket closing)."""
        await self._ready()
        storage = self.ctx.storage
        user = await jget(storage, f"user:{uid}")
        if user is None:
            return _err("not_found", "no such user")
        revoked = await self._revoke_all(uid)
        sessions = [f"sess:{s}" for s in await jget(storage, f"usess:{uid}") or []]
        keys = [f"user:{uid}", f"name:{user['username']}", f"usess:{uid}", *sessions]
        for i in range(0, len(keys), 128):
            await storage.delete(keys[i:i + 128])
        return _ok({"sessions": revoked})

    # -- sessions ---------------------------------------------------------------------------------

    async def _issue(self, user: dict, session: dict) -> dict:
        keys = await self._keys()
        token, exp = auth.issue_access_token(user, session["sid"], auth.current_key(keys), Date.now())
        return {"accessToken": token, "expiresAt": exp, "sessionId": session["sid"], "user": _public(user)}

    async def createSession(self, uid: str) -> str:
        """A new session for a user whose password the worker has just checked."""
        await self._ready()
        storage = self.ctx.storage
        user = await jget(storage, f"user:{uid}")
        if user is None:
            return _err("bad_credentials", "wrong username or password")
        now = Date.now()
        sid = secrets.token_hex(12)
        refresh, refresh_hash = auth.new_refresh_token(sid)
        session = {"sid": sid, "uid": uid, "refreshHash": refresh_hash, "previousHashes": [], "created": now,
                   "expires": now + auth.REFRESH_TTL_MS, "revoked": False, "rooms": []}
        # Sessions past their TTL or revoked are dropped here (the refresh-token TTL, enforced lazily).
        sessions = []
        old = await jget_many(storage, [f"sess:{s}" for s in (await jget(storage, f"usess:{uid}") or [])])
        gone = [k for k, s in old.items() if s is None or s.get("revoked") or s.get("expires", 0) <= now]
        sessions = [k[len("sess:"):] for k in old if k not in gone]
        if gone:
            await storage.delete(gone)
        sessions.append(sid)
        await jput_many(storage, {f"sess:{sid}": session, f"usess:{uid}": sessions})
        out = await self._issue(user, session)
        out["refreshToken"] = refresh
        return _ok(out)

    async def refresh(self, token: str) -> str:
        """Rotate a refresh token; a replay of an already-rotated one revokes the whole session."""
        await self._ready()
        storage = self.ctx.storage
        sid = auth.refresh_session_id(token)
        session = await jget(storage, f"sess:{sid}") if sid else None
        verdict = auth.check_refresh(session, token, Date.now())
        if verdict == "reuse":
            session["revoked"] = True
            await jput(storage, f"sess:{sid}", session)
            return json.dumps({"ok": False, "code": "session_revoked", "message": "refresh token reused; session revoked",
                               "revoked": [{"sid": sid, "rooms": session.get("rooms", [])}]})
        if verdict != "ok":
            code = "session_revoked" if verdict == "revoked" else "refresh_invalid"
            return _err(code, f"refresh token {verdict}")
        user = await jget(storage, f"user:{session['uid']}")
        if user is None:
            return _err("refresh_invalid", "refresh token invalid")
        refresh, refresh_hash = auth.new_refresh_token(sid)
        session["previousHashes"] = (session["previousHashes"] + [session["refreshHash"]])[-MAX_PREVIOUS_HASHES:]
        session["refreshHash"] = refresh_hash
        session["expires"] = Date.now() + auth.REFRESH_TTL_MS
        await jput(storage, f"sess:{sid}", session)
        out = await self._issue(user, session)
        out["refreshToken"] = refresh
        return _ok(out)

    async def verify(self, token: str) -> str:
        """Claims of a valid access token whose session is live, else an error (auth_* / session_revoked)."""
        keys = await self._keys()
        try:
            claims = auth.verify_access_token(token, keys, Date.now())
        except auth.AuthError as error:
            return _err(error.code, error.message)
        session = await jget(self.ctx.storage, f"sess:{claims['sid']}")
        if session is None or session.get("revoked") or session.get("uid") != claims["sub"]:
            return _err("session_revoked", "session revoked")
        return _ok(claims)

    async def noteRoom(self, sid: str, room: str) -> str:
        """Remember that a session has sockets in `room`, so revocation can close them."""
        session = await jget(self.ctx.storage, f"sess:{sid}")
        if session is None or session.get("revoked"):
            # Revoked after the socket's token was verified: the revocation already closed the rooms
            # it knew of, so the caller must close this socket itself.
            return _err("session_revoked", "session revoked")
        if room not in session.setdefault("rooms", []):
            session["rooms"].append(room)
            await jput(self.ctx.storage, f"sess:{sid}", session)
        return _ok(True)

    async def _revoke(self, sid: str) -> dict | None:
        session = await jget(self.ctx.storage, f"sess:{sid}")
        if session is None or session.get("revoked"):
            return None
        session["revoked"] = True
        await jput(self.ctx.storage, f"sess:{sid}", session)
        return {"sid": sid, "rooms": session.get("rooms", [])}

    async def _revoke_all(self, uid: str) -> list[dict]:
        out = []
        for sid in await jget(self.ctx.storage, f"usess:{uid}") or []:
            revoked = await self._revoke(sid)
            if revoked is not None:
                out.append(revoked)
        return out

    async def revoke(self, uid: str, sid: str, everywhere: bool) -> str:
        """Sign out this session or every session of the user; returns what to close."""
        await self._ready()
        if everywhere:
            return _ok(await self._revoke_all(uid))
        revoked = await self._revoke(sid)  # the record stays (listed) until pruned, so verify says "revoked"
        return _ok([revoked] if revoked else [])

    # -- signing keys -----------------------------------------------------------------------------

    async def rotateKeys(self) -> str:
        """Cron: a new signing key; the old one verifies for one more token lifetime."""
        keys = auth.rotate_keys(await self._keys(), Date.now())
        await jput(self.ctx.storage, "keys", keys)
        return _ok([k["kid"] for k in keys])

    async def keyIds(self) -> str:
        return _ok([{"kid": k["kid"], "retired": k["retired"]} for k in await self._keys()])

    async def sessionCount(self, uid: str) -> str:
        sids = await jget(self.ctx.storage, f"usess:{uid}") or []
        sessions = await jget_many(self.ctx.storage, [f"sess:{s}" for s in sids])
        return _ok(sum(1 for s in sessions.values() if s and not s.get("revoked")))
