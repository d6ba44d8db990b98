"""Exact per-user rate limits whose counters live in Durable Object storage.

`take(record, kind, now_ms)` is the pure sliding-window rule; `RateLimiter` is the per-user Durable
Object that applies it, so a user's limit is exact across every room and survives eviction, reroute
and restart of the rooms and of the limiter itself.
"""

from __future__ import annotations

import json

from js import Date
from workers import DurableObject

__all__ = ["LIMITS", "take", "empty", "RateLimiter"]

# kind -> (max events, window ms).  Chat frames only: pings, typing and receipts are not counted.
# "login_failure" counts wrong passwords per username (instance `login:<username>`): password guessing
# (and the scrypt CPU it costs) stops after 10 misses in 15 minutes; successful sign-ins never count.
LIMITS = {"chat": (15, 60_000), "nudge": (1, 5_000), "login_failure": (10, 15 * 60_000)}


def empty() -> dict:
    return {k: [] for k in LIMITS}


def take(record: dict | None, kind: str, now_ms: int) -> tuple[bool, dict, int]:
    """(allowed, new record, retry_after_ms): a sliding-window log of the accepted events."""
    limit, window = LIMITS[kind]
    record = {k: list(v) for k, v in (record or empty()).items()}
    recent = [t for t in record.get(kind, []) if now_ms - t < window]
    if len(recent) >= limit:
        record[kind] = recent
        return False, record, max(1, recent[0] + window - now_ms)
    recent.append(now_ms)
    record[kind] = recent
    return True, record, 0


class RateLimiter(DurableObject):
    """One per user (`env.LIMITER.getByName(user_id)`): the user's counters across every room."""

    async def take(self, kind: str) -> str:
        """Count one `kind` event now if allowed: JSON {"ok": bool, "retryAfterMs": int}."""
        if kind not in LIMITS:
            return json.dumps({"ok": False, "retryAfterMs": 0, "error": f"unknown limit {kind!r}"})
        raw = await self.ctx.storage.get("rl")
        allowed, record, retry = take(json.loads(raw) if raw else None, kind, Date.now())
        if allowed:
            await self.ctx.storage.put("rl", json.dumps(record))
        return json.dumps({"ok": allowed, "retryAfterMs": retry})

    async def peek(self, kind: str) -> str:
        """Would one more `kind` event be allowed now? Counts nothing: JSON {"ok", "retryAfterMs"}."""
        if kind not in LIMITS:
            return json.dumps({"ok": False, "retryAfterMs": 0, "error": f"unknown limit {kind!r}"})
        raw = await self.ctx.storage.get("rl")
        allowed, _record, retry = take(json.loads(raw) if raw else None, kind, Date.now())
        return json.dumps({"ok": allowed, "retryAfterMs": retry})
