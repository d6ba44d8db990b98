"""Exact rate limits whose counters live in Durable Object storage (so they survive eviction).

`take(record, kind, now_ms)` is pure: the room stores the returned record in the same atomic put as
the message it admits, so a limit can neither be skipped by a crash nor double-count a retry.
"""

from __future__ import annotations

__all__ = ["LIMITS", "take", "empty"]

# kind -> (max events, window ms).  Chat frames only: pings, typing and receipts are not counted.
LIMITS = {"chat": (15, 60_000), "nudge": (1, 5_000)}


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
