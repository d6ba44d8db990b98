"""Envelope keys for message bodies: AES-256-GCM data keys, wrapped by a master key from a secret.

Data keys are random 32-byte AES-256-GCM keys, one generation at a time (the newest is current),
stored only wrapped (AES-256-GCM under the master key, with the data key's id as associated data) in
the D1 table `message_keys`, so the worker (search) and every ChatRoom read the same ring.  The
master key is the secret `MESSAGE_MASTER_KEY` (base64 of 32 bytes); during a master-key rotation the
previous one is given as `MESSAGE_MASTER_KEY_PREVIOUS`, and `rewrap` moves every data key under the
new one.  Without the secret a fixed, public development key is used and a warning is logged: fine
for `cfemu dev`, never for production.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from js import Date

__all__ = ["Keyring", "KeyError_", "keyring", "master_keys", "rotate", "rewrap", "DEV_MASTER_KEY", "KEYS_SCHEMA"]

# Public on purpose (it is in the source): only for local development without secrets.
DEV_MASTER_KEY = hashlib.sha256(b"cf-messenger local development master key (not secret)").digest()
KEYS_SCHEMA = ("CREATE TABLE IF NOT EXISTS message_keys (kid TEXT PRIMARY KEY, mkid TEXT NOT NULL, "
               "wrapped TEXT NOT NULL, created INTEGER NOT NULL)")
_DEV_ID = "mk-" + hashlib.sha256(b"cf-messenger master key id:" + DEV_MASTER_KEY).hexdigest()[:12]
REFRESH_MS = 60_000       # how long an isolate trusts its copy of the ring (a rotation elsewhere shows up after)
_warned = False
_cache: dict = {}         # (id of the env, master ids) -> Keyring


class KeyError_(ValueError):
    """A key is missing, unusable or badly configured (message names which)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _master_id(key: bytes) -> str:
    """A public fingerprint of a master key (which one wrapped a data key), never the key."""
    return "mk-" + hashlib.sha256(b"cf-messenger master key id:" + key).hexdigest()[:12]


def _parse_master(name: str, value) -> bytes:
    try:
        key = _unb64(str(value).strip())
    except ValueError:
        raise KeyError_(f"{name} is not valid base64") from None
    if len(key) != 32:
        raise KeyError_(f"{name} must be 32 bytes (base64), got {len(key)}")
    return key


def master_keys(env) -> tuple[str, dict[str, bytes]]:
    """(current master id, {master id: key}) from the secrets (the development key without them)."""
    global _warned
    raw = getattr(env, "MESSAGE_MASTER_KEY", None)
    if raw:
        current = _parse_master("MESSAGE_MASTER_KEY", raw)
    else:
        if not _warned:
            print("messenger: MESSAGE_MASTER_KEY is not set: message bodies are encrypted with the public "
                  "LOCAL DEVELOPMENT master key; set the secret in production")
            _warned = True
        current = DEV_MASTER_KEY
    keys = {_master_id(current): current}
    previous = getattr(env, "MESSAGE_MASTER_KEY_PREVIOUS", None)
    if previous:
        for part in str(previous).split(","):
            if part.strip():
                old = _parse_master("MESSAGE_MASTER_KEY_PREVIOUS", part)
                keys.setdefault(_master_id(old), old)
    if raw:  # bodies written before the secret was set were wrapped by the development key
        keys.setdefault(_master_id(DEV_MASTER_KEY), DEV_MASTER_KEY)
    return _master_id(current), keys


def _wrap_aad(kid: str, sealing: bool = True) -> bytes:
    # A key re-wrapped from the public development key is marked "read only" in its associated data:
    # anyone could have made it, so it opens old bodies but never seals new ones.
    return (b"cf-messenger data key:" if sealing else b"cf-messenger data key (read only):") + kid.encode()


def _wrap(master: bytes, kid: str, key: bytes, sealing: bool = True) -> str:
    nonce = os.urandom(12)
    return _b64(nonce + AESGCM(master).encrypt(nonce, key, _wrap_aad(kid, sealing)))


def _unwrap(master: bytes, kid: str, wrapped: str) -> bytes:
    return _unwrap_marked(master, kid, wrapped)[0]


def _unwrap_marked(master: bytes, kid: str, wrapped: str) -> tuple[bytes, bool]:
    """(data key, may it seal?): a key wrapped as read only opens bodies but never seals."""
    raw = _unb64(wrapped)
    aead = AESGCM(master)
    try:
        return aead.decrypt(raw[:12], raw[12:], _wrap_aad(kid)), True
    except Exception:
        return aead.decrypt(raw[:12], raw[12:], _wrap_aad(kid, sealing=False)), False


class Keyring:
    """The data keys this isolate can use: `current` (kid) seals, any known kid opens."""

    def __init__(self) -> None:
        self.keys: dict[str, AESGCM] = {}
        self.current: str | None = None
        self.loaded_at = -1
        self.unusable: dict[str, str] = {}   # kid -> why (wrapped by a master key we do not have, ...)
        self.tried: dict[str, int] = {}      # kid -> when a reload last failed to find it
        self.read_only: set[str] = set()     # kids that open bodies but never seal (see _wrap_aad)
        self.env = None

    def aead(self, kid: str) -> AESGCM:
        key = self.keys.get(kid)
        if key is None:
            why = self.unusable.get(kid, "unknown key id")
            raise KeyError_(f"data key {kid!r} is not available: {why}")
        return key

    def add(self, kid: str, key: bytes) -> None:
        self.keys[kid] = AESGCM(key)
        self.unusable.pop(kid, None)


def _rows(result) -> list[dict]:
    if hasattr(result, "to_py"):
        result = result.to_py()
    rows = result["results"] if isinstance(result, dict) else result.results
    return [dict(r.to_py() if hasattr(r, "to_py") else r) for r in rows]


async def _select(db, sql: str, *params) -> list[dict]:
    try:
        return _rows(await db.prepare(sql).bind(*params).all())
    except Exception as error:
        if "no such table" not in str(error):
            raise
        await db.prepare(KEYS_SCHEMA).run()
        return _rows(await db.prepare(sql).bind(*params).all())


async def _load(env, ring: Keyring) -> None:
    db = env.DB
    current_mk, masters = master_keys(env)
    rows = await _select(db, "SELECT kid, mkid, wrapped, created FROM message_keys ORDER BY created, kid")
    for row in rows:
        if row["kid"] in ring.keys:
            continue
        master = masters.get(row["mkid"])
        if master is None:
            ring.unusable[row["kid"]] = f"wrapped by master key {row['mkid']}, which is not configured"
            continue
        try:
            key, sealing = _unwrap_marked(master, row["kid"], row["wrapped"])
        except Exception:
            ring.unusable[row["kid"]] = f"its wrapping does not open with master key {row['mkid']}"
            continue
        ring.add(row["kid"], key)
        if not sealing or row["mkid"] == _DEV_ID and current_mk != _DEV_ID:
            ring.read_only.add(row["kid"])
    # Only a key wrapped by the current master seals: one wrapped by the (public) development key or
    # an old master, or slipped into the table by someone without the master key, is only ever read
    # (also once re-wrapped: a key that came from the development key stays read only).
    usable = [r["kid"] for r in rows if r["kid"] in ring.keys and r["mkid"] == current_mk
              and r["kid"] not in ring.read_only]
    ring.current = usable[-1] if usable else None
    ring.loaded_at = Date.now()


def _slot(env) -> Keyring:
    """The ring cached for this env (a Durable Object's env lives as long as the object; the worker's
    may be per request).  The ring holds the env, so its id cannot be reused by another runtime's."""
    current_mk, masters = master_keys(env)
    slot = (id(env), tuple(sorted(masters)))
    ring = _cache.get(slot)
    if ring is None or ring.env is not env:
        if len(_cache) >= 256:
            _cache.clear()
        ring = _cache[slot] = Keyring()
        ring.env = env
    return ring


async def keyring(env, want=(), fresh: bool = False) -> Keyring:
    """This isolate's ring, re-read from D1 when stale (or `fresh` asked), when a wanted kid is unknown,
    or to create the first data key."""
    ring = _slot(env)
    now = Date.now()
    # A kid this isolate has not seen is looked up at once; one already looked up in vain, at most
    # once a second (a body naming a bogus kid must not cost a D1 query per read).
    missing = [k for k in want if k and k not in ring.keys and now - ring.tried.get(k, -10_000) >= 1_000]
    if fresh or ring.current is None or now - ring.loaded_at >= REFRESH_MS or missing:
        await _load(env, ring)
        for kid in missing:
            if kid not in ring.keys:
                if len(ring.tried) > 1024:
                    ring.tried.clear()
                ring.tried[kid] = now
    if ring.current is None:
        await rotate(env, ring)
    return ring


async def rotate(env, ring: Keyring | None = None) -> str:
    """A new data key generation, wrapped by the current master key; it seals from now on (older
    generations stay for reading).  Returns its kid."""
    current_mk, masters = master_keys(env)
    now = Date.now()
    # `created` orders the generations (the newest seals): strictly increasing even when two rotations
    # fall in the same millisecond.
    last = await _select(env.DB, "SELECT max(created) AS c FROM message_keys")
    created = max(int(now), int(last[0]["c"] or 0) + 1) if last and last[0]["c"] is not None else int(now)
    kid = f"dk-{created}-{secrets.token_hex(4)}"
    key = AESGCM.generate_key(bit_length=256)
    await env.DB.prepare("INSERT INTO message_keys (kid, mkid, wrapped, created) VALUES (?,?,?,?)").bind(
        kid, current_mk, _wrap(masters[current_mk], kid, key), created).run()
    print(f"messenger: new message data key {kid} (wrapped by {current_mk})")
    ring = ring or _slot(env)
    ring.add(kid, key)
    await _load(env, ring)
    return kid


async def rewrap(env) -> dict:
    """Master-key rotation: every data key wrapped by another (configured) master key is wrapped again
    by the current one.  {"rewrapped": n, "unusable": [kids whose master key is not configured]}."""
    current_mk, masters = master_keys(env)
    rows = await _select(env.DB, "SELECT kid, mkid, wrapped FROM message_keys WHERE mkid != ?", current_mk)
    done, unusable = 0, []
    for row in rows:
        master = masters.get(row["mkid"])
        try:
            key, sealing = _unwrap_marked(master, row["kid"], row["wrapped"]) if master else (None, False)
        except Exception:
            key = None
        if key is None:
            unusable.append(row["kid"])
            continue
        if row["mkid"] == _DEV_ID:
            # The development key is public: whoever wrote this row may know the key.  Kept for reading
            # the bodies it sealed (made before the secret was set), never for sealing new ones.
            sealing = False
            print(f"messenger: data key {row['kid']} was wrapped by the public development master key; "
                  "re-wrapped for reading old messages only")
        await env.DB.prepare("UPDATE message_keys SET mkid = ?, wrapped = ? WHERE kid = ? AND mkid = ?").bind(
            current_mk, _wrap(masters[current_mk], row["kid"], key, sealing), row["kid"], row["mkid"]).run()
        done += 1
    if unusable:
        print(f"messenger: data keys {unusable} are wrapped by a master key that is not configured")
    return {"rewrapped": done, "unusable": unusable}


async def current_age_ms(env) -> int | None:
    """How old the current data key generation is (None: none yet)."""
    rows = await _select(env.DB, "SELECT max(created) AS c FROM message_keys")
    return None if not rows or rows[0]["c"] is None else int(Date.now() - rows[0]["c"])
