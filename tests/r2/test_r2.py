"""R2 through a worker and directly on the binding: objects, metadata, conditions, ranges, list."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cfemu.errors import JsException, JsRangeError, JsTypeError
from cfemu.http import BODY_USED, Headers
from cfemu.r2 import R2Object, R2ObjectBody
from cfemu.testing import Runtime

APP = Path(__file__).parent / "workers" / "app" / "wrangler.toml"
START = 1_800_000_000.0


@pytest.fixture
async def rt(tmp_path):
    async with Runtime.from_config(APP, persist_to=tmp_path / "state", clock=_clock()) as runtime:
        yield runtime


def _clock():
    from cfemu.clock import VirtualClock

    return VirtualClock(START)


# -- through the worker -------------------------------------------------------------------------

async def test_worker_put_get_list_delete(rt):
    resp = await rt.fetch("/docs/a.txt", method="PUT", body=b"hello world", headers={"content-type": "text/plain"})
    put = await resp.json()
    assert put == {"key": "docs/a.txt", "etag": hashlib.md5(b"hello world").hexdigest(), "size": 11}
    await rt.fetch("/top.txt", method="PUT", body=b"x")

    resp = await rt.fetch("/docs/a.txt")
    assert resp.status == 200
    assert await resp.text() == "hello world"
    assert resp.headers.get("content-type") == "text/plain"
    assert resp.headers.get("etag") == f'"{put["etag"]}"'

    listed = await (await rt.fetch("/")).json()
    assert listed == {"keys": ["top.txt"], "prefixes": ["docs/"], "meta": [{"by": "worker"}]}

    resp = await rt.fetch("/docs/a.txt", method="DELETE")
    assert resp.status == 204
    assert (await rt.fetch("/docs/a.txt")).status == 404


async def test_worker_conditional_and_range_requests(rt):
    put = await (await rt.fetch("/f.bin", method="PUT", body=b"0123456789")).json()
    resp = await rt.fetch("/f.bin", headers={"if-none-match": f'"{put["etag"]}"'})
    assert resp.status == 304 and resp.headers.get("etag") == f'"{put["etag"]}"'
    resp = await rt.fetch("/f.bin", headers={"if-match": '"other"'})
    assert resp.status == 412
    resp = await rt.fetch("/f.bin", headers={"range": "bytes=2-5"})
    assert resp.status == 206 and await resp.bytes() == b"2345"
    resp = await rt.fetch("/f.bin", headers={"range": "bytes=-3"})
    assert await resp.bytes() == b"789"


# -- objects ------------------------------------------------------------------------------------

async def test_put_returns_r2object_fields(rt):
    bucket = rt.env.BUCKET
    obj = await bucket.put("k", "héllo", httpMetadata={"contentType": "text/plain", "cacheControl": "max-age=60"},
                           customMetadata={"a": "1"})
    assert isinstance(obj, R2Object)
    assert obj.key == "k" and obj.size == len("héllo".encode())
    assert obj.etag == hashlib.md5("héllo".encode()).hexdigest() and obj.httpEtag == f'"{obj.etag}"'
    assert obj.uploaded == datetime.fromtimestamp(START, tz=timezone.utc)
    assert obj.httpMetadata == {"contentType": "text/plain", "cacheControl": "max-age=60"}
    assert obj.customMetadata == {"a": "1"}
    assert obj.checksums.md5 == hashlib.md5("héllo".encode()).digest()
    assert obj.checksums.toJSON() == {"md5": obj.etag}
    assert obj.storageClass == "Standard" and len(obj.version) == 32

    head = await bucket.head("k")
    assert (head.key, head.etag, head.version, head.size) == (obj.key, obj.etag, obj.version, obj.size)
    headers = Headers()
    head.writeHttpMetadata(headers)
    assert headers.get("content-type") == "text/plain" and headers.get("cache-control") == "max-age=60"

    await rt.advance(10)
    again = await bucket.put("k", b"new")
    assert again.version != obj.version
    assert again.uploaded == datetime.fromtimestamp(START + 10, tz=timezone.utc)
    assert again.httpMetadata == {} and again.customMetadata == {}


async def test_get_body_reads_once(rt):
    bucket = rt.env.BUCKET
    await bucket.put("j", '{"a": [1, 2]}')
    body = await bucket.get("j")
    assert isinstance(body, R2ObjectBody) and body.bodyUsed is False
    assert await body.json() == {"a": [1, 2]}
    assert body.bodyUsed is True
    with pytest.raises(JsTypeError) as info:
        await body.text()
    assert str(info.value) == BODY_USED
    body = await bucket.get("j")
    chunks = [c async for c in body.body]
    assert b"".join(chunks) == b'{"a": [1, 2]}'
    assert body.range == {"offset": 0, "length": 13}
    assert await (await bucket.get("j")).arrayBuffer() == b'{"a": [1, 2]}'


async def test_missing_objects_and_delete_many(rt):
    bucket = rt.env.BUCKET
    assert await bucket.get("nope") is None
    assert await bucket.head("nope") is None
    await bucket.delete("nope")  # deleting a missing key is fine
    for k in ("a", "b", "c"):
        await bucket.put(k, k)
    await bucket.delete(["a", "c", "zzz"])
    assert [o.key for o in (await bucket.list())["objects"]] == ["b"]


async def test_stream_and_empty_values(rt):
    bucket = rt.env.BUCKET

    await bucket.put("src", "abcd")
    obj = await bucket.put("s", (await bucket.get("src")).body)  # a stream of known length
    assert obj.size == 4 and await (await bucket.get("s")).text() == "abcd"
    empty = await bucket.put("e", None)
    assert empty.size == 0 and await (await bucket.get("e")).bytes() == b""
    with pytest.raises(JsTypeError):
        await bucket.put("bad", {"not": "a body"})


# -- limits and error texts ---------------------------------------------------------------------

async def test_key_length_limit(rt):
    bucket = rt.env.BUCKET
    ok = "k" * 1024
    assert (await bucket.put(ok, "v")).key == ok
    long = "é" * 513  # 1026 bytes
    for action, call in [("put", bucket.put(long, "v")), ("get", bucket.get(long)), ("head", bucket.head(long)),
                         ("delete", bucket.delete(long))]:
        with pytest.raises(JsException) as info:
            await call
        assert str(info.value) == f"{action}: The specified object name is not valid. (10020)"


async def test_custom_metadata_limit(rt):
    with pytest.raises(JsException) as info:
        await rt.env.BUCKET.put("m", "v", customMetadata={"k": "v" * 8192})
    assert str(info.value) == "put: Your metadata headers exceed the maximum allowed metadata size. (10012)"
    assert await rt.env.BUCKET.head("m") is None


async def test_checksums(rt):
    bucket = rt.env.BUCKET
    data = b"checked"
    obj = await bucket.put("c", data, sha256=hashlib.sha256(data).hexdigest())
    assert obj.checksums.sha256 == hashlib.sha256(data).digest()
    assert obj.checksums.toJSON() == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    obj = await bucket.put("c2", data, md5=hashlib.md5(data).digest())
    assert obj.checksums.md5 == hashlib.md5(data).digest()

    wrong = "0" * 64
    with pytest.raises(JsException) as info:
        await bucket.put("c3", data, sha256=wrong)
    assert str(info.value) == (
        "put: The SHA-256 checksum you specified did not match what we received.\n"
        f"You provided a SHA-256 checksum with value: {wrong}\n"
        f"Actual SHA-256 was: {hashlib.sha256(data).hexdigest()} (10037)")
    assert await bucket.head("c3") is None

    cases = [
        ({"md5": "abc"}, "MD5 is 32 hex characters, not 3"),
        ({"sha1": b"\x00" * 3}, "SHA-1 is 20 bytes, not 3"),
        ({"md5": "z" * 32}, "Provided MD5 wasn't a valid hex string"),
        ({"md5": "0" * 32, "sha1": "0" * 40}, "You cannot specify multiple hashing algorithms."),
    ]
    for options, message in cases:
        with pytest.raises(JsTypeError) as info:
            await bucket.put("c4", data, **options)
        assert str(info.value) == message


# -- conditional operations ---------------------------------------------------------------------

async def test_only_if_on_get(rt):
    bucket = rt.env.BUCKET
    obj = await bucket.put("o", "body")
    uploaded = obj.uploaded
    assert isinstance(await bucket.get("o", onlyIf={"etagMatches": obj.etag}), R2ObjectBody)
    failed = await bucket.get("o", onlyIf={"etagMatches": "nope"})
    assert type(failed) is R2Object and failed.etag == obj.etag
    assert type(await bucket.get("o", onlyIf={"etagDoesNotMatch": obj.etag})) is R2Object
    assert isinstance(await bucket.get("o", onlyIf={"etagDoesNotMatch": "*x"}), R2ObjectBody)
    assert type(await bucket.get("o", onlyIf={"etagMatches": "*"})) is R2ObjectBody
    later, earlier = uploaded + timedelta(seconds=1), uploaded - timedelta(seconds=1)
    assert type(await bucket.get("o", onlyIf={"uploadedBefore": later})) is R2ObjectBody
    assert type(await bucket.get("o", onlyIf={"uploadedBefore": earlier})) is R2Object
    assert type(await bucket.get("o", onlyIf={"uploadedAfter": earlier})) is R2ObjectBody
    assert type(await bucket.get("o", onlyIf={"uploadedAfter": later})) is R2Object
    # A matching etag overrides uploadedBefore (RFC 7232 precedence).
    assert type(await bucket.get("o", onlyIf={"etagMatches": obj.etag, "uploadedBefore": earlier})) is R2ObjectBody
    with pytest.raises(JsTypeError) as info:
        await bucket.get("o", onlyIf={"etagMatches": f'"{obj.etag}"'})
    assert str(info.value) == f'Conditional ETag should not be wrapped in quotes ("{obj.etag}").'


async def test_only_if_headers(rt):
    bucket = rt.env.BUCKET
    obj = await bucket.put("h", "body")
    assert type(await bucket.get("h", onlyIf=Headers({"if-match": f'W/"x", "{obj.etag}"'}))) is R2ObjectBody
    assert type(await bucket.get("h", onlyIf=Headers({"if-none-match": f'W/"{obj.etag}"'}))) is R2Object
    with pytest.raises(JsException) as info:
        await bucket.get("h", onlyIf=Headers({"if-match": '"abc'}))
    assert str(info.value) == "Unclosed double quote for Etag"
    with pytest.raises(JsException) as info:
        await bucket.get("h", onlyIf=Headers({"if-match": '"a" "b"'}))
    assert str(info.value).startswith("Comma was expected to separate etags.")


async def test_only_if_on_put(rt):
    bucket = rt.env.BUCKET
    # Create-only: a put that must not overwrite.
    first = await bucket.put("p", "one", onlyIf={"etagDoesNotMatch": "*"})
    assert first is not None
    assert await bucket.put("p", "two", onlyIf={"etagDoesNotMatch": "*"}) is None
    assert await (await bucket.get("p")).text() == "one"
    assert await bucket.put("p", "three", onlyIf={"etagMatches": "wrong"}) is None
    assert (await bucket.put("p", "four", onlyIf={"etagMatches": first.etag})).size == 4
    assert await bucket.put("missing", "x", onlyIf={"etagMatches": "abc"}) is None
    assert await bucket.head("missing") is None


# -- ranges -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected", "rng"), [
    ({"offset": 2, "length": 3}, b"234", (2, 3)),
    ({"offset": 7}, b"789", (7, 3)),
    ({"length": 2}, b"01", (0, 2)),
    ({"suffix": 4}, b"6789", (6, 4)),
    ({"suffix": 50}, b"0123456789", (0, 10)),
    ({"offset": 8, "length": 100}, b"89", (8, 2)),
])
async def test_ranges(rt, spec, expected, rng):
    await rt.env.BUCKET.put("r", b"0123456789")
    body = await rt.env.BUCKET.get("r", range=spec)
    assert body.range == {"offset": rng[0], "length": rng[1]}
    assert await body.bytes() == expected


@pytest.mark.parametrize(("spec", "kind", "message"), [
    ({"offset": 11}, JsException, "get: The requested range is not satisfiable (10039)"),
    ({"offset": 1, "length": 0}, JsException, "get: The requested range is not satisfiable (10039)"),
    ({"offset": -1}, JsRangeError, "Invalid range. Starting offset (-1) must be greater than or equal to 0."),
    ({"length": 1.5}, JsRangeError, "Invalid range. Length (1.5) must be an integer, not floating point."),
    ({"suffix": 2, "offset": 1}, JsTypeError, "Suffix is incompatible with offset."),
])
async def test_bad_ranges(rt, spec, kind, message):
    await rt.env.BUCKET.put("r", b"0123456789")
    with pytest.raises(kind) as info:
        await rt.env.BUCKET.get("r", range=spec)
    assert str(info.value) == message


# -- list ---------------------------------------------------------------------------------------

async def test_list_options(rt):
    bucket = rt.env.BUCKET
    for key in ["a/1", "a/2", "a/b/3", "b", "c/4"]:
        await bucket.put(key, key, httpMetadata={"contentType": "text/plain"}, customMetadata={"k": key})
    page = await bucket.list(limit=2)
    assert [o.key for o in page["objects"]] == ["a/1", "a/2"] and page["truncated"] is True
    rest = await bucket.list(cursor=page["cursor"])
    assert [o.key for o in rest["objects"]] == ["a/b/3", "b", "c/4"] and rest["truncated"] is False
    assert "cursor" not in rest
    listed = await bucket.list(delimiter="/")
    assert [o.key for o in listed["objects"]] == ["b"] and listed["delimitedPrefixes"] == ["a/", "c/"]
    listed = await bucket.list(prefix="a/", delimiter="/")
    assert [o.key for o in listed["objects"]] == ["a/1", "a/2"] and listed["delimitedPrefixes"] == ["a/b/"]
    assert [o.key for o in (await bucket.list(startAfter="a/b/3"))["objects"]] == ["b", "c/4"]

    plain = (await bucket.list(limit=1))["objects"][0]
    assert plain.httpMetadata is None and plain.customMetadata is None
    with pytest.raises(JsTypeError) as info:
        plain.writeHttpMetadata(Headers())
    assert str(info.value) == ("HTTP metadata unknown for key `a/1`. Did you forget to add 'httpMetadata' to "
                               "`include` when listing?")
    full = (await bucket.list(limit=1, include=["httpMetadata", "customMetadata"]))["objects"][0]
    assert full.httpMetadata == {"contentType": "text/plain"} and full.customMetadata == {"k": "a/1"}

    for bad in (0, 1001, -5):
        with pytest.raises(JsException) as info:
            await bucket.list(limit=bad)
        assert str(info.value) == "list: MaxKeys params must be positive integer <= 1000. (10022)"
    with pytest.raises(JsRangeError) as info:
        await bucket.list(include=["nope"])
    assert str(info.value) == "Unsupported include value nope"


async def test_delete_many_limit(rt):
    await rt.env.BUCKET.delete([f"k{i}" for i in range(1000)])
    for keys in ([f"k{i}" for i in range(1001)], []):
        with pytest.raises(JsException) as info:
            await rt.env.BUCKET.delete(keys)
        assert str(info.value) == "delete: The number of keys in the request must be between 1 and 1000 inclusive. (10027)"


async def test_persists_across_restart_and_crash(tmp_path):
    state = tmp_path / "state"
    async with Runtime.from_config(APP, persist_to=state) as rt:
        await rt.env.BUCKET.put("keep", "v1", customMetadata={"x": "y"})
        await rt.crash()
        await rt.restart()
        obj = await rt.env.BUCKET.get("keep")
        assert await obj.text() == "v1" and obj.customMetadata == {"x": "y"}
    async with Runtime.from_config(APP, persist_to=state) as rt:
        assert await (await rt.env.BUCKET.get("keep")).text() == "v1"
