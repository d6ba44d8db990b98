"""Retention: how long each room keeps its messages, and the daily purge of the cold copies.

Each ChatRoom purges its own log with its alarm (rooms.py); this module holds the policy and the
purge of D1 (rows and search terms) and of the R2 day files, run by the daily archive cron.
Policy: `RETENTION_DAYS` (var, default 30) for every room, `ROOM_RETENTION_DAYS` (var, JSON object
{room: days}) for rooms that differ.
"""

from __future__ import annotations

import json

__all__ = ["DEFAULT_DAYS", "DAY_MS", "retention_ms", "overrides", "purge_cold"]

DEFAULT_DAYS = 30
DAY_MS = 86_400_000


def _days(value, fallback: int) -> int:
    try:
        days = int(str(value))
    except (TypeError, ValueError):
        return fallback
    return days if days >= 1 else fallback


def _default_days(env) -> int:
    return _days(getattr(env, "RETENTION_DAYS", None), DEFAULT_DAYS)


def overrides(env) -> dict[str, int]:
    """{room: days} from the `ROOM_RETENTION_DAYS` var (ignored when it is not a JSON object)."""
    raw = getattr(env, "ROOM_RETENTION_DAYS", None)
    if not raw:
        return {}
    try:
        table = json.loads(str(raw))
    except ValueError:
        print("retention: ROOM_RETENTION_DAYS is not JSON; using RETENTION_DAYS for every room")
        return {}
    if not isinstance(table, dict):
        return {}
    fallback = _default_days(env)
    return {str(room): _days(days, fallback) for room, days in table.items()}


def retention_ms(env, room: str) -> int:
    """How long `room` keeps a message."""
    return overrides(env).get(room, _default_days(env)) * DAY_MS


def _day_start_ms(day: str) -> int | None:
    from datetime import datetime, timezone

    try:
        return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp() * 1000)
    except ValueError:
        return None


async def purge_cold(env, now_ms: int) -> dict:
    """Drop from D1 every message past its room's retention, and from R2 every day file whose day is
    past it (a day file that straddles the limit is rewritten from D1).  {"rows", "files"}."""
    import archive

    db, bucket = getattr(env, "DB", None), getattr(env, "ARCHIVE", None)
    special = overrides(env)
    default_cutoff = now_ms - _default_days(env) * DAY_MS
    rows = 0
    if db is not None:
        statements = []
        for room, days in special.items():
            cutoff = now_ms - days * DAY_MS
            where, params = "room = ? AND ts < ?", [room, cutoff]
            statements += archive.delete_statements(db, where, params)
        where = "ts < ?"
        params: list = [default_cutoff]
        if special:
            # One parameter however many rooms differ (D1 binds at most 100).
            where += " AND room NOT IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(special)))
        statements += archive.delete_statements(db, where, params)
        try:
            results = await db.batch(statements)
        except Exception as error:
            if "no such table" not in str(error):
                raise
            results = []
        rows = sum(archive.changes(r) for r in results[1::2])
    files = 0
    if bucket is not None:
        cursor = None
        while True:
            page = await bucket.list(prefix="archive/", cursor=cursor) if cursor else await bucket.list(prefix="archive/")
            for obj in page.objects:
                parts = obj.key.split("/")
                if len(parts) != 3 or not parts[2].endswith(".ndjson"):
                    continue
                room, day = parts[1], parts[2][:-len(".ndjson")]
                start = _day_start_ms(day)
                if start is None:
                    continue
                cutoff = now_ms - special.get(room, _default_days(env)) * DAY_MS
                if start + DAY_MS <= cutoff:
                    await bucket.delete(obj.key)
                    files += 1
                elif start < cutoff and db is not None:
                    await archive.rewrite_day(db, bucket, room, day)
                    files += 1
            if not page.truncated:
                break
            cursor = page.cursor
    return {"rows": rows, "files": files}
