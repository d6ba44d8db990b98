"""Audit trail: security events as NDJSON batches in R2 under audit/ (Logpush-style), through the
AuditLog Durable Object's durable buffer; export by the admin endpoint and by `cfemu r2`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from messenger_client import api, frames_until, login, room
from messenger_support import test_config

ADMIN = "audit-admin-token-0123456789abcdef"
PASSWORD = "zoe-password-1"


def _runtime(tmp_path, **extra):
    from cfemu.testing import Runtime

    return Runtime.from_config(test_config(tmp_path, {"ADMIN_TOKEN": ADMIN, **extra}), persist_to=tmp_path / "state")


async def _files(rt) -> dict[str, list[dict]]:
    out = {}
    for obj in (await rt.env.ARCHIVE.list(prefix="audit/")).objects:
        text = await (await rt.env.ARCHIVE.get(obj.key)).text()
        out[obj.key] = [json.loads(line) for line in text.splitlines()]
    return out


async def _records(rt) -> list[dict]:
    return [r for recs in (await _files(rt)).values() for r in recs]


async def _export(rt, query: str = "", token: str = ADMIN, status: int = 200):
    resp = await rt.fetch("/api/admin/audit" + query, headers={"authorization": f"Bearer {token}"})
    text = await resp.text()
    assert resp.status == status, text
    return resp, text


async def _security_story(rt) -> dict:
    """Every kind of security event, once or more."""
    zoe = await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
    await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": "wrong-password"}, expect=401)
    zoe = await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": PASSWORD})
    old = zoe["refreshToken"]
    zoe = await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": old})
    await api(rt, "POST", "/api/auth/refresh", body={"refreshToken": old}, expect=401)   # reuse: revoked
    zoe = await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": PASSWORD})
    await api(rt, "POST", "/api/auth/logout", zoe["accessToken"], body={})
    bob = await login(rt, "bob")
    ws, _ = await room(rt, "general", bob)
    for i in range(16):                                                                   # 15 a minute
        await ws.send(json.dumps({"type": "send", "cid": f"flood{i}", "kind": "text", "text": f"hello {i}"}))
    err, _ = await frames_until(ws, "error")
    assert err["code"] == "rate_limited"
    await api(rt, "DELETE", "/api/admin/users/ucarol", "not-the-token", expect=403)
    zoe = await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": PASSWORD})
    await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": PASSWORD})
    await api(rt, "DELETE", "/api/admin/users/ucarol", ADMIN)
    return zoe


async def test_each_security_event_becomes_a_record_flushed_by_time_on_the_virtual_clock(tmp_path):
    async with _runtime(tmp_path) as rt:
        zoe = await _security_story(rt)
        assert await _files(rt) == {}                     # buffered, not yet due
        await rt.advance(61)                              # the flush interval (60 s) on the runtime clock
        records = await _records(rt)
    seen = {(r["event"], r["outcome"], r.get("reason") or r.get("actor")) for r in records}
    for expected in [("sign_up", "success", None), ("sign_in", "failure", "bad_credentials"),
                     ("sign_in", "success", None), ("token_refresh", "success", None),
                     ("session_revoked", "success", "refresh_reuse"), ("token_refresh", "failure", "session_revoked"),
                     ("sign_out", "success", "this_session"), ("rate_limited", "denied", "chat"),
                     ("admin_action", "denied", "delete_user"), ("account_deleted", "success", "self"),
                     ("admin_action", "success", "delete_user")]:
        assert expected in seen, expected
    assert [r for r in records if r["event"] == "account_deleted" and r["actor"] == "admin"]
    # Only the first refusal of a flood is recorded.
    limited = [r for r in records if r["event"] == "rate_limited"]
    assert len(limited) == 1 and limited[0]["account"].startswith("a:")   # bob's, through ctx.id.name
    for r in records:
        assert set(r) >= {"ts", "time", "event", "outcome", "requestId", "client", "account", "actor", "reason"}
        assert isinstance(r["ts"], int) and r["time"].endswith("Z")
    http = [r for r in records if r["event"] != "rate_limited"]
    assert all(r["requestId"] and r["client"] for r in http)
    assert len({r["requestId"] for r in http if r["event"] in ("sign_up", "sign_in")}) >= 3
    # The account is a keyed hash: the same for every event of one account, never the id.
    ref = next(r["account"] for r in records if r["event"] == "sign_up")
    assert ref.startswith("a:") and len(ref) == 18
    assert {r["outcome"] for r in records if r["event"] == "sign_in" and r["account"] == ref} == {"success", "failure"}
    assert [r for r in records if r["event"] == "account_deleted" and r["actor"] == "self"][0]["account"] == ref
    assert zoe["user"]["id"] not in json.dumps(records)


async def test_batches_are_ndjson_objects_keyed_by_hour_and_flushed_by_size(tmp_path):
    async with _runtime(tmp_path, AUDIT_BATCH_MAX="5") as rt:
        for i in range(12):
            await api(rt, "POST", "/api/auth/login", body={"username": f"nobody{i}", "password": "x-password"},
                      expect=401)
        files = await _files(rt)
        assert [len(v) for v in files.values()] == [5, 5]                 # two full batches, 2 still buffered
        for key in files:
            assert key.startswith("audit/20") and key.endswith(".ndjson"), key
            head = (await rt.env.ARCHIVE.head(key))
            assert head.httpMetadata.contentType == "application/x-ndjson"
        first = min(files)
        ts = files[first][0]["ts"]
        from datetime import datetime, timezone

        at = datetime.fromtimestamp(ts / 1000, timezone.utc)
        assert first == f"audit/{at:%Y/%m/%d}/{at:%H}-000000000001.ndjson"
        await rt.advance(60)
        assert sum(len(v) for v in (await _files(rt)).values()) == 12


async def test_a_crash_after_the_answer_loses_no_record(tmp_path):
    async with _runtime(tmp_path) as rt:
        await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
        await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": "wrong-password"}, expect=401)
        await rt.crash()
        await rt.restart()
        assert await _files(rt) == {}
        await rt.advance(61)                      # the alarm survived the crash
        events = sorted((r["event"], r["outcome"]) for r in await _records(rt))
    assert events == [("sign_in", "failure"), ("sign_up", "success")]


async def test_a_flush_that_dies_after_writing_r2_is_repeated_under_the_same_key_without_duplicates(tmp_path):
    async with _runtime(tmp_path) as rt:
        for name in ("zoe", "yan"):
            await api(rt, "POST", "/api/auth/register", body={"username": name, "password": PASSWORD})
        # The object dies right after R2 took the batch: its buffer delete never commits.
        rt.fail_next_storage_write("AUDIT", "log")
        with pytest.raises(Exception):
            await rt.env.AUDIT.getByName("log").flush()
        first = await _files(rt)
        assert [len(v) for v in first.values()] == [2]
        assert len([k for k in rt.storage("AUDIT", "log").list() if k.startswith("r:")]) == 2   # still buffered
        await rt.advance(61)                                   # the alarm flushes again: same key, same lines
        again = await _files(rt)
        assert again == first
        assert [k for k in rt.storage("AUDIT", "log").list() if k.startswith("r:")] == []


async def test_admin_export_returns_ndjson_in_range_and_is_itself_audited(tmp_path):
    async with _runtime(tmp_path) as rt:
        await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
        t1 = int(rt.now() * 1000)
        await rt.advance(7200)
        await api(rt, "POST", "/api/auth/login", body={"username": "zoe", "password": PASSWORD})
        resp, text = await _export(rt)                                        # last 24 h, buffered ones too
        assert resp.headers.get("content-type").startswith("application/x-ndjson")
        lines = [json.loads(line) for line in text.splitlines()]
        assert [(r["event"], r["outcome"]) for r in lines] == [("sign_up", "success"), ("sign_in", "success"),
                                                               ("admin_action", "success")]
        assert resp.headers.get("x-audit-records") == "3"
        _, text = await _export(rt, f"?from={t1 - 3_600_000}&to={t1 + 1}")
        assert [json.loads(line)["event"] for line in text.splitlines()] == ["sign_up"]
        _, text = await _export(rt, f"?from={t1 + 1}")
        assert [json.loads(line)["event"] for line in text.splitlines()][:1] == ["sign_in"]
        # Refused without the token, with a user's token, and for a bad range.
        zoe = await login(rt, "alice")
        for token in ("wrong", zoe["accessToken"]):
            resp, text = await _export(rt, token=token, status=403)
            assert json.loads(text)["error"]["code"] == "forbidden"
        _, text = await _export(rt, "?from=5&to=4", status=400)
        assert json.loads(text)["error"] == {"code": "invalid_field", "message": "from must be before to"}
        _, text = await _export(rt, "?from=abc", status=400)
        assert json.loads(text)["error"]["code"] == "invalid_field"
        _, text = await _export(rt, "?to=100000000000000000000", status=400)
        assert json.loads(text)["error"] == {"code": "invalid_field", "message": "from and to must be before year 10000"}
        await rt.advance(61)
        denied = [r for r in await _records(rt) if r["event"] == "admin_action" and r["outcome"] == "denied"]
        assert [r["reason"] for r in denied] == ["audit_export", "audit_export"]


async def test_without_admin_token_the_export_is_off(rt):
    resp = await rt.fetch("/api/admin/audit", headers={"authorization": "Bearer x"})
    assert resp.status == 403
    body = json.loads(await resp.text())
    assert body["error"] == {"code": "forbidden", "message": "the admin API is disabled (no ADMIN_TOKEN secret)"}


async def test_no_identity_password_token_or_message_text_in_audit_files(tmp_path):
    async with _runtime(tmp_path) as rt:
        zoe = await _security_story(rt)
        await rt.advance(61)
        blob = json.dumps(await _records(rt))
        await rt.close()
        files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
        r2 = b"".join(p.read_bytes() for p in files if "r2" in p.parts)
        buffer = b"".join(p.read_bytes() for p in files if "AuditLog" in p.parts)
        state = b"".join(p.read_bytes() for p in files)
    assert b"audit/" in r2 and buffer          # (the bytes searched below are really there)
    for secret in (b"hello 3", zoe["user"]["id"].encode(), b"127.0.0.1"):
        assert secret not in buffer, secret
    assert blob and "audit/" not in blob
    for secret in ("zoe", PASSWORD, "wrong-password", zoe["user"]["id"], "ucarol", "carol", "ubob", "hello 3",
                   "bob-demo", zoe["refreshToken"][:20], zoe["accessToken"][:40], "127.0.0.1"):
        assert secret not in blob, secret
    # No password anywhere on disk (scrypt hashes only), audit trail included.
    assert PASSWORD.encode() not in state and b"wrong-password" not in state


async def test_audit_files_follow_their_retention_setting(tmp_path):
    async with _runtime(tmp_path, AUDIT_RETENTION_DAYS="2") as rt:
        await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
        await rt.advance(61)
        assert len(await _files(rt)) == 1
        await rt.advance(86_400)
        assert await rt.scheduled("15 0 * * *")
        assert len(await _files(rt)) == 1                 # one day old: kept
        await rt.advance(2 * 86_400)
        assert await rt.scheduled("15 0 * * *")
        assert await _files(rt) == {}                     # past 2 days: gone (archive/ files untouched)


def test_the_cli_lists_and_prints_audit_files(tmp_path):
    import asyncio

    async def produce():
        async with _runtime(tmp_path) as rt:
            await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
            await rt.advance(61)

    asyncio.run(produce())
    config = test_config(tmp_path, {"ADMIN_TOKEN": ADMIN})
    from pathlib import Path

    cli = [str(Path(sys.executable).parent / "cfemu")]
    listed = subprocess.run(cli + ["r2", "object", "list", "messenger-archive", "--prefix", "audit/", "--json",
                                   "-c", str(config), "--persist-to", str(tmp_path / "state")],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    keys = [o["key"] for o in json.loads(listed.stdout)]
    assert len(keys) == 1 and keys[0].startswith("audit/")
    got = subprocess.run(cli + ["r2", "object", "get", f"messenger-archive/{keys[0]}", "--pipe",
                                "-c", str(config), "--persist-to", str(tmp_path / "state")],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout.splitlines()[0])["event"] == "sign_up"


def test_records_refuse_free_text_and_unknown_events(modules):
    audit = modules["audit"]

    class Env:
        ANALYTICS_KEY = "k"

    with pytest.raises(ValueError):
        audit.build(Env(), "sign_in", "success", reason="the user's words here")
    with pytest.raises(ValueError):
        audit.build(Env(), "message_sent", "success")
    with pytest.raises(ValueError):
        audit.build(Env(), "sign_in", "maybe")
    assert audit.account_ref(Env(), "u1") == audit.account_ref(Env(), "u1") != audit.account_ref(Env(), "u2")
    assert audit.batch_key(0, 7) == "audit/1970/01/01/00-000000000007.ndjson"


async def test_the_deletion_receipt_says_what_the_audit_trail_keeps(rt):
    zoe = await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
    receipt = await api(rt, "DELETE", "/api/me", zoe["accessToken"], body={"password": PASSWORD})
    assert any(k.startswith("audit trail: ") and "keyed hash" in k for k in receipt["kept"])
    await rt.env.AUDIT.getByName("log").flush()
    blob = json.dumps(await _records(rt))
    assert '"account_deleted"' in blob and zoe["user"]["id"] not in blob and "zoe" not in blob


async def test_admin_key_rotation_is_audited_and_a_refused_one_too(tmp_path):
    async with _runtime(tmp_path) as rt:
        resp = await rt.fetch("/api/admin/keys/rotate?reencrypt=0", method="POST",
                              headers={"authorization": "Bearer wrong"})
        assert resp.status == 403
        resp = await rt.fetch("/api/admin/keys/rotate?reencrypt=0", method="POST",
                              headers={"authorization": f"Bearer {ADMIN}"})
        assert resp.status == 200, await resp.text()
        await rt.env.AUDIT.getByName("log").flush()
        rotations = [(r["outcome"], r["reason"]) for r in await _records(rt) if r["event"] == "admin_action"]
    assert rotations == [("denied", "rotate_keys"), ("success", "rotate_keys")]


async def test_a_failing_r2_write_keeps_the_records_buffered_and_the_alarm_retries(tmp_path):
    async with _runtime(tmp_path, AUDIT_BATCH_MAX="2") as rt:
        bucket = rt.env.ARCHIVE
        real_put = bucket.put
        calls = []

        async def failing_put(*args, **kwargs):
            calls.append(args[0])
            raise RuntimeError("R2 is down")

        bucket.put = failing_put
        try:
            await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
            # The second record fills the batch; its flush fails, yet the record is stored and said so.
            record = json.dumps({"ts": int(rt.now() * 1000), "event": "sign_in", "outcome": "success"})
            answer = json.loads(await rt.env.AUDIT.getByName("log").append(record))
            assert answer["ok"] is True
        finally:
            bucket.put = real_put
        assert calls and await _files(rt) == {}
        await rt.advance(61)
        assert [len(v) for v in (await _files(rt)).values()] == [2]


async def test_a_client_chosen_request_id_cannot_put_free_text_in_the_audit_trail(tmp_path):
    """`requestId` is Cloudflare's ray id (`cf-ray`, which Cloudflare sets itself); a request naming its
    own, with text in it, gets a generated id instead, so the trail carries no text from a client."""
    async with _runtime(tmp_path) as rt:
        ray = "8e2f3c4d5a6b7c8d-AMS"
        for header in ("zoe@example.com tried her password", ray):
            resp = await rt.fetch("/api/auth/login", method="POST", headers={"cf-ray": header},
                                  json={"username": "zoe", "password": "wrong-password"})
            assert resp.status == 401
        await rt.advance(61)
        records = [r for r in await _records(rt) if r["event"] == "sign_in"]
    assert [r["requestId"] == ray for r in records] == [False, True]
    assert "zoe" not in json.dumps(records) and "example" not in json.dumps(records)
    assert all(len(r["requestId"]) <= 24 for r in records)


async def test_public_default_hash_keys_are_warned_about_like_the_master_key(tmp_path, capfd, modules):
    """Without ANALYTICS_KEY the audit trail's `client` is HMAC under a key in the source: any IPv4
    address is found by trying all 2^32; without SEARCH_KEY the search index gives away the words of
    encrypted messages to a dictionary.  Like MESSAGE_MASTER_KEY, running on the defaults is logged."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    modules["events"]._warned.clear()                 # (once per process: the modules are shared)
    async with _runtime(tmp_path / "a") as rt:
        bob = await login(rt, "bob")
        await api(rt, "GET", "/api/search?q=hello", bob["accessToken"])
    out = capfd.readouterr().out
    for name in ("ANALYTICS_KEY", "SEARCH_KEY"):
        assert out.count(f"messenger: {name} is not set: its public LOCAL DEVELOPMENT default is used") == 1, name
    async with _runtime(tmp_path / "b", ANALYTICS_KEY="k" * 32, SEARCH_KEY="s" * 32) as rt:
        bob = await login(rt, "bob")
        await api(rt, "GET", "/api/search?q=hello", bob["accessToken"])
    out = capfd.readouterr().out
    assert "ANALYTICS_KEY is not set" not in out and "SEARCH_KEY is not set" not in out


async def test_an_export_over_a_damaged_audit_file_skips_its_bad_lines_and_says_so(tmp_path):
    """A line that is not a record (cut short, edited by hand) used to make the whole export a 500."""
    async with _runtime(tmp_path) as rt:
        await api(rt, "POST", "/api/auth/register", body={"username": "zoe", "password": PASSWORD})
        await rt.advance(61)
        (key,) = [o.key for o in (await rt.env.ARCHIVE.list(prefix="audit/")).objects]
        good = await (await rt.env.ARCHIVE.get(key)).text()
        await rt.env.ARCHIVE.put(key, good + '{"ts": "soon", "event": "x"}\n{"ts": 12\n[1, 2]\n')
        resp, text = await _export(rt)
        assert [json.loads(line)["event"] for line in text.splitlines()] == ["sign_up", "admin_action"]
        assert resp.headers.get("x-audit-skipped") == "3"


async def test_admin_token_guesses_are_throttled_per_address_and_cannot_flood_the_trail(tmp_path):
    """Wrong admin tokens were unlimited (a brute force of ADMIN_TOKEN) and each wrote an audit record
    (anyone could fill the trail).  Now 20 wrong tokens per address in 15 minutes, then 429 with
    Retry-After and one `rate_limited` record for the whole spell."""
    async with _runtime(tmp_path) as rt:
        headers = {"cf-connecting-ip": "203.0.113.9"}
        for i in range(20):
            resp = await rt.fetch("/api/admin/stats", headers={**headers, "authorization": f"Bearer guess{i}"})
            assert resp.status == 403
        for token in ("guess-more", "guess-again", ADMIN):   # over the limit even the right one waits
            resp = await rt.fetch("/api/admin/stats?hours=0", headers={**headers, "authorization": f"Bearer {token}"})
            body = json.loads(await resp.text())
            assert resp.status == 429 and body["error"]["code"] == "rate_limited", body
            assert int(resp.headers.get("retry-after")) > 0
        other = await rt.fetch("/api/admin/stats?hours=0", headers={"cf-connecting-ip": "198.51.100.7",
                                                                   "authorization": f"Bearer {ADMIN}"})
        assert other.status == 400                      # another address is not affected
        await rt.advance(15 * 60 + 1)
        resp = await rt.fetch("/api/admin/stats?hours=0", headers={**headers, "authorization": f"Bearer {ADMIN}"})
        assert resp.status == 400
        records = await _records(rt)
    denied = [r for r in records if r["event"] == "admin_action" and r["outcome"] == "denied"]
    limited = [r for r in records if r["event"] == "rate_limited"]
    assert len(denied) == 20
    assert [(r["reason"], r["outcome"]) for r in limited] == [("admin_ip", "denied")]


async def _seed_batches(bucket, audit, start_ms: int, files: int, per_file: int) -> list[int]:
    """`files` audit batches of `per_file` records, one a second from `start_ms`; their timestamps."""
    stamps = []
    for f in range(files):
        first_seq = 1000 + f * per_file
        recs = [{"ts": start_ms + (f * per_file + i) * 1000, "event": "sign_in", "outcome": "success"}
                for i in range(per_file)]
        stamps += [r["ts"] for r in recs]
        await bucket.put(audit.batch_key(recs[0]["ts"], first_seq), "".join(json.dumps(r) + "\n" for r in recs))
    return stamps


async def test_the_export_stops_reading_files_at_the_record_cap(modules):
    """The export read every file of the range into memory before cutting at the cap: a month of a busy
    trail held it all at once.  It now stops reading once the cap is passed and says where to go on."""
    audit = modules["audit"]

    class Obj:
        def __init__(self, text):
            self._text = text

        async def text(self):
            return self._text

    class Page:
        def __init__(self, objects):
            self.objects, self.truncated, self.cursor = objects, False, None

    class Bucket:
        def __init__(self):
            self.data, self.gets = {}, 0

        async def put(self, key, text):
            self.data[key] = text

        async def list(self, prefix="", cursor=None):
            return Page([type("O", (), {"key": k})() for k in sorted(self.data) if k.startswith(prefix)])

        async def get(self, key):
            self.gets += 1
            return Obj(self.data[key]) if key in self.data else None

    class Env:
        ANALYTICS_KEY = "k"

    env = Env()
    env.ARCHIVE = Bucket()
    start = 1_790_000_000_000 - 1_790_000_000_000 % 86_400_000 + 3_600_000
    stamps = await _seed_batches(env.ARCHIVE, audit, start, files=10, per_file=3)
    lines, next_from, skipped = await audit.read(env, start, start + 86_400_000, limit=4)
    assert [json.loads(line)["ts"] for line in lines] == stamps[:4]
    assert next_from == stamps[4] and skipped == 0
    assert env.ARCHIVE.gets == 2                      # not the 10 files of the range
    lines, next_from, _ = await audit.read(env, next_from, start + 86_400_000, limit=100)
    assert [json.loads(line)["ts"] for line in lines] == stamps[4:] and next_from is None


async def test_a_truncated_export_says_so_and_where_to_continue(tmp_path, modules, monkeypatch):
    audit = modules["audit"]
    monkeypatch.setattr(audit, "MAX_EXPORT_RECORDS", 5)
    async with _runtime(tmp_path) as rt:
        now = int(rt.now() * 1000)
        start = now - 3 * 3_600_000
        stamps = await _seed_batches(rt.env.ARCHIVE, audit, start, files=3, per_file=3)
        resp, text = await _export(rt, f"?from={start}&to={start + 3_600_000}")
        assert [json.loads(line)["ts"] for line in text.splitlines()] == stamps[:5]
        assert resp.headers["x-audit-truncated"] == "true" and resp.headers["x-audit-records"] == "5"
        assert resp.headers["x-audit-next-from"] == str(stamps[5])
        resp, text = await _export(rt, f"?from={stamps[5]}&to={start + 3_600_000}")
        assert [json.loads(line)["ts"] for line in text.splitlines()] == stamps[5:]
        assert "x-audit-truncated" not in resp.headers and "x-audit-next-from" not in resp.headers
