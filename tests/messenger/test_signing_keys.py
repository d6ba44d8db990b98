"""Asymmetric access-token keys: private halves only in the Directory's storage, public halves in KV,
rotation and removal on the virtual clock, and the switch from state that held HS256 secrets."""

from __future__ import annotations

import base64
import json

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger_client import api, login

ROTATE_CRON = "0 */6 * * *"
TTL_S = 20 * 60
PUBLIC_FIELDS = {"kid", "kty", "crv", "alg", "x", "created", "retired"}


def _stored_keys(rt) -> list[dict]:
    keys = rt.storage("DIRECTORY", "directory").get("keys")
    return json.loads(keys) if isinstance(keys, str) else keys


async def _published(rt) -> list[dict]:
    return json.loads(await rt.env.KV.get("auth:keys"))


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def _sign_with(private_b64: str, kid: str, session: dict, exp_s: int) -> str:
    """A token as the Directory would sign it, but with a chosen key and expiry."""
    claims = jwt.decode(session["accessToken"], options={"verify_signature": False})
    private = Ed25519PrivateKey.from_private_bytes(_unb64u(private_b64))
    return jwt.encode({**claims, "exp": exp_s}, private, algorithm="EdDSA", headers={"kid": kid})


async def test_kv_holds_only_public_keys(rt):
    s = await login(rt, "alice")
    assert await rt.scheduled(ROTATE_CRON)  # two key pairs now, both published
    stored = _stored_keys(rt)
    assert len(stored) == 2 and all(k["alg"] == "EdDSA" and k["private"] for k in stored)
    raw = await rt.env.KV.get("auth:keys")
    published = json.loads(raw)
    assert [k["kid"] for k in published] == [k["kid"] for k in stored]
    for record, key in zip(published, stored):
        assert set(record) == PUBLIC_FIELDS
        assert record["kty"] == "OKP" and record["crv"] == "Ed25519" and record["alg"] == "EdDSA"
        public = Ed25519PrivateKey.from_private_bytes(_unb64u(key["private"])).public_key().public_bytes_raw()
        assert _unb64u(record["x"]) == public
    # No private key, in any encoding, anywhere in the namespace.
    listed = await rt.env.KV.list()
    everything = " ".join([raw] + [await rt.env.KV.get(k["name"]) or "" for k in listed["keys"]])
    for key in stored:
        private = _unb64u(key["private"])
        for form in (key["private"], base64.b64encode(private).decode(), private.hex()):
            assert form not in everything
    assert "private" not in raw and "secret" not in raw and '"d"' not in raw
    # The worker verifies with exactly what is published.
    assert (await api(rt, "GET", "/api/me", s["accessToken"]))["username"] == "alice"


async def test_rotation_publishes_the_new_key_and_the_old_one_verifies_for_exactly_one_token_lifetime(rt):
    s = await login(rt, "alice")
    old_kid = _kid(s["accessToken"])
    old_private = _stored_keys(rt)[0]["private"]
    await rt.advance(5 * 60)
    assert await rt.scheduled(ROTATE_CRON)
    published = await _published(rt)
    assert [k["kid"] for k in published][0] == old_kid and len(published) == 2
    retired_ms = published[0]["retired"]
    assert retired_ms == int(rt.now() * 1000) and published[1]["retired"] is None
    new_kid = published[1]["kid"]
    # New tokens are signed with the new key; tokens of the old key still pass.
    s2 = await login(rt, "alice")
    assert _kid(s2["accessToken"]) == new_kid
    assert (await api(rt, "GET", "/api/me", s["accessToken"]))["username"] == "alice"
    # A token of the old key that outlives it (as if it had been issued just before the rotation with a
    # long expiry) shows the key's own lifetime: accepted up to one token lifetime after retirement...
    long_lived = _sign_with(old_private, old_kid, s, exp_s=retired_ms // 1000 + 3 * TTL_S)
    await rt.advance(TTL_S - 1)
    assert (await api(rt, "GET", "/api/me", long_lived))["username"] == "alice"
    assert [k["kid"] for k in await _published(rt)] == [old_kid, new_kid]
    # ...and not a second longer: the Directory's alarm removes it from its storage and from KV.
    await rt.advance(1)
    assert int(rt.now() * 1000) == retired_ms + TTL_S * 1000
    assert [k["kid"] for k in await _published(rt)] == [new_kid]
    assert [k["kid"] for k in _stored_keys(rt)] == [new_kid]
    err = await api(rt, "GET", "/api/me", long_lived, expect=401)
    assert err["error"] == {"code": "auth_invalid", "message": "access token signed with an unknown or retired key"}
    # The new key keeps signing and verifying.
    s3 = await login(rt, "alice")
    assert _kid(s3["accessToken"]) == new_kid
    assert (await api(rt, "GET", "/api/me", s3["accessToken"]))["username"] == "alice"


async def test_a_removed_key_is_refused_even_by_an_isolate_that_still_caches_it(rt):
    s = await login(rt, "alice")
    old_kid = _kid(s["accessToken"])
    old_private = _stored_keys(rt)[0]["private"]
    assert await rt.scheduled(ROTATE_CRON)
    forged = _sign_with(old_private, old_kid, s, exp_s=int(rt.now()) + 10 * TTL_S)
    assert (await api(rt, "GET", "/api/me", forged))["username"] == "alice"  # still inside its lifetime
    sessions_mod = rt.worker_module("sessions")
    await rt.advance(TTL_S)
    # Put the retired key back into this isolate's cache, as a location whose KV has not caught up would.
    cached = sessions_mod._KEYS["keys"]
    assert old_kid in [k["kid"] for k in cached]
    sessions_mod._KEYS["at"] = int(rt.now() * 1000)
    err = await api(rt, "GET", "/api/me", forged, expect=401)
    assert err["error"]["code"] == "auth_invalid"


async def test_state_with_hs256_secrets_gets_a_new_key_pair_and_old_tokens_are_refused(rt, monkeypatch):
    s = await login(rt, "alice")
    directory_mod = rt.worker_module("directory")
    old = {"kid": "kold0123456", "secret": base64.b64encode(b"s" * 32).decode(), "created": 1, "retired": None}

    async def plant(self):
        # What the Directory and KV held before keys became Ed25519.
        await self.ctx.storage.put("keys", json.dumps([old]))
        await self.env.KV.put("auth:keys", json.dumps([old]))
        return "{}"

    monkeypatch.setattr(directory_mod.Directory, "plantOldKeys", plant, raising=False)
    await rt.env.DIRECTORY.getByName("directory").plantOldKeys()
    claims = jwt.decode(s["accessToken"], options={"verify_signature": False})
    old_token = jwt.encode(claims, b"s" * 32, algorithm="HS256", headers={"kid": old["kid"]})
    await rt.restart()

    err = await api(rt, "GET", "/api/me", old_token, expect=401)
    assert err["error"]["code"] == "auth_invalid"
    # That first look at the keys found old records in KV and had the Directory replace them.
    raw = await rt.env.KV.get("auth:keys")
    assert old["secret"] not in raw and "secret" not in raw
    stored = _stored_keys(rt)
    assert len(stored) == 1 and stored[0]["alg"] == "EdDSA" and stored[0]["kid"] != old["kid"]
    assert [k["kid"] for k in json.loads(raw)] == [stored[0]["kid"]]
    # The refresh token (held by the session's own object) still works: no new password needed.
    refreshed = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": s["refreshToken"]})
    assert _kid(refreshed["accessToken"]) == stored[0]["kid"]
    assert (await api(rt, "GET", "/api/me", refreshed["accessToken"]))["username"] == "alice"
    assert (await login(rt, "bob"))["user"]["username"] == "bob"
    await api(rt, "GET", "/api/me", old_token, expect=401)


async def test_sign_in_after_migration_through_the_directory_first(rt, monkeypatch):
    """The Directory may be the first to meet the old records (a sign-in before any verification)."""
    directory_mod = rt.worker_module("directory")
    old = {"kid": "kold0123456", "secret": base64.b64encode(b"t" * 32).decode(), "created": 1, "retired": None}

    async def plant(self):
        await self.ctx.storage.put("keys", json.dumps([old]))
        await self.env.KV.put("auth:keys", json.dumps([old]))
        return "{}"

    monkeypatch.setattr(directory_mod.Directory, "plantOldKeys", plant, raising=False)
    await rt.env.DIRECTORY.getByName("directory").plantOldKeys()
    await rt.restart()
    s = await login(rt, "carol")
    raw = await rt.env.KV.get("auth:keys")
    assert "secret" not in raw and [k["kid"] for k in json.loads(raw)] == [_kid(s["accessToken"])]
    assert (await api(rt, "GET", "/api/me", s["accessToken"]))["username"] == "carol"
