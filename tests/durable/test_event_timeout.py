"""ctx.setHibernatableWebSocketEventTimeout(ms): a hibernation-API handler running longer is canceled.

Production (workerd api/global-scope.c++, setHibernatableEventTimeout / eventTimeoutPromise): the
handler races a limit timer of `ms` (0 or unset: no limit) started when the handler starts; when
the timer wins, the actor is shut down with a DISCONNECTED error "Actor exceeded event execution
time and was disconnected." — its memory is dropped and the next event constructs it again.
"""

import asyncio

import pytest

from cfemu.errors import JsException

from review_support import spin

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")

EVENT_TIMED_OUT = "Actor exceeded event execution time and was disconnected."


async def test_message_handler_running_past_the_event_timeout_is_canceled(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/evt/ws")
    await ws.send("event-timeout:5000")
    assert await ws.receive() == "5000"
    before = mod.CONSTRUCTED["Probe"]
    stub = rt.env.PROBE.getByName("evt")
    await ws.send("slow:60000")
    await spin()
    other = asyncio.ensure_future(stub.wait_for("evt-other"))  # another event in flight
    await spin()
    await rt.advance(4.9)
    assert ws.pending() == [] and not other.done()
    await rt.advance(0.2)
    await spin()
    assert other.done(), "the reset did not fail the other event in flight"
    with pytest.raises(JsException) as info:
        await other
    assert str(info.value) == EVENT_TIMED_OUT
    assert info.value.retryable
    await rt.advance(60)
    assert "slow done 1" not in ws.pending()  # the handler never went on
    await ws.send("constructed")
    assert await ws.receive() == str(before + 1)  # reset: constructed again; the socket stays open


async def test_handler_within_the_event_timeout_completes(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/evt2/ws")
    await ws.send("event-timeout:5000")
    assert await ws.receive() == "5000"
    await ws.send("slow:4000")
    await spin()
    await rt.advance(4)
    assert await ws.receive() == "slow done 1"
    await rt.advance(5)  # past the finished handler's limit (and short of hibernation's idle 10 s)
    await ws.send("slow:0")
    await spin()
    await rt.advance(0)
    assert await ws.receive() == "slow done 2"  # same instance


async def test_no_event_timeout_by_default(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/evt3/ws")
    await ws.send("slow:600000")
    await spin()
    await rt.advance(600)
    assert await ws.receive() == "slow done 1"
