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
    claims = auth.verify_access_token(token, [key], NOW + 19 * 60 * 1000)
    assert claims["sub"] == "ualice" and claims["sid"] == "s1"
    import jwt

    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    with pytest.raises(auth.AuthError) as e:
        auth.verify_access_token(token, [key], NOW + 20 * 60 * 1000)
    assert e.value.code == "auth_expired"


def test_tampered_or_unknown_key_tokens_are_refused(auth):
    key, other = auth.new_signing_key(NOW), auth.new_signing_key(NOW)
    token, _ = auth.issue_access_token(_user(), "s1", key, NOW)
    for bad_keys in ([other], []):
        with pytest.raises(auth.AuthError) as e:
            auth.verify_access_token(token, bad_keys, NOW)
        assert e.value.code == "auth_invalid"
    forged = {**key, "secret": other["secret"]}
    with pytest.raises(auth.AuthError):
        auth.verify_access_token(token, [forged], NOW)
    for junk in (None, "", "a.b.c", 42, "x" * 5000):
        with pytest.raises(auth.AuthError):
            auth.verify_access_token(junk, [key], NOW)


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
