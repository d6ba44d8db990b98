"""Every KV limit, with Cloudflare's exact error text and error type."""

from __future__ import annotations

import pytest

from cfemu.clock import VirtualClock
from cfemu.errors import JsException, JsTypeError
from cfemu.kv import KVNamespace

NOW = 1_800_000_000.0


@pytest.fixture
def kv():
    ns = KVNamespace.open(None, clock=VirtualClock(NOW))
    yield ns
    ns.close()


async def fails(coro, message, kind=JsException):
    with pytest.raises(kind) as info:
        await coro
    assert str(info.value) == message
    return info.value


@pytest.mark.parametrize("method", ["get", "getWithMetadata", "put", "delete"])
async def test_key_names(kv, method):
    def call(key):
        if method == "put":
            return kv.put(key, "v")
        return getattr(kv, method)(key)

    verb = {"get": "GET", "getWithMetadata": "GET", "put": "PUT", "delete": "DELETE"}[method]
    error = await fails(call(""), "Key name cannot be empty.", JsTypeError)
    assert isinstance(error, TypeError) and error.name == "TypeError"
    await fails(call("."), '"." is not allowed as a key name.', JsTypeError)
    await fails(call(".."), '".." is not allowed as a key name.', JsTypeError)
    error = await fails(call("x" * 513), f"KV {verb} failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.")
    assert not isinstance(error, TypeError) and error.name == "Error"
    # Bytes, not characters: 171 three-byte characters are 513 bytes.
    await fails(call("€" * 171), f"KV {verb} failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.")


async def test_longest_key_and_dots_inside_keys_are_fine(kv):
    await kv.put("x" * 512, "v")
    await kv.put("€" * 170 + "xx", "v")
    await kv.put("...", "v")
    await kv.put("./a", "v")
    assert await kv.get("x" * 512) == "v"


async def test_expiration_ttl(kv):
    await fails(kv.put("k", "v", expirationTtl=30),
                "KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60.")
    await fails(kv.put("k", "v", expirationTtl=0),
                "KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater than 0.")
    await fails(kv.put("k", "v", {"expirationTtl": -5}),
                "KV PUT failed: 400 Invalid expiration_ttl of -5. Please specify integer greater than 0.")
    await kv.put("k", "v", expirationTtl=60)
    assert (await kv.list())["keys"] == [{"name": "k", "expiration": int(NOW) + 60}]


async def test_expiration(kv):
    now = int(NOW)
    await fails(kv.put("k", "v", expiration=now),
                f"KV PUT failed: 400 Invalid expiration of {now}. Please specify integer greater than the current "
                "number of seconds since the UNIX epoch.")
    await fails(kv.put("k", "v", expiration=now + 59),
                f"KV PUT failed: 400 Invalid expiration of {now + 59}. Expiration times must be at least 60 seconds "
                "in the future.")
    await kv.put("k", "v", expiration=now + 60)
    # expirationTtl wins when both are given.
    await kv.put("both", "v", expiration=now + 1000, expirationTtl=120)
    assert (await kv.list(prefix="both"))["keys"][0]["expiration"] == now + 120


async def test_metadata_size(kv):
    await fails(kv.put("k", "v", metadata={"blob": "x" * 1097}),
                "KV PUT failed: 413 Metadata length of 1108 exceeds limit of 1024.")
    # 1024 bytes of serialized JSON is allowed: {"b":"…"} is 8 bytes of punctuation.
    await kv.put("k", "v", metadata={"b": "x" * 1016})
    # Measured in UTF-8 bytes of compact JSON, as JSON.stringify writes it.
    await fails(kv.put("k", "v", metadata={"b": "é" * 509}),
                "KV PUT failed: 413 Metadata length of 1026 exceeds limit of 1024.")


async def test_value_size(kv):
    limit = 25 * 1024 * 1024
    await fails(kv.put("k", b"x" * (limit + 1)),
                f"KV PUT failed: 413 Value length of {limit + 1} exceeds limit of {limit}.")

    async def stream():
        for _ in range(26):
            yield b"x" * (1024 * 1024)

    await fails(kv.put("k", stream()),
                f"KV PUT failed: 413 Value length of {26 * 1024 * 1024} exceeds limit of {limit}.")
    await kv.put("k", b"x" * limit)
    assert len(await kv.get("k", type="arrayBuffer")) == limit


async def test_value_types_refused(kv):
    for value in ({"a": 1}, [1], 5, None):
        await fails(kv.put("k", value),
                    "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.",
                    JsTypeError)


async def test_cache_ttl(kv):
    await fails(kv.get("k", cacheTtl=10), "KV GET failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.")
    await fails(kv.getWithMetadata("k", {"cacheTtl": 29}),
                "KV GET failed: 400 Invalid cache_ttl of 29. Cache TTL must be at least 30.")
    await fails(kv.get(["k"], cacheTtl=10),
                "KV GET_BULK failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.")
    assert await kv.get("k", cacheTtl=30) is None


async def test_unknown_type(kv):
    await kv.put("k", "v")
    await fails(kv.get("k", type="blob"),
                'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".', JsTypeError)
    # As in workerd, the type is only looked at once a value came back.
    assert await kv.get("missing", type="blob") is None


async def test_list_limits(kv):
    await fails(kv.list(limit=1001),
                "KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.")
    await fails(kv.list(prefix="p" * 513), "KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.")
    for i in range(3):
        await kv.put(f"k{i}", "v")
    # workerd sends no limit at all when it is not positive: the default (1000) applies.
    assert len((await kv.list(limit=0))["keys"]) == 3
    assert len((await kv.list(limit=1000))["keys"]) == 3
    await fails(kv.list(cursor="!!not base64!!"), "KV GET failed: 400 Invalid cursor")


async def test_bulk_limits(kv):
    await fails(kv.get([f"k{i}" for i in range(101)]), "KV GET_BULK failed: 400 You can request a maximum of 100 keys")
    assert len(await kv.get([f"k{i}" for i in range(100)])) == 100
    await fails(kv.get([]), "KV GET_BULK failed: 400 You must request a minimum of 1 key")
    await fails(kv.get(["a"], type="arrayBuffer"), 'KV GET_BULK failed: 400 "arrayBuffer" is not a valid type. Use "json" or "text"')
    await fails(kv.get(["a"], "stream"), 'KV GET_BULK failed: 400 "stream" is not a valid type. Use "json" or "text"')
    await fails(kv.get(["a", ""]), "KV GET_BULK failed: 400 Key names must not be empty")
    await fails(kv.get([".."]), 'KV GET_BULK failed: 400 Illegal key name "..". Please use a different name.')
    await fails(kv.get(["x" * 513]), "KV GET_BULK failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.")
    await kv.put("text", "not json")
    await fails(kv.get(["text"], "json"),
                "KV GET_BULK failed: 400 At least one of the requested keys corresponds to a non-json value")


async def test_failed_writes_change_nothing(kv):
    await kv.put("k", "original", metadata={"v": 1})
    for bad in (kv.put("k", "new", expirationTtl=1), kv.put("k", "new", metadata={"x": "y" * 2000}),
                kv.put("k", b"x" * (25 * 1024 * 1024 + 1))):
        with pytest.raises(JsException):
            await bad
    assert await kv.getWithMetadata("k") == {"value": "original", "metadata": {"v": 1}, "cacheStatus": None}


async def test_value_size_counts_bytes_of_any_buffer_view(kv):
    limit = 25 * 1024 * 1024
    # A view of 4-byte items: len() counts items, the limit counts bytes.
    view = memoryview(bytearray(limit + 4)).cast("I")
    await fails(kv.put("k", view), f"KV PUT failed: 413 Value length of {limit + 4} exceeds limit of {limit}.")
    await kv.put("k", memoryview(b"\x01\x00\x00\x00\x02\x00\x00\x00").cast("I"))
    assert await kv.get("k", type="arrayBuffer") == b"\x01\x00\x00\x00\x02\x00\x00\x00"


async def test_json_type_rejects_what_json_parse_rejects(kv):
    for text in ("NaN", "Infinity", "-Infinity", '{"a": NaN}'):
        await kv.put("k", text)
        with pytest.raises(JsException) as info:
            await kv.get("k", type="json")
        assert info.value.name == "SyntaxError"
        await fails(kv.get(["k"], type="json"),
                    "KV GET_BULK failed: 400 At least one of the requested keys corresponds to a non-json value")


async def test_metadata_is_measured_as_json_stringify_writes_it(kv):
    # JSON.stringify writes 1e-7 (4 bytes), Python's json 1e-07 (5): {"b":"…","f":1e-7} is 17 + n bytes.
    await kv.put("k", "v", metadata={"b": "x" * 1007, "f": 1e-7})
    await fails(kv.put("k", "v", metadata={"b": "x" * 1008, "f": 1e-7}),
                "KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024.")
    await kv.put("n", "v", metadata={"big": 1e21, "whole": 2.0, "nan": float("nan"), "inf": float("inf")})
    assert (await kv.getWithMetadata("n"))["metadata"] == {"big": 1e21, "whole": 2, "nan": None, "inf": None}


async def test_metadata_that_json_stringify_refuses(kv):
    await kv.put("k", "original")
    cyclic: dict = {}
    cyclic["self"] = cyclic
    await fails(kv.put("k", "v", metadata=cyclic), "Converting circular structure to JSON", JsTypeError)
    await fails(kv.put("k", "v", metadata={"n": 2**60}), "Do not know how to serialize a BigInt", JsTypeError)
    with pytest.raises(JsTypeError):
        await kv.put("k", "v", metadata={"s": {1, 2}})
    # A lone surrogate is escaped, not a crash while counting bytes.
    await kv.put("s", "v", metadata={"t": "a\ud800"})
    assert (await kv.getWithMetadata("s"))["metadata"] == {"t": "a\ud800"}
    assert await kv.get("k") == "original"
