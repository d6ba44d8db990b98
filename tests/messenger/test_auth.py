"""Unit tests of messenger/auth.py (loaded through cfemu's loader, as the runtime loads it)."""

from __future__ import annotations

import pytest

NOW = 1_800_000_000_000


@pytest.fixture
def auth(modules):
    return modules["auth"]


def test_demo_hashes_verify_and_wrong_password_fails(auth):
    alice = auth.DEMO_ACCOUNTS[0]
    assert alice["username"] == "alice"
    assert auth.verify_password("alice-demo", alice["hash"])
    assert not auth.verify_password("alice-demo!", alice["hash"])
    assert not auth.verify_password("alice-demo", "garbage")
    assert not auth.verify_password("alice-demo", "bcrypt$1$2$3$4$5")


def test_hash_password_is_salted_scrypt(auth):
    a, b = auth.hash_password("correct horse"), auth.hash_password("correct horse")
    assert a.startswith("scrypt$16384$8$1$") and a != b
    assert auth.verify_password("correct horse", a) and auth.verify_password("correct horse", b)


def _user():
    return {"id": "ualice", "username": "alice", "displayName": "Alice"}


def test_access_token_lives_twenty_minutes_by_the_given_clock(auth):
    key = auth.new_signing_key(NOW)
    token, exp = auth.issue_access_token(_user(), "s1", key, NOW)
    assert exp == NOW + 20 * 60 * 1000
    public = auth.public_key_record(key)
    claims = auth.verify_access_token(token, [public], NOW + 19 * 60 * 1000)
    assert claims["sub"] == "ualice" and claims["sid"] == "s1"
    import jwt

    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT", "kid": key["kid"]}
    with pytest.raises(auth.AuthError) as e:
        auth.verify_access_token(token, [public], NOW + 20 * 60 * 1000)
    assert e.value.code == "auth_expired"


def test_tampered_or_unknown_key_tokens_are_refused(auth):
    key, other = auth.new_signing_key(NOW), auth.new_signing_key(NOW)
    token, _ = auth.issue_access_token(_user(), "s1", key, NOW)
    for bad_keys in ([other], []):
        with pytest.raises(auth.AuthError) as e:
            auth.verify_access_token(token, bad_keys, NOW)
        assert e.value.code == "auth_invalid"
    forged = {**auth.public_key_record(key), "x": other["x"]}  # the right kid, another key
    with pytest.raises(auth.AuthError):
        auth.verify_access_token(token, [forged], NOW)
    for broken in ({**key, "x": "not-a-key"}, {**key, "x": None}, {**key, "alg": "HS256"},
                   {"kid": key["kid"], "secret": "c2VjcmV0"}):  # an HS256 record from before Ed25519
        with pytest.raises(auth.AuthError) as e:
            auth.verify_access_token(token, [broken], NOW)
        assert e.value.code == "auth_invalid"
    for junk in (None, "", "a.b.c", 42, "x" * 5000):
        with pytest.raises(auth.AuthError):
            auth.verify_access_token(junk, [key], NOW)


def test_key_records_hold_ed25519_pairs_and_publish_only_the_public_half(auth):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = auth.new_signing_key(NOW)
    assert set(key) == {"kid", "alg", "private", "x", "created", "retired"} and key["alg"] == "EdDSA"
    raw = base64.urlsafe_b64decode(key["private"] + "=")
    public = Ed25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    assert base64.urlsafe_b64decode(key["x"] + "=") == public and len(public) == 32
    record = auth.public_key_record(key)
    assert record == {"kid": key["kid"], "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": key["x"],
                      "created": NOW, "retired": None}
    assert key["private"] not in str(auth.public_keys([key, auth.new_signing_key(NOW)]))
    assert auth.is_signing_key(key) and not auth.is_signing_key(record)
    assert not auth.is_signing_key({"kid": "k1", "secret": "c2VjcmV0", "created": NOW, "retired": None})


def test_hs256_signed_with_the_public_key_as_secret_is_refused(auth):
    """Algorithm confusion: the public key is public, so an HMAC keyed with it must never verify."""
    import base64
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = auth.new_signing_key(NOW)
    record = auth.public_key_record(key)
    raw = base64.urlsafe_b64decode(key["x"] + "=")
    pem = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"iss": "cf-messenger", "sub": "ualice", "sid": "s1", "name": "A", "usr": "alice",
              "iat": NOW // 1000, "exp": NOW // 1000 + 600, "typ": "access"}

    def b64(obj):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    for secret in (raw, key["x"].encode(), pem, json.dumps(record).encode()):
        for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
            msg = f"{b64({'alg': alg, 'typ': 'JWT', 'kid': key['kid']})}.{b64(claims)}".encode()
            token = msg.decode() + "." + b64(hmac.new(secret, msg, digest).digest())
            with pytest.raises(auth.AuthError) as e:
                auth.verify_access_token(token, [record], NOW)
            assert e.value.code == "auth_invalid"
    unsigned = f"{b64({'alg': 'none', 'kid': key['kid']})}.{b64(claims)}."
    with pytest.raises(auth.AuthError):
        auth.verify_access_token(unsigned, [record], NOW)


def test_rotation_keeps_old_key_for_one_token_lifetime(auth):
    keys = [auth.new_signing_key(NOW)]
    old_token, _ = auth.issue_access_token(_user(), "s1", auth.current_key(keys), NOW)
    rotated_at = NOW + 60_000
    keys = auth.rotate_keys(keys, rotated_at)
    assert len(keys) == 2 and auth.current_key(keys)["kid"] != keys[0]["kid"]
    new_token, _ = auth.issue_access_token(_user(), "s1", auth.current_key(keys), rotated_at)
    assert auth.verify_access_token(old_token, keys, rotated_at + 1000)["sub"] == "ualice"
    later = rotated_at + 20 * 60 * 1000
    with pytest.raises(auth.AuthError):
        auth.verify_access_token(old_token, keys, later)  # expired anyway, and its key is retired
    assert auth.verify_access_token(new_token, keys, later - 61_000)
    keys = auth.rotate_keys(keys, later + 1)
    assert len(keys) == 2  # the first key can verify nothing any more and is dropped
    second_retired = later + 1
    assert [k["kid"] for k in auth.prune_keys(keys, second_retired + 20 * 60 * 1000 - 1)] == [k["kid"] for k in keys]
    assert auth.prune_keys(keys, second_retired + 20 * 60 * 1000) == [auth.current_key(keys)]


def test_verified_tokens_are_remembered_but_key_and_expiry_are_checked_every_time(auth, monkeypatch):
    key, other = auth.new_signing_key(NOW), auth.new_signing_key(NOW)
    record = auth.public_key_record(key)
    token, _ = auth.issue_access_token(_user(), "s1", key, NOW)
    claims = auth.verify_access_token(token, [record], NOW)
    decodes = []
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: decodes.append(1))
    claims["sub"] = "ubob"  # the caller's copy: the remembered claims are not touched
    assert auth.verify_access_token(token, [record], NOW + 1000)["sub"] == "ualice"
    assert decodes == []  # no second signature check
    refusals = [
        ([{**record, "x": other["x"]}], NOW, "auth_invalid"),          # same kid, another public key
        ([{**record, "alg": "HS256"}], NOW, "auth_invalid"),
        ([auth.public_key_record(other)], NOW, "auth_invalid"),         # the key is gone
        ([{**record, "retired": NOW}], NOW + 20 * 60 * 1000, "auth_invalid"),  # retired a lifetime ago
        ([record], NOW + 20 * 60 * 1000, "auth_expired"),
    ]
    for keys, now, code in refusals:
        with pytest.raises(auth.AuthError) as e:
            auth.verify_access_token(token, keys, now)
        assert e.value.code == code
    assert decodes == []


def test_refresh_rotation_and_reuse_detection(auth):
    token, h = auth.new_refresh_token("abcdef0123456789")
    assert auth.refresh_session_id(token) == "abcdef0123456789"
    session = {"refreshHash": h, "previousHashes": [], "expires": NOW + 1000, "revoked": False}
    assert auth.check_refresh(session, token, NOW) == "ok"
    new_token, new_hash = auth.new_refresh_token("abcdef0123456789")
    session = {**session, "refreshHash": new_hash, "previousHashes": [h]}
    assert auth.check_refresh(session, new_token, NOW) == "ok"
    assert auth.check_refresh(session, token, NOW) == "reuse"
    assert auth.check_refresh(session, "abcdef0123456789.nope", NOW) == "invalid"
    assert auth.check_refresh(session, new_token, NOW + 1000) == "expired"
    assert auth.check_refresh({**session, "revoked": True}, new_token, NOW) == "revoked"
    assert auth.check_refresh(None, new_token, NOW) == "invalid"
    for junk in (None, "", "nodot", "a.b.c", "short.x", "x" * 300):
        assert auth.refresh_session_id(junk) is None


def test_scrypt_fallback_through_cryptography_gives_the_same_hash(auth, monkeypatch):
    import hashlib

    stored = auth.DEMO_ACCOUNTS[1]["hash"]
    monkeypatch.delattr(hashlib, "scrypt")
    assert auth.verify_password("bob-demo", stored)
