"""Sign-in throttling: failures count per (account, client IP) and per IP, so guessing from one address
cannot lock the owner out; a looser per-account ceiling slows a spray from many addresses."""

from __future__ import annotations

import json

import pytest

from messenger_client import login

ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"


@pytest.fixture
def memo_kdf(rt):
    """The same wrong guess checked over and over costs one scrypt (the throttle is what is tested)."""
    auth = rt.worker_module("auth")
    original, seen = auth.verify_password, {}

    def verify(password, stored):
        if (password, stored) not in seen:
            seen[(password, stored)] = original(password, stored)
        return seen[(password, stored)]

    auth.verify_password = verify
    yield
    auth.verify_password = original


async def _login(rt, username: str, password: str, ip: str | None):
    headers = {"cf-connecting-ip": ip} if ip else {}
    resp = await rt.fetch("/api/auth/login", method="POST", headers=headers,
                          json={"username": username, "password": password})
    return resp, json.loads(await resp.text())


async def test_an_attacker_ip_failing_cannot_lock_the_owner_out(rt):
    for i in range(10):
        resp, body = await _login(rt, "alice", f"guess-{i}", ATTACKER)
        assert resp.status == 401 and body["error"]["code"] == "bad_credentials"
    resp, body = await _login(rt, "alice", f"guess-more", ATTACKER)
    assert resp.status == 429 and body["error"]["code"] == "rate_limited"
    assert 1 <= int(resp.headers.get("retry-after")) <= 15 * 60
    # Even the right password is refused from the throttled address (it is not even checked).
    resp, _ = await _login(rt, "alice", "alice-demo", ATTACKER)
    assert resp.status == 429
    # The owner, from another address, signs in at once.
    resp, body = await _login(rt, "alice", "alice-demo", OWNER)
    assert resp.status == 200 and body["data"]["user"]["username"] == "alice"
    # Once the window passes the attacker address may try again.
    await rt.advance(15 * 60)
    resp, _ = await _login(rt, "alice", "guess-after", ATTACKER)
    assert resp.status == 401


async def test_one_ip_guessing_across_many_accounts_is_throttled_per_ip(rt, memo_kdf):
    statuses = []
    for i in range(60):
        resp, _ = await _login(rt, f"nobody{i % 12}", "guess", ATTACKER)
        statuses.append(resp.status)
    assert statuses[:50] == [401] * 50 and set(statuses[50:]) == {429}
    resp, body = await _login(rt, "bob", "bob-demo", ATTACKER)  # the address, not the account, is throttled
    assert resp.status == 429 and resp.headers.get("retry-after")
    resp, _ = await _login(rt, "bob", "bob-demo", OWNER)
    assert resp.status == 200


async def test_ipv6_clients_are_throttled_per_slash_64(rt):
    for i in range(10):
        resp, _ = await _login(rt, "alice", "guess", f"2001:db8:1:2::{i + 1:x}")
        assert resp.status == 401
    resp, _ = await _login(rt, "alice", "alice-demo", "2001:db8:1:2:ffff::1")  # same /64
    assert resp.status == 429
    resp, _ = await _login(rt, "alice", "alice-demo", "2001:db8:1:3::1")  # another /64
    assert resp.status == 200


async def test_a_spray_from_many_ips_hits_the_account_ceiling_but_the_owners_known_address_gets_in(rt, memo_kdf):
    resp, _ = await _login(rt, "alice", "alice-demo", OWNER)  # the owner has signed in from here before
    assert resp.status == 200
    codes = []
    for i in range(120):
        resp, _ = await _login(rt, "alice", "guess", f"192.0.2.{i // 5}")  # 24 addresses, 5 guesses each
        codes.append(resp.status)
    assert codes[:100] == [401] * 100 and set(codes[100:]) == {429}
    resp, _ = await _login(rt, "alice", "alice-demo", "192.0.2.200")  # a new address waits out the ceiling
    assert resp.status == 429 and int(resp.headers["retry-after"]) > 0
    resp, body = await _login(rt, "alice", "alice-demo", OWNER)
    assert resp.status == 200, body
    await rt.advance(15 * 60)
    resp, _ = await _login(rt, "alice", "alice-demo", "192.0.2.201")
    assert resp.status == 200


async def test_successful_sign_ins_do_not_count_and_reset_their_addresss_failures(rt):
    for _ in range(9):
        resp, _ = await _login(rt, "alice", "typo", OWNER)
        assert resp.status == 401
    for _ in range(15):
        resp, _ = await _login(rt, "alice", "alice-demo", OWNER)
        assert resp.status == 200
    for _ in range(9):  # the typos before the success no longer count
        resp, _ = await _login(rt, "alice", "typo", OWNER)
        assert resp.status == 401
    resp, _ = await _login(rt, "alice", "alice-demo", OWNER)
    assert resp.status == 200


async def test_counters_survive_a_restart_and_hold_no_plain_ip(rt, tmp_path):
    for i in range(10):
        await _login(rt, "alice", f"guess-{i}", ATTACKER)
    await rt.restart()
    resp, _ = await _login(rt, "alice", "alice-demo", ATTACKER)
    assert resp.status == 429
    resp, _ = await _login(rt, "alice", "alice-demo", OWNER)
    assert resp.status == 200
    await rt.close()
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ATTACKER.encode() not in data and OWNER.encode() not in data, path


async def test_without_a_client_ip_header_every_request_shares_one_address(rt):
    for i in range(10):
        resp, _ = await _login(rt, "alice", f"guess-{i}", None)
        assert resp.status == 401
    resp, _ = await _login(rt, "alice", "alice-demo", None)
    assert resp.status == 429
    assert (await login(rt, "bob"))["user"]["username"] == "bob"


# -- the pure rule ------------------------------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a1", "a2", "a3"]), st.booleans(), st.integers(0, 120_000)), max_size=80))
def test_no_sequence_of_attempts_from_other_addresses_below_the_ceiling_locks_a_fresh_address(modules, attempts):
    """Whatever up to three addresses do (each at most 10 failures a window, so never 100 together),
    an address with no failures of its own is always let in."""
    rl = modules["ratelimit"]
    record, now = None, 0
    for ip, right, gap in attempts:
        now += gap
        allowed, record, retry = rl.login_begin(record, ip, now)
        if allowed:
            record = rl.login_end(record, ip, now, right, now)
            assert retry == 0
        else:
            assert 0 < retry <= rl.LOGIN_WINDOW_MS
            assert len(record["pairs"][ip]) >= rl.LOGIN_PAIR_LIMIT  # only ever the address's own failures
        assert len(record["fails"]) <= 3 * rl.LOGIN_PAIR_LIMIT
    allowed, _, _ = rl.login_begin(record, "owner", now)
    assert allowed


def test_known_addresses_are_bounded_and_expire(modules):
    rl = modules["ratelimit"]
    record = None
    for i in range(40):
        _, record, _ = rl.login_begin(record, f"ip{i}", i)
        record = rl.login_end(record, f"ip{i}", i, True, i)
    assert list(record["known"]) == [f"ip{i}" for i in range(40 - rl.KNOWN_ADDRESS_MAX, 40)]
    assert record["fails"] == [] and record["pairs"] == {}
    later = rl.login_end(record, "x", 0, False, 40 + rl.KNOWN_ADDRESS_MS)
    assert later["known"] == {}


async def test_registrations_are_limited_per_address(rt, memo_kdf):
    async def register(name, ip):
        resp = await rt.fetch("/api/auth/register", method="POST", headers={"cf-connecting-ip": ip},
                              json={"username": name, "password": "long-enough-1"})
        return resp, json.loads(await resp.text())

    for i in range(10):
        resp, body = await register(f"spam{i}", ATTACKER)
        assert resp.status == 200, body
    resp, body = await register("spam10", ATTACKER)
    assert resp.status == 429 and body["error"]["code"] == "rate_limited" and int(resp.headers["retry-after"]) > 0
    assert (await register("someone", OWNER))[0].status == 200
    resp, body = await register("spam11", ATTACKER)
    assert resp.status == 429
    await rt.advance(3600)
    assert (await register("spam12", ATTACKER))[0].status == 200


async def test_the_registration_limit_follows_the_register_per_hour_var(tmp_path):
    from cfemu.testing import Runtime
    from messenger_support import test_config

    async with Runtime.from_config(test_config(tmp_path, {"REGISTER_PER_HOUR": "2"}), persist_to=tmp_path / "s") as rt:
        codes = []
        for i in range(3):
            resp = await rt.fetch("/api/auth/register", method="POST", json={"username": f"few{i}", "password": "long-enough-1"})
            codes.append(resp.status)
        assert codes == [200, 200, 429]


async def test_limiter_records_age_out_instead_of_piling_up(rt):
    for name in ("ghost1", "ghost2"):
        resp, _ = await _login(rt, name, "guess", ATTACKER)
        assert resp.status == 401
    resp, body = await _login(rt, "alice", "alice-demo", OWNER)   # a known address: kept 30 days
    alice = body["data"]
    from messenger_client import room, say

    ws, _ = await room(rt, "general", alice)
    await say(ws, "counted")
    before = set(rt.list_ids("LIMITER"))
    await rt.advance(16 * 60)
    after = set(rt.list_ids("LIMITER"))
    assert len(before) - len(after) >= 4  # both guessed names, the attacker's and the chat counter
    assert len(after) == 1                # alice's account record, for her known address
    await rt.advance(30 * 86_400)
    assert rt.list_ids("LIMITER") == []


async def test_a_client_supplied_address_in_front_of_the_real_one_changes_nothing(rt):
    for i in range(10):
        resp, _ = await _login(rt, "alice", "guess", f"10.0.0.{i}, {ATTACKER}")
        assert resp.status == 401
    resp, _ = await _login(rt, "alice", "alice-demo", f"{OWNER}, {ATTACKER}")
    assert resp.status == 429
