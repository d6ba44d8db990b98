"""examples/counter works as its docstring says: counter, alarm reset, hibernating WebSocket."""

from pathlib import Path

import pytest

COUNTER = Path(__file__).resolve().parents[2] / "examples" / "counter" / "wrangler.toml"
pytestmark = pytest.mark.cfemu_config(str(COUNTER))


async def test_counter_increments_and_resets_an_hour_later(cfemu_runtime):
    rt = cfemu_runtime
    assert await (await rt.fetch("/a")).json() == {"count": 0}
    for expected in (1, 2):
        assert await (await rt.fetch("/a/increment", method="POST")).json() == {"count": expected}
    assert await (await rt.fetch("/b")).json() == {"count": 0}
    await rt.advance(3599)
    assert await (await rt.fetch("/a")).json() == {"count": 2}
    await rt.advance(2)
    assert await (await rt.fetch("/a")).json() == {"count": 0}


async def test_websocket_hears_changes_and_pings_do_not_wake_the_object(cfemu_runtime):
    rt = cfemu_runtime
    ws = await rt.websocket("/c/ws")
    assert await ws.receive() == "0"
    await ws.send("increment")
    assert await ws.receive() == "1"
    await rt.fetch("/c/increment", method="POST")
    assert await ws.receive() == "2"
    await rt.advance(11)  # idle: the object hibernates, the socket stays open
    await ws.send("ping")
    assert await ws.receive() == "pong"
    await ws.send("increment")
    assert await ws.receive() == "3"
