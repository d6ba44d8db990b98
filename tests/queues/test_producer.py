"""Producer binding: send()/sendBatch() limits and exact error texts, content types, delays."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from cfemu.errors import JsException, JsRangeError, JsTypeError
from cfemu.http import Request
from cfemu.queues.errors import (
    BATCH_MESSAGE_TOO_LARGE,
    BATCH_TOO_LARGE,
    BATCH_TOO_MANY_MESSAGES,
    BODY_UNDEFINED,
    EMPTY_BATCH,
    INVALID_DELAY,
    MESSAGE_TOO_LARGE,
    UNSUPPORTED_CONTENT_TYPE,
    WRONG_BODY_TYPE,
)
from cfemu.values import DataCloneError

CONSUMED = """
[[queues.producers]]
binding = "Q"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
max_batch_timeout = 1
"""


@pytest.fixture
async def h(make_runtime):
    return await make_runtime(CONSUMED)


async def _bodies(h, seconds: float = 1) -> list:
    await h.rt.advance(seconds)
    return [body for _, messages in h.worker.deliveries for _, body, _ in messages]


# -- limits and their exact messages ------------------------------------------------------------------


async def test_message_size_limit_is_128000_bytes(h):
    await h.rt.env.Q.send("x" * 127_998)  # JSON adds the two quotes: exactly 128000 bytes
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.send("x" * 127_999)
    assert str(e.value) == "Queue send failed: message length of 128001 bytes exceeds limit of 128000"
    assert str(e.value) == "Queue send failed: " + MESSAGE_TOO_LARGE.format(size=128001)
    assert type(e.value) is JsException and e.value.name == "Error"
    with pytest.raises(JsException, match="message length of 128001 bytes"):
        await h.rt.env.Q.send(b"\0" * 128_001, contentType="bytes")
    # UTF-8 bytes count, not characters.
    with pytest.raises(JsException, match="message length of 128001 bytes"):
        await h.rt.env.Q.send("é" * 64_000 + "x", contentType="text")
    assert h.service.pending("jobs") == 1


async def test_batch_count_limit_is_100(h):
    await h.rt.env.Q.sendBatch([{"body": i} for i in range(100)])
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.sendBatch([{"body": i} for i in range(101)])
    assert str(e.value) == "Queue sendBatch failed: batch message count of 101 exceeds limit of 100"
    assert str(e.value) == "Queue sendBatch failed: " + BATCH_TOO_MANY_MESSAGES.format(count=101)
    assert h.service.pending("jobs") == 100


async def test_batch_message_and_total_size_limits(h):
    big = "y" * 128_000
    await h.rt.env.Q.sendBatch([{"body": big, "contentType": "text"}] * 2)  # exactly 256000 bytes
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.sendBatch([{"body": "a"}, {"body": big + "y", "contentType": "text"}])
    assert str(e.value) == (
        "Queue sendBatch failed: message in batch has length 128001 bytes which exceeds single message size limit of 128000")
    assert str(e.value) == "Queue sendBatch failed: " + BATCH_MESSAGE_TOO_LARGE.format(size=128001)
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.sendBatch([{"body": big, "contentType": "text"}] * 2 + [{"body": "z", "contentType": "text"}])
    # Production's wording (with the trailing unit Miniflare's text lacks).
    assert str(e.value) == "Queue sendBatch failed: batch size of 256001 bytes exceeds limit of 256000 bytes"
    assert str(e.value) == "Queue sendBatch failed: " + BATCH_TOO_LARGE.format(size=256001)
    # A rejected batch stores nothing.
    assert h.service.pending("jobs") == 2


@pytest.mark.parametrize("delay", [-1, 43_201, float("inf"), "5", True])
async def test_delay_out_of_range_is_rejected(h, delay):
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.send("m", delaySeconds=delay)
    assert str(e.value) == "Queue send failed: " + INVALID_DELAY.format(delay=delay)
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.sendBatch([{"body": 1}], delaySeconds=delay)
    assert str(e.value) == "Queue sendBatch failed: " + INVALID_DELAY.format(delay=delay)
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.sendBatch([{"body": 1}, {"body": 2, "delaySeconds": delay}])
    assert str(e.value).startswith("Queue sendBatch failed: message delay ")
    assert h.service.pending("jobs") == 0


async def test_delay_limits_exact_text(h):
    with pytest.raises(JsException) as e:
        await h.rt.env.Q.send("m", delaySeconds=43_201)
    assert str(e.value) == (
        "Queue send failed: message delay 43201 is invalid: delaySeconds must be an integer between 0 and 43200")
    await h.rt.env.Q.send("m", delaySeconds=43_200)
    await h.rt.env.Q.send("m", delaySeconds=0)
    assert h.service.pending("jobs") == 2


async def test_content_type_validation(h):
    with pytest.raises(JsTypeError) as e:
        await h.rt.env.Q.send("m", contentType="xml")
    assert str(e.value) == "Unsupported queue message content type: xml"
    assert str(e.value) == UNSUPPORTED_CONTENT_TYPE.format(content_type="xml")
    with pytest.raises(TypeError) as e:
        await h.rt.env.Q.send({"a": 1}, contentType="text")
    assert str(e.value) == 'Content Type "text" requires a value of type string, but received: object'
    with pytest.raises(TypeError) as e:
        await h.rt.env.Q.send(5, contentType="text")
    assert str(e.value) == WRONG_BODY_TYPE.format(content_type="text", expected="string", typeof="number")
    with pytest.raises(TypeError) as e:
        await h.rt.env.Q.send("abc", contentType="bytes")
    assert str(e.value) == 'Content Type "bytes" requires a value of type ArrayBufferView, but received: string'
    with pytest.raises(JsTypeError, match="sendBatch"):
        await h.rt.env.Q.sendBatch([])
    with pytest.raises(JsTypeError) as e:
        await h.rt.env.Q.sendBatch([])
    assert str(e.value) == EMPTY_BATCH == "sendBatch() requires at least one message"
    with pytest.raises(JsTypeError) as e:
        await h.rt.env.Q.sendBatch([{"contentType": "text"}])
    assert str(e.value) == BODY_UNDEFINED == "Message body cannot be undefined"
    with pytest.raises(JsTypeError) as e:
        await h.rt.env.Q.send()
    assert str(e.value) == BODY_UNDEFINED
    # Case-insensitive, as workerd lowercases it.
    await h.rt.env.Q.send("ok", contentType="TEXT")
    assert await _bodies(h) == ["ok"]


async def test_unserializable_bodies_are_clear_type_errors(h):
    for body in ({1, 2}, (1, 2), object(), {1: "int key"}, b"raw bytes"):
        with pytest.raises(JsTypeError, match="not JSON-serializable"):
            await h.rt.env.Q.send(body)
    with pytest.raises(DataCloneError):
        await h.rt.env.Q.send({1, 2}, contentType="v8")
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(JsTypeError, match="cycle"):
        await h.rt.env.Q.send(cyclic)
    assert h.service.pending("jobs") == 0


# -- content types round-trip ---------------------------------------------------------------------


async def test_content_types_round_trip(h):
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    await h.rt.env.Q.send({"a": [1, 2.5, None, True, "é"], "n": {"deep": "x"}})  # json by default
    await h.rt.env.Q.send("plain ünïcode", contentType="text")
    await h.rt.env.Q.send(b"\x00\xffbytes", contentType="bytes")
    await h.rt.env.Q.send(bytearray(b"ba"), contentType="bytes")
    await h.rt.env.Q.send({"when": when, "raw": b"\x01", "big": 2**70, "list": [1, "two"]}, contentType="v8")
    await h.rt.env.Q.send({"when": when, "nan": float("nan")}, contentType="json")
    await h.rt.env.Q.send(None)
    await h.rt.env.Q.sendBatch([
        {"body": "t", "contentType": "text"},
        {"body": b"b", "contentType": "bytes"},
        {"body": {"j": 1}},
        {"body": {"v": when}, "contentType": "v8"},
    ])
    bodies = await _bodies(h)
    assert bodies == [
        {"a": [1, 2.5, None, True, "é"], "n": {"deep": "x"}},
        "plain ünïcode",
        b"\x00\xffbytes",
        b"ba",
        {"when": when, "raw": b"\x01", "big": 2**70, "list": [1, "two"]},
        {"when": "2026-01-02T03:04:05.678Z", "nan": None},  # what JSON.stringify writes
        None,
        "t",
        b"b",
        {"j": 1},
        {"v": when},
    ]
    # Objects allow attribute access, as JsProxies of JS objects do.
    assert bodies[0].n.deep == "x"
    # A "bytes" body arrives on Cloudflare as a JS buffer: portable code calls to_bytes().
    assert bodies[2].to_bytes() == b"\x00\xffbytes" and type(bodies[2].to_bytes()) is bytes


async def test_body_is_serialized_at_send_time(h):
    body = {"items": [1]}
    await h.rt.env.Q.send(body)
    body["items"].append(2)
    batch_body = {"k": "before"}
    await h.rt.env.Q.sendBatch([{"body": batch_body, "contentType": "v8"}])
    batch_body["k"] = "after"
    assert await _bodies(h) == [{"items": [1]}, {"k": "before"}]


async def test_positional_options_dict_like_the_js_api(h):
    await h.rt.env.Q.send("p", {"contentType": "text", "delaySeconds": 2})
    await h.rt.env.Q.sendBatch([{"body": 1}], {"delaySeconds": 2})
    assert await _bodies(h, 1) == []
    assert sorted(map(str, await _bodies(h, 2))) == ["1", "p"]


async def test_message_metadata(h):
    seen = []
    h.worker.behaviour = lambda batch, env: seen.extend(batch.messages)
    await h.rt.advance(10)
    await h.rt.env.Q.send("m")
    await h.rt.advance(1)
    (message,) = seen
    assert message.timestamp == datetime.fromtimestamp(h.t0 + 10, tz=timezone.utc)
    assert message.timestamp.tzinfo is not None
    # On Cloudflare the handler sees a JS Date (a JsProxy): portable code calls its methods.
    assert message.timestamp.getTime() == int((h.t0 + 10) * 1000)
    assert message.timestamp.valueOf() == message.timestamp.getTime()
    assert message.timestamp.toISOString() == "2027-01-15T08:00:10.000Z"
    assert len(message.id) == 32 and int(message.id, 16) >= 0
    assert message.attempts == 1


# -- through the worker, as user code meets it ------------------------------------------------------


async def _post(h, path: str, payload: dict):
    response = await h.rt.fetch(Request(f"http://w{path}", method="POST", body=json.dumps(payload)))
    return response.status, await response.text(), response.headers.get("x-error")


async def test_limits_seen_from_worker_code(h):
    assert await _post(h, "/send", {"binding": "Q", "body": {"hello": "world"}}) == (200, "sent", None)
    assert await _post(h, "/send", {"binding": "Q", "body": "x" * 127_999}) == (
        400, "Queue send failed: message length of 128001 bytes exceeds limit of 128000", "JsException")
    assert await _post(h, "/send", {"binding": "Q", "body": "x", "contentType": "nope"}) == (
        400, "Unsupported queue message content type: nope", "JsTypeError")
    assert await _post(h, "/batch", {"binding": "Q", "messages": [{"body": i} for i in range(101)]}) == (
        400, "Queue sendBatch failed: batch message count of 101 exceeds limit of 100", "JsException")
    assert await _post(h, "/send", {"binding": "Q", "body": 1, "delaySeconds": 50_000}) == (
        400, "Queue send failed: message delay 50000 is invalid: delaySeconds must be an integer between 0 and 43200",
        "JsException")
    assert await _bodies(h) == [{"hello": "world"}]


async def test_retry_delay_is_validated(h):
    errors = []

    def behaviour(batch, env):
        for call in (lambda: batch.messages[0].retry(delaySeconds=43_201), lambda: batch.retryAll(delaySeconds=-1)):
            try:
                call()
            except JsRangeError as e:
                errors.append(str(e))

    h.worker.behaviour = behaviour
    await h.rt.env.Q.send("m")
    await h.rt.advance(1)
    assert errors == [
        "retry(): delaySeconds 43201 is invalid: it must be an integer between 0 and 43200",
        "retryAll(): delaySeconds -1 is invalid: it must be an integer between 0 and 43200",
    ]


async def test_error_codes_with_the_queue_expose_error_codes_flag(make_runtime):
    """With the compat flag, workerd throws "<cause> (<code>)" without the "Queue send failed" prefix."""
    h = await make_runtime('compatibility_flags = ["queue_expose_error_codes"]\n' + CONSUMED)
    cases = [
        (h.rt.env.Q.send("x" * 127_999), "message length of 128001 bytes exceeds limit of 128000 (10204)"),
        (h.rt.env.Q.send(1, delaySeconds=43_201),
         "message delay 43201 is invalid: delaySeconds must be an integer between 0 and 43200 (10203)"),
        (h.rt.env.Q.sendBatch([{"body": i} for i in range(101)]), "batch message count of 101 exceeds limit of 100 (10206)"),
        (h.rt.env.Q.sendBatch([{"body": "y" * 128_000, "contentType": "text"}] * 2 + [{"body": "z", "contentType": "text"}]),
         "batch size of 256001 bytes exceeds limit of 256000 bytes (10205)"),
        (h.rt.env.Q.sendBatch([{"body": "y" * 128_001, "contentType": "text"}]),
         "message in batch has length 128001 bytes which exceeds single message size limit of 128000 (10204)"),
    ]
    for call, text in cases:
        with pytest.raises(JsException) as e:
            await call
        assert str(e.value) == text
    # Type errors are workerd's own and keep their text.
    with pytest.raises(JsTypeError) as e:
        await h.rt.env.Q.send("m", contentType="xml")
    assert str(e.value) == "Unsupported queue message content type: xml"
    assert h.service.pending("jobs") == 0


async def test_json_bodies_are_written_as_json_stringify_writes_them(h):
    """Python floats become JS numbers: 2.0 is sent as `2` (and counted so), so the consumer gets 2."""
    await h.rt.env.Q.send({"n": 2.0, "z": -0.0, "big": 1e20, "f": 0.5})
    bodies = await _bodies(h)
    assert bodies[0] == {"n": 2, "z": 0, "big": 100000000000000000000, "f": 0.5}
    assert [type(bodies[0][k]) for k in ("n", "z", "big", "f")] == [int, int, int, float]
    await h.rt.env.Q.sendBatch([{"body": [1.0] * 42_666}])  # "[1,1,...]" is 85333 bytes, under the limit
    assert h.service.pending("jobs") == 1


async def test_json_rejects_integers_beyond_2_pow_53_as_json_stringify_rejects_bigints(h):
    """Pyodide passes such ints as BigInts, which JSON.stringify refuses; "v8" carries them."""
    for body in (2**53, {"n": -(2**60)}):
        with pytest.raises(JsTypeError) as e:
            await h.rt.env.Q.send(body)
        assert str(e.value) == "Do not know how to serialize a BigInt"
    await h.rt.env.Q.send(2**53 - 1)
    await h.rt.env.Q.send({"n": 2**60}, contentType="v8")
    assert await _bodies(h) == [2**53 - 1, {"n": 2**60}]


async def test_json_escapes_lone_surrogates_as_well_formed_json_stringify_does(h):
    """A lone surrogate is written as \\udXXX (6 bytes, valid UTF-8), and read back unchanged."""
    from cfemu.queues.codec import encode

    assert encode("a\ud800", "json") == b'"a\\ud800"'
    assert encode({"k\udfff": "é"}, "json") == '{"k\\udfff":"é"}'.encode()
    await h.rt.env.Q.send({"s": "x\ud800y"})
    assert await _bodies(h) == [{"s": "x\ud800y"}]
