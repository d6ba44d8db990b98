import pytest

from cfemu.testing import WebSocketClosed

pytestmark = pytest.mark.cfemu_config("workers/basic/wrangler.toml")


def constructed(rt):
    return rt.worker_module("worker").CONSTRUCTED["count"]


async def test_hibernation_broadcast_and_wake_after_eviction(cfemu_runtime):
    rt = cfemu_runtime
    a = await rt.websocket("/room/ws?tag=t1")
    b = await rt.websocket("/room/ws?tag=t1")
    c = await rt.websocket("/room/ws?tag=t2")
    await a.send("hi")
    before = constructed(rt)
    assert await a.receive() == f"hi#1#{before}"
    assert await b.receive() == f"hi#1#{before}"
    assert c.pending() == []
    await rt.evict("STORE", "room")
    await b.send("again")
    # the object was rebuilt (constructor ran again) and the handler got the message
    assert await a.receive() == f"again#2#{before + 1}"
    assert not a.closed and not b.closed


async def test_idle_hibernatable_object_leaves_memory(cfemu_runtime):
    rt = cfemu_runtime
    ws = await rt.websocket("/room2/ws")
    await ws.send("x")
    first = constructed(rt)
    assert (await ws.receive()).endswith(f"#{first}")
    await rt.advance(11)
    await ws.send("y")
    assert await ws.receive() == f"y#2#{first + 1}"


async def test_auto_response_does_not_wake_the_object(cfemu_runtime):
    rt = cfemu_runtime
    ws = await rt.websocket("/room3/ws")
    await rt.evict("STORE", "room3")
    count = constructed(rt)
    await ws.send("ping")
    assert await ws.receive() == "pong"
    assert constructed(rt) == count


async def test_client_close_reaches_web_socket_close(cfemu_runtime):
    rt = cfemu_runtime
    ws = await rt.websocket("/room4/ws")
    await ws.close(4000, "bye")
    await rt.settle()
    assert rt.storage("STORE", "room4").get("closed") == [4000, "bye", True]


async def test_evict_with_close_closes_sockets(cfemu_runtime):
    rt = cfemu_runtime
    ws = await rt.websocket("/room5/ws")
    await rt.evict("STORE", "room5", websockets="close")
    with pytest.raises(WebSocketClosed) as info:
        await ws.receive()
    assert info.value.code == 1001


async def test_close_code_and_reason_validation():
    from cfemu.websocket import WebSocketPair

    client, server = WebSocketPair.new().object_values()
    server.accept()
    for code in (999, 1004, 1005, 1006, 1015, 5000):
        with pytest.raises(TypeError):
            server.close(code, "")
    with pytest.raises(TypeError):
        server.close(1000, "x" * 124)
    server.close(1000, "x" * 123)


async def test_standard_socket_sends_wait_for_commit_and_die_with_a_failed_one(cfemu_runtime):
    rt = cfemu_runtime
    ws = await rt.websocket("/std/ws?std=1")
    await ws.send("a")
    assert await ws.receive() == "a#1"
    rt.fail_next_storage_write("STORE", "std")
    await ws.send("b")
    with pytest.raises(WebSocketClosed) as info:
        await ws.receive()
    assert info.value.code == 1011  # the object reset; the send it held back was discarded
    assert rt.storage("STORE", "std").get("std") == 1


async def test_standard_socket_keeps_the_object_in_memory(cfemu_runtime):
    rt = cfemu_runtime
    ws = await rt.websocket("/std2/ws?std=1")
    await ws.send("a")
    assert await ws.receive() == "a#1"
    count = constructed(rt)
    await rt.advance(300)
    await ws.send("b")
    assert await ws.receive() == "b#2"
    assert constructed(rt) == count
