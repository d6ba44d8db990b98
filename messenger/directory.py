"""The Directory Durable Object: accounts, each user's list of session ids, and JWT signing keys.

One instance ("directory") is the single writer for what must be consistent across users: a username
is taken once, signing keys rotate once.  It is the only holder of the Ed25519 private keys (in its
storage, never in KV or the worker): it signs every access token, and publishes only the public keys
to KV for the worker to verify with.  Only rare operations reach it (register, sign-in, token refresh,
sign out everywhere, account deletion, the user list, key rotation): token verification, refresh
rotation and revocation live in the worker and the per-session `Session` objects (sessions.py).  Password hashing
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
        keys = await jget(self.ctx.storage, "keys") or []
        if not keys or not all(auth.is_signing_key(k) for k in keys):
            # State from before Ed25519 holds HS256 secrets: replace them with a new key pair.  Tokens
            # signed with the old secrets no longer verify (their kids are gone, and only EdDSA is
            # accepted), so their holders sign in again; refresh tokens keep working.
            keys = [auth.new_signing_key(Date.now())]
            await jput(self.ctx.storage, "keys", keys)
            await self._publish(keys)
        return keys

    def _tokens(self, keys: list[dict], session: dict) -> dict:
        """A fresh access token for a session record ({sid, uid, usr, name}), signed with the current key."""
        now = Date.now()
        user = {"id": session["uid"], "username": session["usr"], "displayName": session["name"]}
        token, exp = auth.issue_access_token(user, session["sid"], auth.current_key(keys), now)
        return {"accessToken": token, "expiresAt": exp, "sessionId": session["sid"], "user": user}

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
        return _ok({"sessions": sids, "username": user["username"]})

    # -- sessions ---------------------------------------------------------------------------------

    async def createSession(self, uid: str) -> str:
        """A new session (its own `Session` object) for a user whose password the worker has just checked.

        Only the list of a user's session ids stays here, for "sign out everywhere" and account deletion;
        the first access token is signed here too.
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
                    "refreshToken": refresh, "tokens": self._tokens(await self._keys(), session)})

    async def issueToken(self, session_json: str) -> str:
        """An access token for a session its `Session` object has just refreshed (the worker cannot sign)."""
        return _ok(self._tokens(await self._keys(), json.loads(session_json)))

    async def sessionsOf(self, uid: str) -> str:
        """The user's session ids (sign out everywhere)."""
        return _ok(_sids(await jget(self.ctx.storage, f"usess:{uid}")))

    # -- signing keys -----------------------------------------------------------------------------

    async def _publish(self, keys: list[dict]) -> None:
        # Only the public halves: the worker verifies with them (see sessions.signing_keys); reading KV
        # must never be enough to mint a token.
        await self.env.KV.put(KEYS_KV, json.dumps(auth.public_keys(keys)))
        self._republished = True

    async def publishKeys(self) -> str:
        """The public keys, published again (a deployment whose KV has none yet, or old HS256 records)."""
        self._republished = False
        keys = await self._keys()
        if not self._republished:  # (a migration or a fresh seed has just published them)
            await self._publish(keys)
        return _ok(auth.public_keys(keys))

    async def rotateKeys(self) -> str:
        """Cron: a new key pair signs from now on; the old public key verifies for one more token
        lifetime, after which the alarm removes it (from storage and from KV)."""
        now = Date.now()
        keys = auth.rotate_keys(await self._keys(), now)
        await jput(self.ctx.storage, "keys", keys)
        await self._publish(keys)
        await self.ctx.storage.setAlarm(now + auth.ACCESS_TTL_MS)
        return _ok([k["kid"] for k in keys])

    async def alarm(self, alarm_info=None) -> None:
        """One token lifetime after a rotation: drop the retired key, publish what is left."""
        now = Date.now()
        keys = await self._keys()
        kept = auth.prune_keys(keys, now)
        if len(kept) != len(keys):
            await jput(self.ctx.storage, "keys", kept)
            await self._publish(kept)
        retired = [k["retired"] for k in kept if k.get("retired") is not None]
        if retired:  # a key still inside its lifetime (two rotations close together): come back for it
            await self.ctx.storage.setAlarm(min(retired) + auth.ACCESS_TTL_MS)

    async def keyIds(self) -> str:
        return _ok([{"kid": k["kid"], "retired": k["retired"]} for k in await self._keys()])
