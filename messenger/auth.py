"""Passwords, access tokens, signing keys and refresh tokens: the pure parts of sign-in.

Nothing here touches storage or reads the wall clock: callers pass `now_ms` (from `js.Date.now()`),
because pyjwt's own expiry check reads real time, which the tests' virtual clock cannot move.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ACCESS_TTL_MS", "REFRESH_TTL_MS", "AuthError", "DEMO_ACCOUNTS",
    "hash_password", "verify_password", "new_signing_key", "is_signing_key", "public_key_record", "public_keys",
    "key_usable", "prune_keys", "rotate_keys", "current_key",
    "issue_access_token", "verify_access_token", "new_refresh_token", "hash_refresh_token",
    "refresh_session_id", "check_refresh", "USERNAME_RE",
]

ACCESS_TTL_MS = 20 * 60 * 1000          # access tokens live 20 minutes
REFRESH_TTL_MS = 7 * 24 * 3600 * 1000   # a refresh token (and its session) lives a week unless rotated
ISSUER = "cf-messenger"
ALGORITHM = "EdDSA"                     # Ed25519; the only algorithm verification accepts
USERNAME_RE = r"^[a-z][a-z0-9_]{2,23}$"

# Modest scrypt cost: ~50 ms and 16 MiB per hash, affordable inside a Worker's CPU budget.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2 ** 14, 8, 1, 32

# Seeded demo accounts (password = "<username>-demo"); hashes were computed once, offline, with the
# parameters above so that starting a fresh state (every test) does not pay the KDF.
DEMO_ACCOUNTS = [
    {"username": "alice", "displayName": "Alice",
     "hash": "scrypt$16384$8$1$9gmE/7+YOMrSW0I+9gPXRA==$1JXQpQgLetJEEn2IsIi206xi/8odI/7912fzmDC6HnU="},
    {"username": "bob", "displayName": "Bob",
     "hash": "scrypt$16384$8$1$pD6feaOHzK00Tx6t48HG1A==$Xur18KRgS+Ukyea2QXwrX7x5VVFkKMWkrl/DJ0P7qxY="},
    {"username": "carol", "displayName": "Carol",
     "hash": "scrypt$16384$8$1$+jQObtUKXRB0hdytW72HNA==$TGvDlWcEJy9M4qjTIzzk0FnQKJiomLqAW+cpbMQnZhs="},
    {"username": "dave", "displayName": "Dave",
     "hash": "scrypt$16384$8$1$hNdwwZcsVge0RuiKbMH2mA==$HTXAbGm+XHXqVran3KrYDtc28hPqzwxBYafbmf2VgL8="},
]


class AuthError(Exception):
    """A credential was refused; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    if hasattr(hashlib, "scrypt"):
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=64 * 1024 * 1024)
    # A Python built without OpenSSL's scrypt (possible in Pyodide): the same KDF from `cryptography`.
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=length, n=n, r=r, p=p).derive(password.encode())


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` for a new password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored `scrypt$...` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# -- signing keys -----------------------------------------------------------------------------
#
# Ed25519: the private half stays in the Directory's storage (the one object that signs); KV and the
# worker only ever see the public half, so reading the namespace does not let anyone mint tokens.

def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_signing_key(now_ms: int) -> dict:
    """A fresh Ed25519 key record: {kid, alg, private, x, created, retired} (private: raw, base64url)."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kid": "k" + secrets.token_hex(6), "alg": ALGORITHM, "private": _b64u(raw), "x": _b64u(public),
            "created": now_ms, "retired": None}


def is_signing_key(key: object) -> bool:
    """An Ed25519 record this version can sign with (state from before it holds HS256 secrets)."""
    return isinstance(key, dict) and key.get("alg") == ALGORITHM and isinstance(key.get("private"), str)


def public_key_record(key: dict) -> dict:
    """What may be published: a JWK-shaped public key (OKP/Ed25519) plus its kid and lifetime."""
    return {"kid": key["kid"], "kty": "OKP", "crv": "Ed25519", "alg": ALGORITHM, "x": key["x"],
            "created": key["created"], "retired": key.get("retired")}


def public_keys(keys: list[dict]) -> list[dict]:
    """The publishable halves of every key still able to verify."""
    return [public_key_record(k) for k in keys]


def key_usable(key: dict, now_ms: int) -> bool:
    """A key verifies tokens while current, and for one token lifetime after it was retired."""
    retired = key.get("retired")
    return retired is None or now_ms - retired < ACCESS_TTL_MS


def current_key(keys: list[dict]) -> dict | None:
    """The key that signs new tokens (the newest not retired)."""
    live = [k for k in keys if k.get("retired") is None]
    return max(live, key=lambda k: k["created"]) if live else None


def prune_keys(keys: list[dict], now_ms: int) -> list[dict]:
    """The keys that can still verify something (retired ones go after one token lifetime)."""
    return [k for k in keys if key_usable(k, now_ms)]


def rotate_keys(keys: list[dict], now_ms: int) -> list[dict]:
    """Retire the current key, add a new one, forget keys that can no longer verify anything."""
    out = []
    for key in keys:
        key = dict(key)
        if key.get("retired") is None:
            key["retired"] = now_ms
        if key_usable(key, now_ms):
            out.append(key)
    out.append(new_signing_key(now_ms))
    return out


# Loaded key objects, by kid: parsing is cheap but not free, and the hot path verifies every request.
_PRIVATE: dict[str, tuple[str, Ed25519PrivateKey]] = {}
_PUBLIC: dict[str, tuple[str, Ed25519PublicKey]] = {}


def _private_key(key: dict) -> Ed25519PrivateKey:
    cached = _PRIVATE.get(key["kid"])
    if cached is None or cached[0] != key["private"]:
        if len(_PRIVATE) >= 16:
            _PRIVATE.clear()
        cached = (key["private"], Ed25519PrivateKey.from_private_bytes(_unb64u(key["private"])))
        _PRIVATE[key["kid"]] = cached
    return cached[1]


def _public_key(key: dict) -> Ed25519PublicKey | None:
    x = key.get("x")
    if key.get("alg", ALGORITHM) != ALGORITHM or not isinstance(x, str):
        return None  # not an Ed25519 public key (e.g. an HS256 record from before): verifies nothing
    cached = _PUBLIC.get(key["kid"])
    if cached is None or cached[0] != x:
        try:
            loaded = Ed25519PublicKey.from_public_bytes(_unb64u(x))
        except (ValueError, TypeError):
            return None
        if len(_PUBLIC) >= 64:
            _PUBLIC.clear()
        cached = (x, loaded)
        _PUBLIC[key["kid"]] = cached
    return cached[1]


# -- access tokens ----------------------------------------------------------------------------

def issue_access_token(user: dict, sid: str, key: dict, now_ms: int) -> tuple[str, int]:
    """A 20-minute EdDSA JWT for `user` in session `sid`, signed with private `key` (its id in `kid`)."""
    exp_ms = now_ms + ACCESS_TTL_MS
    claims = {
        "iss": ISSUER, "sub": user["id"], "sid": sid, "name": user.get("displayName") or user["username"],
        "usr": user["username"], "iat": now_ms // 1000, "exp": exp_ms // 1000, "typ": "access",
    }
    token = jwt.encode(claims, _private_key(key), algorithm=ALGORITHM, headers={"kid": key["kid"]})
    return token, (exp_ms // 1000) * 1000


# Tokens whose signature this isolate has already checked -> (kid, public key, claims).  An Ed25519
# verification costs ~0.1 ms of CPU, several times an HMAC's, and a client presents the same token for
# 20 minutes; a hit still checks that the same key is published and usable, and the expiry.
_VERIFIED: dict[str, tuple[str, str, dict]] = {}
VERIFIED_CACHE_SIZE = 1024


def _check_expiry(claims: dict, now_ms: int) -> dict:
    if not isinstance(claims.get("exp"), int) or claims["exp"] * 1000 <= now_ms:
        raise AuthError("auth_expired", "access token expired")
    return claims


def verify_access_token(token: object, keys: list[dict], now_ms: int) -> dict:
    """The claims of a valid token; raises AuthError otherwise (expiry checked against `now_ms`).

    `keys` are public key records; only `EdDSA` is accepted, so neither `none` nor an HS* token
    "signed" with a public key's bytes as the HMAC secret can pass.
    """
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise AuthError("auth_invalid", "missing or malformed access token")
    hit = _VERIFIED.get(token)
    if hit is not None:
        kid, x, claims = hit
        key = next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None)
        if key is None or key.get("x") != x or not key_usable(key, now_ms) or _public_key(key) is None:
            raise AuthError("auth_invalid", "access token signed with an unknown or retired key")
        return _check_expiry(dict(claims), now_ms)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("auth_invalid", "malformed access token") from None
    if header.get("alg") != ALGORITHM:
        raise AuthError("auth_invalid", "access token signature or claims are invalid")
    kid = header.get("kid")
    key = next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None)
    public = _public_key(key) if key is not None and key_usable(key, now_ms) else None
    if public is None:
        raise AuthError("auth_invalid", "access token signed with an unknown or retired key")
    try:
        # pyjwt would check exp against the real clock; we check it against the runtime's below.
        claims = jwt.decode(token, public, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                     "require": ["exp", "sub", "sid", "iss"]})
    except jwt.PyJWTError:
        raise AuthError("auth_invalid", "access token signature or claims are invalid") from None
    if claims.get("typ") != "access":
        raise AuthError("auth_invalid", "not an access token")
    _check_expiry(claims, now_ms)
    if len(_VERIFIED) >= VERIFIED_CACHE_SIZE:
        del _VERIFIED[next(iter(_VERIFIED))]  # the oldest entry
    _VERIFIED[token] = (kid, key["x"], dict(claims))
    return claims


# -- refresh tokens ---------------------------------------------------------------------------

def new_refresh_token(sid: str) -> tuple[str, str]:
    """(token for the client, hash to store): the token names its session so lookup needs no scan."""
    token = f"{sid}.{secrets.token_urlsafe(32)}"
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def refresh_session_id(token: object) -> str | None:
    """The session id a refresh token names, or None when it is not shaped like one."""
    if not isinstance(token, str) or len(token) > 256 or token.count(".") != 1:
        return None
    sid, _ = token.split(".")
    return sid if 8 <= len(sid) <= 64 and sid.isalnum() else None


def check_refresh(session: dict | None, token: str, now_ms: int) -> str:
    """Judge a presented refresh token against its stored session.

    Returns "ok" (rotate it), "reuse" (an already rotated token came back: it was stolen or replayed,
    so the whole session must be revoked), "expired", "revoked" or "invalid".
    """
    if session is None:
        return "invalid"
    if session.get("revoked"):
        return "revoked"
    presented = hash_refresh_token(token)
    if hmac.compare_digest(presented, session.get("refreshHash", "")):
        return "expired" if session.get("expires", 0) <= now_ms else "ok"
    if presented in session.get("previousHashes", []):
        return "reuse"
    return "invalid"
