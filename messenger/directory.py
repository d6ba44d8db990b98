"""The Directory Durable Object: accounts, each user's list of session ids, and JWT signing keys.

One instance ("directory") is the single writer for what must be consistent across users: a username
is taken once, signing keys rotate once.  Only rare operations reach it (register, sign-in, sign out
everywhere, account deletion, the user list, key rotation): token verification, refresh rotation and
revocation live in the worker and the per-session `Session` objects (sessions.py).  Password hashing
(the slow KDF) happens in the stateless worker, never here, so the object stays responsive.
"""

from __future__ import annotations

import json
import secrets

from js import Date
from workers import DurableObject

import auth
import bots
from sessions import KEYS_KV, session_stub
from store import jget, jlist, jput, jput_many, py

__all__ = ["Directory", "directory"]

MAX_PREVIOUS_HASHES = 16


def directory(env):
    """The stub of the one Directory instance."""
    return env.DIRECTORY.getByName("directory")


def _public(user: dict) -> dict:
    return {"id": user["id"], "username": user["username"], "displayName": user["displayName"]}


def _sids(entries) -> list[str]:
    """Session ids of a `usess:` list ({sid, expires} entries; bare ids from before Session objects)."""
    return [e["sid"] if isinstance(e, dict) else e for e in entries or []]


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
        keys = [auth.new_signing_key(now)]
        batch = {"seeded": True, "keys": keys}
        for demo in auth.DEMO_ACCOUNTS:
            uid = "u" + demo["username"]
            batch[f"user:{uid}"] = {"id": uid, "username": demo["username"], "displayName": demo["displayName"],
                                    "hash": demo["hash"], "created": now, "demo": True}
            batch[f"name:{demo['username']}"] = uid
        await jput_many(storage, batch)
        await self._publish(keys)

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
        """Remove the account; returns its session ids (the worker erases them and closes their sockets)."""
        await self._ready()
        storage = self.ctx.storage
        user = await jget(storage, f"user:{uid}")
        if user is None:
            return _err("not_found", "no such user")
        sids = _sids(await jget(storage, f"usess:{uid}"))
        # `sess:` records were written before sessions had their own objects (nothing reads them now).
        await storage.delete([f"user:{uid}", f"name:{user['username']}", f"usess:{uid}", *(f"sess:{s}" for s in sids)])
        return _ok({"sessions": sids})

    # -- sessions ---------------------------------------------------------------------------------

    async def createSession(self, uid: str) -> str:
        """A new session (its own `Session` object) for a user whose password the worker has just checked.

        Only the list of a user's session ids stays here, for "sign out everywhere" and account deletion;
        the worker signs the access token itself.
        """
        await self._ready()
        storage = self.ctx.storage
        user = await jget(storage, f"user:{uid}")
        if user is None:
            return _err("bad_credentials", "wrong username or password")
        now = Date.now()
        sid = secrets.token_hex(12)
        refresh, refresh_hash = auth.new_refresh_token(sid)
        session = {"sid": sid, "uid": uid, "usr": user["username"], "name": user["displayName"],
                   "refreshHash": refresh_hash, "previousHashes": [], "created": now,
                   "expires": now + auth.REFRESH_TTL_MS, "revoked": False, "rooms": []}
        await session_stub(self.env, sid).start(json.dumps(session))  # it writes its KV marker too
        # Sessions past their recorded expiry are dropped from the list unless their object says a
        # refresh extended them (the refresh-token TTL, enforced lazily).
        kept = []
        for entry in await jget(storage, f"usess:{uid}") or []:
            if not isinstance(entry, dict):
                continue  # a session id from before sessions had their own objects: it can do nothing now
            if entry["expires"] <= now:
                expires = py(await session_stub(self.env, entry["sid"]).alive())["data"]
                if expires is None:
                    continue
                entry = {"sid": entry["sid"], "expires": expires}
            kept.append(entry)
        kept.append({"sid": sid, "expires": session["expires"]})
        await jput(storage, f"usess:{uid}", kept)
        return _ok({"session": {k: session[k] for k in ("sid", "uid", "usr", "name", "expires")},
                    "refreshToken": refresh})

    async def sessionsOf(self, uid: str) -> str:
        """The user's session ids (sign out everywhere)."""
        return _ok(_sids(await jget(self.ctx.storage, f"usess:{uid}")))

    # -- signing keys -----------------------------------------------------------------------------

    async def _publish(self, keys: list[dict]) -> None:
        # The worker verifies and signs tokens with what it reads here (see sessions.signing_keys).
        await self.env.KV.put(KEYS_KV, json.dumps(keys))

    async def publishKeys(self) -> str:
        """The keys, published again (a deployment whose KV has none yet)."""
        keys = await self._keys()
        await self._publish(keys)
        return _ok(keys)

    async def rotateKeys(self) -> str:
        """Cron: a new signing key; the old one verifies for one more token lifetime."""
        keys = auth.rotate_keys(await self._keys(), Date.now())
        await jput(self.ctx.storage, "keys", keys)
        await self._publish(keys)
        return _ok([k["kid"] for k in keys])

    async def keyIds(self) -> str:
        return _ok([{"kid": k["kid"], "retired": k["retired"]} for k in await self._keys()])
