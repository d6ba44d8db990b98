"""The hibernation API's edges, checked against workerd src/workerd/api/actor-state.c++ and
api/web-socket.c++ (acceptWebSocket tag rules, getTags, setHibernatableWebSocketEventTimeout)."""

import pytest

from cfemu.errors import JsException

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")


async def test_get_tags_inside_web_socket_close(cfemu_runtime, mod):
    # The closed socket is still a hibernatable socket: its tags stay readable in the handler.
    rt = cfemu_runtime
    ws = await rt.websocket("/gtc/ws?tags=red,blue")
    await ws.close(4000, "bye")
    await rt.settle()
    assert rt.storage("PROBE", "gtc").get("ws_closed") == [4000, "bye", True]
    assert rt.storage("PROBE", "gtc").get("ws_closed_tags") == ["red", "blue"]


async def test_get_tags_on_a_socket_accepted_with_accept(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("gta")
    assert await stub.tags_error("accept") == ["Error", "only hibernatable websockets can have tags."]


async def test_get_tags_on_a_socket_not_accepted(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("gtn")
    assert await stub.tags_error("none") == [
        "Error", "you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket."]


async def test_tag_length_counts_utf8_bytes(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("tagbytes")
    tag = "é" * 129  # 129 characters, 258 bytes
    with pytest.raises(JsException) as info:
        await stub.accept_many_tags([tag])
    assert str(info.value) == f'"{tag}" is longer than the max tag length (256 characters).'
    assert await stub.accept_many_tags(["é" * 128]) == ["é" * 128]


async def test_a_tag_after_ten_distinct_ones_is_refused_even_if_repeated(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("tag10")
    tags = [f"t{i}" for i in range(10)]
    assert await stub.accept_many_tags(tags) == tags
    with pytest.raises(JsException) as info:
        await stub.accept_many_tags(tags + ["t0"])
    assert str(info.value) == "a Hibernatable WebSocket cannot have more than 10 tags"


async def test_event_timeout_zero_unsets_it(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("evt0")
    assert await stub.set_event_timeout(1000) == 1000
    assert await stub.set_event_timeout(0) is None
    assert await stub.set_event_timeout(None) is None


@pytest.mark.parametrize("bad", ["soon", -1, float("nan"), [5]])
async def test_event_timeout_rejects_what_is_not_a_millisecond_count(cfemu_runtime, mod, bad):
    stub = cfemu_runtime.env.PROBE.getByName("evtbad")
    with pytest.raises(TypeError) as info:
        await stub.set_event_timeout(bad)
    assert str(info.value) == ("setHibernatableWebSocketEventTimeout() takes a number of milliseconds "
                               "from 0 to 604800000.")
