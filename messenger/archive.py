"""Cold copies of the message log: D1 (searchable, by a keyed token index) and daily NDJSON in R2.

Bodies stay sealed in both (bodies.py): a D1 row's `body` and an NDJSON line's `body` are the same
AES-256-GCM envelope as in the room's log; `search` and `read_day` open them for members.

Both are deduplicated by message id: D1's primary key ignores a second insert of the same message,
and an R2 day file is rewritten whole from D1, so replays and retries never duplicate a line.
Search never stores plaintext terms: each word is indexed as HMAC(SEARCH_KEY, word).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from js import Object
from pyodide.ffi import to_js

import bodies
import events
import keys
from bots import day_of
from naming import may_join

__all__ = ["record", "search", "export_day", "rewrite_day", "read_day", "reseal_d1", "reseal_r2", "rooms_of", "erase_user", "forget", "delete_statements", "changes",
           "terms", "SCHEMA"]

_WORD = re.compile(r"[\w']{2,32}", re.UNICODE)
_DEFAULT_KEY = "cf-messenger-local-search-key"
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL, "
    "sender TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, body TEXT NOT NULL, "
    "ts INTEGER NOT NULL, day TEXT NOT NULL, UNIQUE (room, seq))",
    "CREATE INDEX IF NOT EXISTS messages_day ON messages (day, room, seq)",
    "CREATE TABLE IF NOT EXISTS message_terms (term TEXT NOT NULL, message_id TEXT NOT NULL, room TEXT NOT NULL, "
    "PRIMARY KEY (term, message_id))",
]


def terms(env, text: str) -> list[str]:
    """Keyed hashes of the distinct lower-cased words of `text`."""
    key = events.secret_key(env, "SEARCH_KEY", _DEFAULT_KEY).encode()
    words = sorted({w.lower() for w in _WORD.findall(text or "")})
    return [hmac.new(key, w.encode(), hashlib.sha256).hexdigest()[:32] for w in words]


async def _ensure(db) -> None:
    for statement in SCHEMA:
        await db.prepare(statement).run()


async def record(env, room: str, msg: dict) -> None:
    """Insert one message (a public message dict) into D1, once."""
    db = getattr(env, "DB", None)
    if db is None:
        return
    content = {k: msg[k] for k in ("text", "wink") if k in msg}
    ring = await keys.keyring(env)
    body = json.dumps(bodies.seal_body(content, ring, room, msg["seq"], msg["id"], msg["from"], msg["kind"]))
    statements = [db.prepare(
        "INSERT OR IGNORE INTO messages (id, room, seq, sender, name, kind, body, ts, day) VALUES (?,?,?,?,?,?,?,?,?)"
    ).bind(msg["id"], room, msg["seq"], msg["from"], msg.get("name", ""), msg["kind"], body, msg["ts"], day_of(msg["ts"]))]
    for term in terms(env, content.get("text", "")):
        statements.append(db.prepare("INSERT OR IGNORE INTO message_terms (term, message_id, room) VALUES (?,?,?)")
                          .bind(term, msg["id"], room))
    try:
        await db.batch(statements)
    except Exception as error:
        if "no such table" not in str(error):
            raise
        await _ensure(db)
        await db.batch(statements)


def _rows(result) -> list[dict]:
    if hasattr(result, "to_py"):
        result = result.to_py()
    rows = result["results"] if isinstance(result, dict) else result.results
    return [dict(r.to_py() if hasattr(r, "to_py") else r) for r in rows]


def _meta_row(row: dict) -> dict:
    return {"id": row["id"], "room": row["room"], "seq": row["seq"], "from": row["sender"], "name": row["name"],
            "kind": row["kind"], "ts": row["ts"]}


def _opened(out: dict, body, ring) -> dict:
    """`out` with the content of `body` (or marked unreadable when it does not open)."""
    try:
        out.update(bodies.open_body(body, ring, out["room"], out["seq"], out["id"], out.get("from"), out.get("kind")))
    except (bodies.BodyError, ValueError) as error:
        print(f"archive: {error}")
        out.update(unreadable=True, error=bodies.UNREADABLE)
    return out


async def _ring_for(env, bodies_: list):
    want = {bodies.kid_of(b) for b in bodies_} - {None}
    return await keys.keyring(env, want) if want else None


def _load_body(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


async def _public_rows(env, rows: list[dict]) -> list[dict]:
    loaded = [_load_body(r["body"]) for r in rows]
    ring = await _ring_for(env, loaded)
    return [_opened(_meta_row(r), b, ring) for r, b in zip(rows, loaded)]


async def search(env, uid: str, query: str, limit: int = 50) -> list[dict]:
    """Messages containing every word of `query`, in rooms `uid` may read, newest first."""
    db = getattr(env, "DB", None)
    wanted = terms(env, query)
    if db is None or not wanted:
        return []
    placeholders = ",".join("?" for _ in wanted)
    sql = ("SELECT m.* FROM messages m WHERE m.id IN (SELECT message_id FROM message_terms WHERE term IN "
           f"({placeholders}) GROUP BY message_id HAVING count(*) = ?) ORDER BY m.ts DESC LIMIT 500")
    try:
        result = await db.prepare(sql).bind(*wanted, len(wanted)).all()
    except Exception as error:
        if "no such table" in str(error):
            return []
        raise
    rows = [r for r in _rows(result) if may_join(r["room"], uid)]
    return await _public_rows(env, rows[:limit])


async def export_day(env, day: str) -> list[str]:
    """Write `archive/<room>/<day>.ndjson` to R2 for every room active that day; returns the keys."""
    db, bucket = getattr(env, "DB", None), getattr(env, "ARCHIVE", None)
    if db is None or bucket is None:
        return []
    try:
        rooms = _rows(await db.prepare("SELECT DISTINCT room FROM messages WHERE day = ? ORDER BY room").bind(day).all())
    except Exception as error:
        if "no such table" in str(error):
            return []
        raise
    written = []
    for r in rooms:
        written.append(await rewrite_day(db, bucket, r["room"], day))
    return written


def _archive_key(room: str, day: str) -> str:
    return f"archive/{room}/{day}.ndjson"


async def rewrite_day(db, bucket, room: str, day: str) -> str:
    """(Re)write one room's day file from D1, whole; a day with no message left has no file."""
    rows = _rows(await db.prepare("SELECT * FROM messages WHERE day = ? AND room = ? ORDER BY seq").bind(day, room).all())
    key = _archive_key(room, day)
    if not rows:
        await bucket.delete(key)
        return key
    # The sealed body as D1 holds it (never opened here): the file holds no plaintext.
    lines = "".join(json.dumps({**_meta_row(row), "body": _load_body(row["body"])}, separators=(",", ":")) + "\n"
                    for row in rows)
    await bucket.put(key, lines, httpMetadata=to_js({"contentType": "application/x-ndjson"}, dict_converter=Object.fromEntries))
    return key


async def rooms_of(env, uid: str) -> list[str]:
    """Rooms where D1 holds a message of `uid` (account deletion: where to look besides the obvious)."""
    db = getattr(env, "DB", None)
    if db is None:
        return []
    try:
        return [r["room"] for r in _rows(await db.prepare("SELECT DISTINCT room FROM messages WHERE sender = ?").bind(uid).all())]
    except Exception as error:
        if "no such table" in str(error):
            return []
        raise


async def erase_user(env, uid: str, whole_rooms: list[str]) -> dict:
    """Account deletion: drop `uid`'s rows (and every row of `whole_rooms`) with their search terms from
    D1, then rewrite the R2 day files that held them (already exported days only; the cron writes the
    rest from D1 as it stands).  {"rows", "archives"}."""
    db, bucket = getattr(env, "DB", None), getattr(env, "ARCHIVE", None)
    if db is None:
        return {"rows": 0, "archives": []}
    whole = list(whole_rooms)
    where = "sender = ?" + (f" OR room IN ({','.join('?' for _ in whole)})" if whole else "")
    params = [uid, *whole]
    try:
        days = _rows(await db.prepare(f"SELECT DISTINCT room, day FROM messages WHERE {where}").bind(*params).all())
    except Exception as error:
        if "no such table" in str(error):
            return {"rows": 0, "archives": []}
        raise
    results = await db.batch(delete_statements(db, where, params))
    deleted = changes(results[1])
    rewritten = []
    if bucket is not None:
        for r in days:
            key = _archive_key(r["room"], r["day"])
            if await bucket.head(key) is not None:
                await rewrite_day(db, bucket, r["room"], r["day"])
                rewritten.append(key)
    return {"rows": deleted, "archives": rewritten}


async def forget(env, mid: str) -> int:
    """Delete one message (and its search terms) from D1: a row that landed after its author's
    account deletion swept D1.  How many rows went."""
    db = getattr(env, "DB", None)
    if db is None:
        return 0
    return changes((await db.batch(delete_statements(db, "id = ?", [mid])))[1])


def delete_statements(db, where: str, params: list) -> list:
    """The two statements that delete the messages matching `where`: their search terms, then them."""
    return [
        db.prepare(f"DELETE FROM message_terms WHERE message_id IN (SELECT id FROM messages WHERE {where})").bind(*params),
        db.prepare(f"DELETE FROM messages WHERE {where}").bind(*params),
    ]


def changes(result) -> int:
    if hasattr(result, "to_py"):
        result = result.to_py()
    meta = result["meta"] if isinstance(result, dict) else result.meta
    if hasattr(meta, "to_py"):
        meta = meta.to_py()
    return int(meta["changes"] if isinstance(meta, dict) else meta.changes)


def _js(value: dict):
    return to_js(value, dict_converter=Object.fromEntries)


async def read_day(env, room: str, day: str) -> list[dict] | None:
    """The messages of one room's day file, opened (None when there is no file)."""
    bucket = getattr(env, "ARCHIVE", None)
    obj = await bucket.get(_archive_key(room, day)) if bucket is not None else None
    if obj is None:
        return None
    lines = [json.loads(x) for x in (await obj.text()).splitlines() if x.strip()]
    ring = await _ring_for(env, [x.get("body") for x in lines])
    out = []
    for line in lines:
        body = line.pop("body", None)
        out.append(_opened(line, body, ring) if body is not None else line)  # a legacy plaintext line as it is
    return out


_RESEAL_PAGE = 200


def _load_line(raw: str):
    """A day-file line as an object, or the raw text when it is not a JSON object (kept verbatim)."""
    try:
        line = json.loads(raw)
    except ValueError:
        return raw
    return line if isinstance(line, dict) and {"room", "seq", "id"} <= set(line) else raw


async def reseal_d1(env, everything: bool = False) -> dict:
    """Re-encryption of D1 bodies with the current data key: the legacy plain ones, or (`everything`)
    every one sealed with another key.  Each update is conditional on the body being unchanged, so a
    row deleted or rewritten meanwhile is left alone.  {"resealed", "unreadable"}."""
    db = getattr(env, "DB", None)
    if db is None:
        return {"resealed": 0, "unreadable": 0}
    ring = await keys.keyring(env, fresh=True)
    cursor, done, bad = "", 0, 0
    # (CASE: json_extract raises on a body that is not JSON, which would stop the whole run; such a
    # row is selected and counted unreadable like any body that does not open.)
    sql = ("SELECT id, room, seq, sender, kind, body FROM messages WHERE id > ? AND CASE WHEN json_valid(body) THEN"
           " (json_extract(body, '$.scheme') IS NOT 'aesgcm' OR (? AND json_extract(body, '$.kid') IS NOT ?))"
           " ELSE 1 END ORDER BY id LIMIT ?")
    while True:
        try:
            rows = _rows(await db.prepare(sql).bind(cursor, 1 if everything else 0, ring.current, _RESEAL_PAGE).all())
        except Exception as error:
            if "no such table" in str(error):
                break
            raise
        if not rows:
            break
        cursor = rows[-1]["id"]
        loaded = [_load_body(r["body"]) for r in rows]
        want = {bodies.kid_of(b) for b in loaded} - {None}
        if want - set(ring.keys):
            ring = await keys.keyring(env, want)
        statements = []
        for row, body in zip(rows, loaded):
            try:
                content = bodies.open_body(body, ring, row["room"], row["seq"], row["id"], row["sender"], row["kind"])
            except (bodies.BodyError, ValueError) as error:
                print(f"archive: not re-encrypted: {error}")
                bad += 1
                continue
            sealed = json.dumps(bodies.seal_body(content, ring, row["room"], row["seq"], row["id"], row["sender"], row["kind"]))
            statements.append(db.prepare("UPDATE messages SET body = ? WHERE id = ? AND body = ?")
                              .bind(sealed, row["id"], row["body"]))
        if statements:
            done += sum(changes(r) for r in await db.batch(statements))
        if len(rows) < _RESEAL_PAGE:
            break
    return {"resealed": done, "unreadable": bad}


async def reseal_r2(env, everything: bool = False) -> dict:
    """Re-encryption of the R2 day files in place: legacy plaintext lines (from before encryption)
    are sealed, and (`everything`) lines under another data key are sealed again with the current
    one.  A file is rewritten only when one of its lines changed.  {"files", "lines", "unreadable"}."""
    bucket = getattr(env, "ARCHIVE", None)
    if bucket is None:
        return {"files": 0, "lines": 0, "unreadable": 0}
    ring = await keys.keyring(env, fresh=True)
    files = count = bad = 0
    cursor = None
    while True:
        page = await bucket.list(prefix="archive/", cursor=cursor) if cursor else await bucket.list(prefix="archive/")
        for obj in page.objects:
            if not obj.key.endswith(".ndjson"):
                continue
            got = await bucket.get(obj.key)
            if got is None:
                continue
            lines = [_load_line(x) for x in (await got.text()).splitlines() if x.strip()]
            want = {bodies.kid_of(x.get("body")) for x in lines if isinstance(x, dict)} - {None}
            if want - set(ring.keys):
                ring = await keys.keyring(env, want)
            changed = 0
            for i, line in enumerate(lines):
                if isinstance(line, str):  # not a message's JSON object: kept as it is, counted
                    print(f"archive: {obj.key}: a line is not a JSON object; not re-encrypted")
                    bad += 1
                    continue
                meta = {k: v for k, v in line.items() if k not in ("text", "wink", "body")}
                if "body" not in line:
                    content = {k: line[k] for k in ("text", "wink") if k in line}
                elif bodies.needs_reseal(line["body"], ring.current, everything):
                    try:
                        content = bodies.open_body(line["body"], ring, line["room"], line["seq"], line["id"],
                                                   line.get("from"), line.get("kind"))
                    except (bodies.BodyError, ValueError) as error:
                        print(f"archive: not re-encrypted: {error}")
                        bad += 1
                        continue
                else:
                    continue
                lines[i] = {**meta, "body": bodies.seal_body(content, ring, line["room"], line["seq"], line["id"],
                                                             line.get("from"), line.get("kind"))}
                changed += 1
            if changed:
                text = "".join((x if isinstance(x, str) else json.dumps(x, separators=(",", ":"))) + "\n"
                               for x in lines)
                # Only over the version read: a file rewritten meanwhile (an account deletion dropping
                # lines) is not overwritten with what it held before; the next run takes it up.
                put = await bucket.put(obj.key, text, httpMetadata=_js({"contentType": "application/x-ndjson"}),
                                       onlyIf=_js({"etagMatches": got.etag}))
                if put is None:
                    print(f"archive: {obj.key} changed while being re-encrypted; left for the next run")
                    continue
                files += 1
                count += changed
        if not page.truncated:
            break
        cursor = page.cursor
    return {"files": files, "lines": count, "unreadable": bad}
