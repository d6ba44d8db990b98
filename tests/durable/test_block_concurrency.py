"""blockConcurrencyWhile: its 30-second limit and what the input gate holds while it runs.

Production (workerd io/io-context.h, IoContext::blockConcurrencyWhile): the callback races a
30 s limit timer; when the timer wins, the critical section fails with an OVERLOADED Error, every
event waiting at the input gate fails with it and the object is reset.  storage.transaction()
runs inside blockConcurrencyWhile (api/actor-state.c++), so the same limit applies to it.
"""

import asyncio

import pytest

from cfemu.errors import JsException

from review_support import spin

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")

BCW_TIMEOUT = ("A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
               "The call was canceled and the Durable Object was reset.")


async def _fails_with_timeout(future):
    await spin()
    assert future.done(), "the call is still waiting"
    with pytest.raises(JsException) as info:
        await future
    assert str(info.value) == BCW_TIMEOUT
    assert info.value.overloaded


async def test_block_running_past_30_seconds_is_canceled_and_the_object_reset(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("bcw-timeout")
    assert await stub.bump() == 1
    before = mod.CONSTRUCTED["Probe"]
    call = asyncio.ensure_future(stub.bcw_forever())
    await spin()
    waiting = asyncio.ensure_future(stub.bump())  # held at the input gate by the block
    await spin()
    await rt.advance(29.9)
    assert not call.done() and not waiting.done()
    await rt.advance(0.2)
    await _fails_with_timeout(call)
    await _fails_with_timeout(waiting)
    assert await stub.bump() == 1  # in-memory state is gone: the object was constructed again
    assert mod.CONSTRUCTED["Probe"] == before + 1


async def test_block_that_ends_in_time_is_not_canceled_later(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("bcw-in-time")
    assert await stub.bump() == 1
    call = asyncio.ensure_future(stub.bcw_for(20_000))
    await spin()
    await rt.advance(20)
    assert await call == "done"
    await rt.advance(20)  # past the 30 s the finished block would have had
    assert await stub.bump() == 2  # same instance


async def test_constructor_block_past_30_seconds_fails_waiting_calls_and_resets(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.SLOWINIT.getByName("ctor-timeout")
    before = mod.CONSTRUCTED["SlowInit"]
    calls = [asyncio.ensure_future(stub.is_ready()) for _ in range(3)]
    await spin()
    await rt.advance(31)
    for call in calls:
        await _fails_with_timeout(call)
    mod.gate("slow-init").set()
    assert await stub.is_ready() is True  # a new instance, whose block now finishes
    assert mod.CONSTRUCTED["SlowInit"] == before + 2
    assert rt.storage("SLOWINIT", "ctor-timeout").get("loaded") == 1  # the first load wrote nothing


async def test_transaction_running_past_30_seconds_rolls_back_and_resets(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("txn-timeout")
    call = asyncio.ensure_future(stub.txn_for(60_000))
    await spin()
    await rt.advance(31)
    await _fails_with_timeout(call)
    assert rt.storage("PROBE", "txn-timeout").get("slow-txn") is None
    await rt.advance(60)  # the closure's own timer must not run anything on a reset object
    assert rt.storage("PROBE", "txn-timeout").get("slow-txn") is None


async def test_timer_set_inside_a_block_fires_inside_it(cfemu_runtime, mod):
    # `await new Promise(r => setTimeout(r, ms))` inside blockConcurrencyWhile works on Cloudflare:
    # the timer belongs to the block, so the block does not hold it back (that would deadlock).
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("bcw-timer")
    call = asyncio.ensure_future(stub.bcw_for(1000))
    await spin()
    await rt.advance(1)
    await spin()
    assert call.done(), "the block's own timer was held back by the block"
    assert await call == "done"


async def test_io_completion_of_an_earlier_event_waits_for_the_block(cfemu_runtime, mod):
    # Production's input gate holds every delivery into the object while a block is open,
    # including the continuation of an event that was already waiting on outside I/O.
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("bcw-io")
    await stub.bump()
    earlier = asyncio.ensure_future(stub.via_other("bcw-io-other", "io"))
    await spin()
    assert ("started", "io") in mod.LOG
    block = asyncio.ensure_future(stub.hold("h"))
    await spin()
    mod.gate("io").set()  # the other object answers while the block is open
    await spin()
    assert ("resumed", "io") not in mod.LOG, "the earlier event resumed inside another event's block"
    assert not earlier.done()
    mod.gate("h").set()
    await spin()
    assert await block == "h"
    assert await earlier == "h"  # it resumed after the block and saw what the block wrote



async def test_transaction_closure_error_rolls_back_without_resetting_the_object(cfemu_runtime, mod):
    # workerd runs transaction() in blockConcurrencyWhile but carries the closure's error out of the
    # block as a value (TxnResult.isError): the writes roll back, the caller gets the error, and the
    # object is NOT reset (a throwing blockConcurrencyWhile callback would reset it).
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("txn-raise")
    assert await stub.bump() == 1
    with pytest.raises(ValueError, match="closure failed"):
        await stub.txn_raise()
    assert rt.storage("PROBE", "txn-raise").get("raised-txn") is None
    assert await stub.bump() == 102  # memory kept: 1 + 100 (txn_raise) + 1


async def test_block_given_something_not_callable_is_a_type_error_without_reset(cfemu_runtime, mod):
    # jsg refuses the argument before anything runs: a TypeError at the call, no reset.
    stub = cfemu_runtime.env.PROBE.getByName("bcw-notfn")
    assert await stub.bump() == 1
    assert await stub.bcw_not_a_function() == [
        "TypeError",
        "Failed to execute 'blockConcurrencyWhile' on 'DurableObjectState': parameter 1 is not of type 'Function'.",
    ]
    assert await stub.bump() == 12  # memory kept


async def test_event_held_by_a_block_fails_when_the_block_times_out(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("bcw-io-timeout")
    earlier = asyncio.ensure_future(stub.via_other("bcw-io-timeout-other", "io2"))
    await spin()
    block = asyncio.ensure_future(stub.bcw_forever())
    await spin()
    mod.gate("io2").set()  # answered while the block is open: the earlier event is held
    await spin()
    assert ("resumed", "io2") not in mod.LOG
    await rt.advance(31)
    await _fails_with_timeout(block)
    await _fails_with_timeout(earlier)
    assert ("resumed", "io2") not in mod.LOG  # it never ran on the reset object


async def test_wait_until_work_also_waits_for_another_events_block(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("bcw-bg")
    await stub.background_via_other("bcw-bg-other", "bg")
    await spin()
    block = asyncio.ensure_future(stub.hold("hbg"))
    await spin()
    mod.gate("bg").set()
    await spin()
    assert not [e for e in mod.LOG if e[0] == "background resumed"], "waitUntil work ran inside the block"
    mod.gate("hbg").set()
    await spin()
    assert await block == "hbg"
    await rt.settle()
    assert ("background resumed", "bg", "hbg") in mod.LOG
