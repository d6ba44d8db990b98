"""Audit trail, Logpush-style: security events batched as NDJSON objects in R2 under `audit/`.

A record is written by `record()` into the `AuditLog` Durable Object (one instance, "log"), which
keeps it in durable storage before the call returns, so a crash after the request answered loses
nothing.  The object writes its buffer to R2 (the ARCHIVE bucket) as one NDJSON object when it holds
`AUDIT_BATCH_MAX` records, or `AUDIT_FLUSH_SECONDS` after the first buffered record (its alarm, on the
runtime clock), at `audit/YYYY/MM/DD/HH-<first sequence>.ndjson` (UTC, the hour of the batch's first
record).  The key is a function of the batch's first sequence number, so a flush repeated after a
crash overwrites the same object instead of writing the records twice.

Privacy: a record never holds a user id, username, address, password, token or message text.  The
account acted on is `a:` + a keyed hash (HMAC under ANALYTICS_KEY) of its random user id, the client a
keyed hash of its address (as the sign-in limiter already keys it).  Deleting an account deletes the
only link from the hash to a person (the account record holding the user id), so audit files are never
rewritten; an operator holding the key can still find an account's events while it exists.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

from js import Date
from workers import DurableObject

import events
from store import entries, jlist, py

__all__ = ["AUDIT_EVENTS", "OUTCOMES", "PREFIX", "AuditLog", "account_ref", "record", "read", "purge",
           "batch_key", "settings"]

AUDIT_EVENTS = ("sign_up", "sign_in", "sign_out", "token_refresh", "session_revoked", "account_deleted",
                "admin_action", "rate_limited")
OUTCOMES = ("success", "failure", "denied")
PREFIX = "audit/"
DEFAULT_BATCH_MAX = 100
DEFAULT_FLUSH_S = 60
DEFAULT_RETENTION_DAYS = 90
DAY_MS = 86_400_000
MAX_EXPORT_RECORDS = 50_000
_REASON_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _int_var(env, name: str, default: int) -> int:
    try:
        value = int(str(getattr(env, name, "") or default))
    except ValueError:
        return default
    return value if value >= 1 else default


def settings(env) -> dict:
    """{"batchMax", "flushMs", "retentionDays", "exportMax"} from the vars AUDIT_BATCH_MAX,
    AUDIT_FLUSH_SECONDS, AUDIT_RETENTION_DAYS, AUDIT_EXPORT_MAX_RECORDS (defaults 100 records, 60 s,
    90 days, 50,000 records per export call)."""
    return {"batchMax": _int_var(env, "AUDIT_BATCH_MAX", DEFAULT_BATCH_MAX),
            "flushMs": _int_var(env, "AUDIT_FLUSH_SECONDS", DEFAULT_FLUSH_S) * 1000,
            "retentionDays": _int_var(env, "AUDIT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
            "exportMax": min(_int_var(env, "AUDIT_EXPORT_MAX_RECORDS", MAX_EXPORT_RECORDS), MAX_EXPORT_RECORDS)}


def account_ref(env, uid: str | None) -> str | None:
    """How a record names an account: `a:` + keyed hash of the user id (never the id or the name)."""
    return None if not uid else "a:" + events.keyed_hash(env, "audit-account:" + uid)


def _token(value) -> str | None:
    """A reason or detail value: a short word from code, never free text from a user."""
    if value is None:
        return None
    text = str(value)
    if not 1 <= len(text) <= 40 or not set(text) <= _REASON_CHARS:
        raise ValueError(f"audit reasons are short lowercase words, not {text[:40]!r}")
    return text


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def build(env, event: str, outcome: str, *, request_id: str | None = None, client: str | None = None,
          account: str | None = None, actor: str | None = None, reason: str | None = None,
          count: int | None = None) -> dict:
    """One audit record (not yet stored); `account` is a user id and is hashed here."""
    if event not in AUDIT_EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    now = int(Date.now())
    rec = {"ts": now, "time": _iso(now), "event": event, "outcome": outcome,
           "requestId": str(request_id)[:64] if request_id else None, "client": client,
           "account": account_ref(env, account), "actor": _token(actor), "reason": _token(reason)}
    if count is not None:
        rec["count"] = int(count)
    return rec


async def record(env, event: str, outcome: str, **fields) -> bool:
    """Store one security event durably (returns once it is in the AuditLog object's storage).

    Auditing never breaks the request it describes: a failure is printed and False returned.
    """
    binding = getattr(env, "AUDIT", None)
    if binding is None:
        return False
    rec = build(env, event, outcome, **fields)
    try:
        result = py(await binding.getByName("log").append(json.dumps(rec, separators=(",", ":"))))
        return bool(result.get("ok"))
    except Exception as error:
        print(f"audit: {event} not recorded: {error!r}")
        return False


def batch_key(first_ts: int, first_seq: int) -> str:
    """audit/YYYY/MM/DD/HH-<first sequence, 12 digits>.ndjson (UTC hour of the batch's first record)."""
    at = datetime.fromtimestamp(first_ts / 1000, timezone.utc)
    return f"{PREFIX}{at:%Y/%m/%d}/{at:%H}-{first_seq:012d}.ndjson"


def _key_hour_ms(key: str) -> int | None:
    """The start (ms) of the hour an audit key names, None for a key of another shape."""
    parts = key[len(PREFIX):].split("/") if key.startswith(PREFIX) else []
    if len(parts) != 4 or not parts[3].endswith(".ndjson"):
        return None
    try:
        at = datetime.strptime("/".join(parts[:3]) + " " + parts[3][:2], "%Y/%m/%d %H").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(at.timestamp() * 1000)


async def _keys(bucket, prefix: str) -> list[str]:
    out, cursor = [], None
    while True:
        page = await bucket.list(prefix=prefix, cursor=cursor) if cursor else await bucket.list(prefix=prefix)
        out += [o.key for o in page.objects]
        if not page.truncated:
            return out
        cursor = page.cursor


def _key_seq(key: str) -> int | None:
    """The first sequence number a batch key names (batches in sequence order are in time order)."""
    try:
        return int(key.rsplit("-", 1)[1][:-len(".ndjson")])
    except (IndexError, ValueError):
        return None


async def read(env, from_ms: int, to_ms: int, limit: int | None = None) -> tuple[list[str], int | None, int]:
    """(NDJSON lines of the records with from_ms <= ts < to_ms in R2, in order, at most `limit`
    (default MAX_EXPORT_RECORDS); the `ts` to continue from when more remain, else None; how many lines
    were skipped because they are not records (a damaged file)).

    Files are read one at a time in sequence order and reading stops once the cap is passed, so memory
    holds at most the cap plus one batch, whatever the range holds."""
    limit = MAX_EXPORT_RECORDS if limit is None else limit
    bucket = env.ARCHIVE
    # A batch is named for its first record's hour; its last record is at most one flush interval
    # later, so files from one hour (plus that interval) before `from_ms` may still hold records.
    start = from_ms - 3_600_000 - settings(env)["flushMs"]
    keys = []
    day = start - start % DAY_MS
    while day < to_ms:
        prefix = PREFIX + datetime.fromtimestamp(day / 1000, timezone.utc).strftime("%Y/%m/%d/")
        keys += [k for k in await _keys(bucket, prefix) if (_key_hour_ms(k) or 0) + 3_600_000 > start
                 and (_key_hour_ms(k) or 0) < to_ms and _key_seq(k) is not None]
        day += DAY_MS
    keys.sort(key=_key_seq)
    lines: list[tuple[int, str]] = []
    skipped = 0
    for key in keys:
        if len(lines) > limit:  # past the cap: the rest of the range is not read at all
            break
        obj = await bucket.get(key)
        if obj is None:
            continue
        for line in (await obj.text()).splitlines():
            if not line.strip():
                continue
            try:
                ts = json.loads(line).get("ts")
            except (ValueError, AttributeError):
                ts = None
            if not isinstance(ts, int) or isinstance(ts, bool):  # not a record: one damaged line, not the export
                skipped += 1
                continue
            if from_ms <= ts < to_ms:
                lines.append((ts, line))
    if skipped:
        print(f"audit: export skipped {skipped} line(s) that are not records")
    # Where to go on: the earliest record left out that was read (records appended concurrently may be
    # a few ms out of order; records at that very millisecond already exported come again, none is lost).
    next_from = min(ts for ts, _ in lines[limit:]) if len(lines) > limit else None
    return [line for _, line in lines[:limit]], next_from, skipped


async def purge(env, now_ms: int) -> int:
    """Delete the audit objects whose hour ended before the retention window; how many."""
    bucket = getattr(env, "ARCHIVE", None)
    if bucket is None:
        return 0
    cutoff = now_ms - settings(env)["retentionDays"] * DAY_MS
    gone = 0
    for key in await _keys(bucket, PREFIX):
        hour = _key_hour_ms(key)
        # A batch may hold records up to one flush interval after its hour: kept until they are old too.
        if hour is not None and hour + 3_600_000 + settings(env)["flushMs"] <= cutoff:
            await bucket.delete(key)
            gone += 1
    return gone


class AuditLog(DurableObject):
    """The durable buffer in front of R2 (instance "log"): append, flush by size or by alarm."""

    def _lock(self) -> asyncio.Lock:
        if getattr(self, "_flush_lock", None) is None:
            self._flush_lock = asyncio.Lock()
        return self._flush_lock

    async def append(self, record_json: str) -> str:
        """Buffer one record (durable when this returns); flush at once when the batch is full."""
        storage = self.ctx.storage
        seq = int(await storage.get("seq") or 0) + 1
        await storage.put({"seq": str(seq), f"r:{seq:012d}": record_json})
        # After the record: a flush that just emptied the buffer and dropped its alarm either saw this
        # record (and armed again) or left no alarm, which this sets.
        if await storage.getAlarm() is None:
            await storage.setAlarm(Date.now() + settings(self.env)["flushMs"])
        if seq - int(await storage.get("flushed") or 0) >= settings(self.env)["batchMax"]:
            try:
                await self._flush()
            except Exception as error:  # the record is stored: the alarm writes the batch later
                print(f"audit: flush by size failed, the alarm retries: {error!r}")
        return json.dumps({"ok": True, "seq": seq})

    async def flush(self) -> str:
        """Write everything buffered to R2 now (the admin export calls this first)."""
        written = await self._flush()
        return json.dumps({"ok": True, "written": written})

    async def pending(self) -> str:
        """How many records wait in the buffer."""
        return json.dumps({"ok": True, "count": len(await jlist(self.ctx.storage, prefix="r:"))})

    async def _flush(self) -> list[str]:
        async with self._lock():  # one flush at a time: two would cut the same records differently
            storage = self.ctx.storage
            batch_max = settings(self.env)["batchMax"]
            written = []
            while True:
                rows = entries(await storage.list(prefix="r:", limit=batch_max))
                if not rows:
                    break
                first_seq = int(rows[0][0][2:])
                key = batch_key(json.loads(rows[0][1])["ts"], first_seq)
                body = "".join(v + "\n" for _, v in rows)
                await self.env.ARCHIVE.put(key, body, httpMetadata={"contentType": "application/x-ndjson"})
                # Only once R2 holds the batch: a crash before this repeats the same key, no duplicate.
                await storage.delete([k for k, _ in rows])
                await storage.put("flushed", str(int(rows[-1][0][2:])))
                written.append(key)
            await storage.deleteAlarm()
            if entries(await storage.list(prefix="r:", limit=1)):  # appended while the alarm was dropped
                await storage.setAlarm(Date.now() + settings(self.env)["flushMs"])
            return written

    async def alarm(self, alarm_info=None) -> None:
        """Flush by time: whatever waited one flush interval goes to R2."""
        await self._flush()
