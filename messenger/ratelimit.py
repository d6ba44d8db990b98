"""Exact rate limits whose counters live in Durable Object storage.

`take(record, kind, now_ms)` is the pure sliding-window rule; `RateLimiter` is the Durable Object that
applies it (one per user for chat frames), so a user's limit is exact across every room and survives
eviction, reroute and restart of the rooms and of the limiter itself.

Sign-in throttling (`login_begin` / `login_end`, applied by the `login:<username>` instance, plus
`login_ip` in a `loginip:<keyed hash of the address>` instance) counts failures per (account, client
address) and per address, so wrong guesses from one address never lock the owner out; a looser
per-account ceiling slows a spray from many addresses, except for addresses the account has signed in
from before.  Addresses are stored only as keyed hashes.
"""

from __future__ import annotations

import json

from js import Date
from workers import DurableObject

import audit
from store import jput_many


def _own_name(ctx) -> str | None:
    """The name this object was reached by (`ctx.id.name`, Cloudflare since March 2026), if any."""
    name = getattr(getattr(ctx, "id", None), "name", None)
    return name if isinstance(name, str) and name else None

__all__ = ["LIMITS", "take", "refund", "empty", "login_begin", "login_end", "RateLimiter"]

# kind -> (max events, window ms).  Chat frames only: pings, typing and receipts are not counted.
# "login_ip" counts sign-in attempts from one client address (instance `loginip:<hash>`), whatever the
# account; an attempt whose password was right is refunded, so only failures count.
# "login_failure" is what instances `login:<username>` held before failures were counted per address
# (kept so those records still parse; nothing counts it any more).
# "register_ip" counts accounts created from one address (same instance): 10 an hour, or the var
# REGISTER_PER_HOUR (a benchmark registering many users from one machine raises it).
# "admin_ip" counts wrong admin tokens from one address (same instance): a brute force of ADMIN_TOKEN
# stops after 20 in 15 minutes, and so does the audit record each refusal writes.
LIMITS = {"chat": (15, 60_000), "nudge": (1, 5_000), "login_failure": (10, 15 * 60_000),
          "login_ip": (50, 15 * 60_000), "register_ip": (10, 3600_000), "admin_ip": (20, 15 * 60_000)}

LOGIN_WINDOW_MS = 15 * 60_000
LOGIN_PAIR_LIMIT = 10        # failures per (account, address) in the window
LOGIN_ACCOUNT_LIMIT = 100    # failures per account from all addresses (10 addresses at least)
KNOWN_ADDRESS_MS = 30 * 24 * 3600 * 1000   # an address the account signed in from stays trusted this long
KNOWN_ADDRESS_MAX = 16


def empty() -> dict:
    return {k: [] for k in LIMITS}


def take(record: dict | None, kind: str, now_ms: int, limit: int | None = None) -> tuple[bool, dict, int]:
    """(allowed, new record, retry_after_ms): a sliding-window log of the accepted events."""
    default, window = LIMITS[kind]
    limit = default if limit is None else limit
    record = {k: list(v) for k, v in (record or empty()).items()}
    recent = [t for t in record.get(kind, []) if now_ms - t < window]
    if len(recent) >= limit:
        record[kind] = recent
        return False, record, max(1, recent[0] + window - now_ms)
    recent.append(now_ms)
    record[kind] = recent
    return True, record, 0


def refund(record: dict | None, kind: str, at: int) -> dict:
    """The record without the event counted at `at` (an attempt that turned out not to count)."""
    record = {k: list(v) for k, v in (record or empty()).items()}
    log = record.get(kind, [])
    if at in log:
        log.remove(at)
    record[kind] = log
    return record


def _login_record(record: dict | None, now_ms: int) -> dict:
    """A copy of a `login:` record with what fell out of the window (or out of trust) dropped."""
    record = record or {}
    fresh = lambda log: [t for t in log if now_ms - t < LOGIN_WINDOW_MS]  # noqa: E731
    pairs = {ip: fresh(log) for ip, log in (record.get("pairs") or {}).items()}
    known = {ip: t for ip, t in (record.get("known") or {}).items() if now_ms - t < KNOWN_ADDRESS_MS}
    return {"fails": fresh(record.get("fails") or []), "pairs": {ip: log for ip, log in pairs.items() if log},
            "known": known}


def login_begin(record: dict | None, ip: str, now_ms: int) -> tuple[bool, dict, int]:
    """(allowed, new record, retry_after_ms) for a sign-in attempt on one account from address `ip`.

    An allowed attempt is counted as a failure at once (concurrent guesses cannot slip past the limit
    while their passwords are being checked); `login_end` takes it back when the password was right.
    """
    record = _login_record(record, now_ms)
    pair = record["pairs"].get(ip, [])
    if len(pair) >= LOGIN_PAIR_LIMIT:
        return False, record, max(1, pair[0] + LOGIN_WINDOW_MS - now_ms)
    fails = record["fails"]
    if len(fails) >= LOGIN_ACCOUNT_LIMIT and ip not in record["known"]:
        return False, record, max(1, fails[len(fails) - LOGIN_ACCOUNT_LIMIT] + LOGIN_WINDOW_MS - now_ms)
    record["pairs"][ip] = pair + [now_ms]
    fails.append(now_ms)
    return True, record, 0


def login_end(record: dict | None, ip: str, at: int, ok: bool, now_ms: int) -> dict:
    """After the password check of an attempt begun at `at`: a success is not a failure, clears this
    address's failures on the account and makes the address known (trusted past the account ceiling)."""
    record = _login_record(record, now_ms)
    if not ok:
        return record
    if at in record["fails"]:
        record["fails"].remove(at)
    record["pairs"].pop(ip, None)
    known = dict(record["known"])
    known.pop(ip, None)
    known[ip] = now_ms
    record["known"] = dict(sorted(known.items(), key=lambda kv: kv[1])[-KNOWN_ADDRESS_MAX:])
    return record


class RateLimiter(DurableObject):
    """One per user (`env.LIMITER.getByName(user_id)`): the user's counters across every room."""

    async def take(self, kind: str) -> str:
        """Count one `kind` event now if allowed: JSON {"ok": bool, "retryAfterMs": int}."""
        if kind not in LIMITS:
            return json.dumps({"ok": False, "retryAfterMs": 0, "error": f"unknown limit {kind!r}"})
        now = Date.now()
        raw = await self.ctx.storage.get("rl")
        allowed, record, retry = take(json.loads(raw) if raw else None, kind, now, self._limit(kind))
        if allowed:
            await self.ctx.storage.put("rl", json.dumps(record))
            await self._expire_later()
            return json.dumps({"ok": True, "retryAfterMs": 0, "at": now})
        first = self._first_denial(kind, now, retry)
        if first and kind in ("chat", "nudge"):
            # Chat frames come from rooms; this object is the user's own (`getByName(user id)`), so it
            # audits the refusal itself, under the keyed hash of the id it is named by.
            await audit.record(self.env, "rate_limited", "denied", account=_own_name(self.ctx), reason=kind)
        return json.dumps({"ok": False, "retryAfterMs": retry, "at": now, "audit": first})

    def _first_denial(self, kind: str, now: int, retry: int) -> bool:
        """Whether this refusal is the first of its spell (the caller audits only that one, so a flood of
        refused frames or guesses cannot flood the audit trail).  In memory: after an eviction the next
        refusal counts as a first again, which errs toward recording."""
        spells = self.__dict__.setdefault("_denied_until", {})
        first = now >= spells.get(kind, 0)
        spells[kind] = now + retry
        return first

    async def _expire_later(self) -> None:
        """Drop what has aged out and point the alarm at when the rest will have: a guessed username
        or a one-off address must not leave a record behind for ever."""
        now = Date.now()
        storage = self.ctx.storage
        raw_rl, raw_login = await storage.get("rl"), await storage.get("login")
        ends, keep = [], {}
        if raw_rl:
            rl = {k: [t for t in log if now - t < LIMITS[k][1]] for k, log in json.loads(raw_rl).items() if k in LIMITS}
            ends += [max(log) + LIMITS[k][1] for k, log in rl.items() if log]
            if any(rl.values()):
                keep["rl"] = rl
        if raw_login:
            login = _login_record(json.loads(raw_login), now)
            ends += [max(log) + LOGIN_WINDOW_MS for log in [login["fails"], *login["pairs"].values()] if log]
            ends += [t + KNOWN_ADDRESS_MS for t in login["known"].values()]
            if login["fails"] or login["pairs"] or login["known"]:
                keep["login"] = login
        if not keep:
            await storage.deleteAlarm()
            await storage.deleteAll()
            return
        await jput_many(storage, keep)  # (JSON text, as every other write here)
        drop = [k for k in ("rl", "login") if k not in keep and (raw_rl if k == "rl" else raw_login)]
        if drop:
            await storage.delete(drop)
        await storage.setAlarm(max(ends))

    async def alarm(self, alarm_info=None) -> None:
        """Everything stored may have aged out: drop what has, come back for the rest."""
        await self._expire_later()

    def _limit(self, kind: str) -> int | None:
        if kind == "register_ip":
            try:
                return max(1, int(str(getattr(self.env, "REGISTER_PER_HOUR", "") or LIMITS[kind][0])))
            except ValueError:
                return None
        return None

    async def refund(self, kind: str, at: int) -> str:
        """Take back the `kind` event counted at `at` (a sign-in whose password was right)."""
        if kind not in LIMITS:
            return json.dumps({"ok": False, "error": f"unknown limit {kind!r}"})
        raw = await self.ctx.storage.get("rl")
        if raw:
            await self.ctx.storage.put("rl", json.dumps(refund(json.loads(raw), kind, int(at))))
        return json.dumps({"ok": True})

    async def loginBegin(self, ip: str) -> str:
        """A sign-in attempt on this account (instance `login:<username>`) from address hash `ip`:
        JSON {"ok", "retryAfterMs", "at"}; an allowed attempt counts as a failure until `loginEnd`."""
        now = Date.now()
        raw = await self.ctx.storage.get("login")
        allowed, record, retry = login_begin(json.loads(raw) if raw else None, ip, now)
        if allowed:
            await self.ctx.storage.put("login", json.dumps(record))
            await self._expire_later()
            return json.dumps({"ok": True, "retryAfterMs": 0, "at": now})
        return json.dumps({"ok": False, "retryAfterMs": retry, "at": now,
                           "audit": self._first_denial("login:" + ip, now, retry)})

    async def loginEnd(self, ip: str, at: int, ok: bool) -> str:
        """The password check of the attempt begun at `at` is done (`ok`: it was right)."""
        if ok:
            raw = await self.ctx.storage.get("login")
            await self.ctx.storage.put("login", json.dumps(login_end(json.loads(raw) if raw else None, ip,
                                                                     int(at), True, Date.now())))
            await self._expire_later()
        return json.dumps({"ok": True})

    async def forget(self) -> str:
        """Account deletion: every counter of this instance goes."""
        await self.ctx.storage.deleteAlarm()
        await self.ctx.storage.deleteAll()
        return json.dumps({"ok": True})

    async def peek(self, kind: str) -> str:
        """Would one more `kind` event be allowed now? Counts nothing: JSON {"ok", "retryAfterMs"} (and,
        refused, "audit": whether this is the first refusal of its spell)."""
        if kind not in LIMITS:
            return json.dumps({"ok": False, "retryAfterMs": 0, "error": f"unknown limit {kind!r}"})
        raw = await self.ctx.storage.get("rl")
        now = Date.now()
        allowed, _record, retry = take(json.loads(raw) if raw else None, kind, now)
        if allowed:
            return json.dumps({"ok": True, "retryAfterMs": 0})
        return json.dumps({"ok": False, "retryAfterMs": retry, "audit": self._first_denial(kind, now, retry)})
