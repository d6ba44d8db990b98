"""Review of issue 3: WebSockets and the hibernation API — second reviewer's tests.

Texts marked as workerd's come from cloudflare/workerd src/workerd/api/actor-state.c++
(DurableObjectState::acceptWebSocket, setWebSocketAutoResponse, setHibernatableWebSocketEventTimeout).
"""


import pytest

from cfemu.errors import JsException

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")


def server_sockets(rt, name):
    service = rt.service("durable_objects")
    return service._resolve("PROBE", name).sockets


async def test_duplicate_tags_are_ignored(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("dup")
    assert await stub.accept_many_tags(["a"] * 11) == ["a"]


async def test_more_than_ten_tags_error_text(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("tags11")
    with pytest.raises(JsException) as info:
        await stub.accept_many_tags([f"t{i}" for i in range(11)])
    assert str(info.value) == "a Hibernatable WebSocket cannot have more than 10 tags"


async def test_tag_too_long_error_text(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("longtag")
    tag = "x" * 257
    with pytest.raises(JsException) as info:
        await stub.accept_many_tags([tag])
    assert str(info.value) == f'"{tag}" is longer than the max tag length (256 characters).'


async def test_accept_web_socket_after_accept_error_text(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("acc")
    with pytest.raises(JsException) as info:
        await stub.accept_after_accept()
    assert str(info.value) == ("Cannot call `acceptWebSocket()` if the WebSocket was already accepted via "
                               "`accept()`")


async def test_auto_response_size_error_text(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("auto")
    with pytest.raises(ValueError) as info:
        await stub.set_auto_response(2049, 1)
    assert str(info.value) == "Request cannot be larger than 2048 bytes. A request of size 2049 was provided."


async def test_event_timeout_limit(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("evto")
    assert await stub.set_event_timeout(1000) == 1000
    with pytest.raises(JsException) as info:
        await stub.set_event_timeout(604800001)
    assert str(info.value) == "Event timeout should not exceed 604800000 ms."


# -- rules that hold today ----------------------------------------------------------------------

async def test_tags_and_attachments_after_wake(cfemu_runtime, mod):
    rt = cfemu_runtime
    a = await rt.websocket("/wake/ws?tags=red,blue")
    b = await rt.websocket("/wake/ws?tags=red")
    await a.send("constructed")
    first = int(await a.receive())
    await rt.evict("PROBE", "wake")
    await b.send("count:red")
    assert await b.receive() == "2"
    await b.send("count:blue")
    assert await b.receive() == "1"
    await a.send("tags")
    assert await a.receive() == "red,blue"
    await a.send("attachment")
    assert await a.receive() == repr({"tags": ["red", "blue"]})
    await a.send("constructed")
    assert int(await a.receive()) == first + 1  # the object really was rebuilt


async def test_ten_tags_are_accepted(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("ten")
    tags = [f"t{i}" for i in range(10)]
    assert await stub.accept_many_tags(tags) == tags


async def test_attachment_over_16_kib_is_rejected(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/att/ws")
    await ws.send("big-attachment")
    assert await ws.receive() != "accepted"


async def test_web_socket_error_reaches_the_handler(cfemu_runtime, mod):
    rt = cfemu_runtime
    await rt.websocket("/err/ws")
    await rt.evict("PROBE", "err")
    (server,) = server_sockets(rt, "err")
    server._error(RuntimeError("transport broke"))
    await rt.settle()
    assert rt.storage("PROBE", "err").get("ws_error") == "transport broke"


async def test_close_after_eviction_wakes_the_object(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/cl/ws")
    await rt.evict("PROBE", "cl")
    await ws.close(4002, "done")
    await rt.settle()
    assert rt.storage("PROBE", "cl").get("ws_closed") == [4002, "done", True]


async def test_object_closes_a_hibernated_socket(cfemu_runtime, mod):
    from cfemu.testing import WebSocketClosed

    rt = cfemu_runtime
    ws = await rt.websocket("/oc/ws")
    await rt.evict("PROBE", "oc")
    await ws.send("close-me")
    with pytest.raises(WebSocketClosed) as info:
        await ws.receive()
    assert (info.value.code, info.value.reason) == (4001, "bye")


async def test_pending_timer_prevents_hibernation(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/tmr/ws")
    await ws.send("constructed")
    first = int(await ws.receive())
    await ws.send("timer")
    assert await ws.receive() == "armed"
    await rt.advance(11)
    await ws.send("constructed")
    assert int(await ws.receive()) == first  # still the same instance: it could not hibernate
    await rt.advance(20)
    assert await ws.receive() == "tick"


async def test_pending_interval_prevents_hibernation_until_cleared(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/intv/ws")
    await ws.send("constructed")
    first = int(await ws.receive())
    await ws.send("interval")
    assert await ws.receive() == "armed"
    await rt.advance(11)
    assert [await ws.receive(), await ws.receive()] == ["tick", "tick"]
    await ws.send("constructed")
    assert int(await ws.receive()) == first  # the interval kept the instance in memory
    await ws.send("stop-interval")
    assert await ws.receive() == "stopped"
    await rt.advance(11)
    assert ws.pending() == []  # no tick after clearInterval
    await ws.send("constructed")
    assert int(await ws.receive()) == first + 1  # then it could hibernate


async def test_idle_hibernatable_object_is_rebuilt_on_next_message(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/idle/ws?tags=x")
    await ws.send("constructed")
    first = int(await ws.receive())
    await rt.advance(11)
    await ws.send("constructed")
    assert int(await ws.receive()) == first + 1
    await ws.send("tags")
    assert await ws.receive() == "x"
