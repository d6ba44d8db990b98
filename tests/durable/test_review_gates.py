"""Review of issue 3: input/output gates and durability (second reviewer's tests).

Tests marked xfail(strict=True) are findings: behaviour that differs from Cloudflare production.
The lead un-xfails them after fixing cfemu.
"""

import asyncio

import pytest

from cfemu.errors import JsException

from review_support import spin

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")


async def test_exception_result_waits_for_the_output_gate(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("exc")
    with pytest.raises(ValueError, match="raised after a write"):
        await stub.put_then_raise("k")
    # The caller has seen the outcome of the call: the write made before it must be durable.
    await rt.crash()
    await rt.restart()
    assert rt.storage("PROBE", "exc").get("k") == "written"


async def test_failed_commit_replaces_an_exception_result(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("exc2")
    await stub.write("seed", 1)
    rt.fail_next_storage_write("PROBE", "exc2")
    with pytest.raises(JsException) as info:
        await stub.put_then_raise("k")
    assert not isinstance(info.value, ValueError)
    assert rt.storage("PROBE", "exc2").get("k") is None


async def test_queued_event_waits_for_a_block_started_by_an_earlier_queued_event(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("g")
    await stub.bump()
    first = asyncio.ensure_future(stub.hold("first"))
    await spin()
    second = asyncio.ensure_future(stub.hold("second"))  # queued behind the first block
    reader = asyncio.ensure_future(stub.read("phase"))  # queued behind both
    await spin()
    assert not second.done() and not reader.done()
    mod.gate("first").set()
    await spin()
    assert await first == "first"
    # The second event started its own blockConcurrencyWhile: the reader must still wait.
    reader_waited = not reader.done()
    mod.gate("second").set()
    await spin()
    assert await second == "second"
    assert reader_waited
    assert await reader == "second"


async def test_standard_websocket_message_waits_for_block_concurrency_while(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/stdgate/ws?std=1")
    stub = rt.env.PROBE.getByName("stdgate")
    held = asyncio.ensure_future(stub.hold("h"))
    await spin()
    await ws.send("what phase?")
    await spin()
    early = ws.pending()  # nothing may be delivered while the object is blocked
    mod.gate("h").set()
    await spin()
    await held
    assert early == []
    assert await ws.receive() == "phase=h"


async def test_calls_on_a_stub_are_delivered_in_the_order_made(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("eorder")
    first = stub.append("a")
    second = stub.append("b")
    await second
    await first
    assert await stub.read("log") == ["a", "b"]


# -- rules that hold today ----------------------------------------------------------------------

async def test_constructor_block_concurrency_while_holds_concurrent_first_calls(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.SLOWINIT.getByName("s")
    before = mod.CONSTRUCTED["SlowInit"]
    calls = [asyncio.ensure_future(stub.is_ready()) for _ in range(5)]
    await spin()
    assert not any(call.done() for call in calls)
    mod.gate("slow-init").set()
    assert await asyncio.gather(*calls) == [True] * 5
    assert mod.CONSTRUCTED["SlowInit"] == before + 1  # one instance for all five
    assert rt.storage("SLOWINIT", "s").get("loaded") == 1


async def test_output_gate_response_after_commit_survives_crash(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("dur")
    for i in range(10):
        assert await stub.append(i) == i + 1
    await rt.crash()
    await rt.restart()
    assert rt.storage("PROBE", "dur").get("log") == list(range(10))


async def test_gather_of_calls_keeps_creation_order(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("gorder")
    await asyncio.gather(*(stub.append(i) for i in range(20)))
    assert await stub.read("log") == list(range(20))


async def test_write_confirmed_during_another_events_transaction_is_durable(cfemu_runtime, mod):
    # Regression (found in review, fixed in 1251684): the output gate used to open while another
    # event's transaction() savepoint deferred the commit, so a confirmed write could be lost.
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("txn")
    await stub.bump()
    txn = asyncio.ensure_future(stub.txn_wait("tx"))
    await spin()
    write = asyncio.ensure_future(stub.write("b", 1))
    await spin()
    if write.done():  # confirmed while the transaction is open: it must be durable already
        await write
        await rt.crash()
        mod.gate("tx").set()
        await spin()
        for task in (txn,):
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - the crashed runtime's call
                pass
        await rt.restart()
        assert rt.storage("PROBE", "txn").get("b") == 1
        return
    mod.gate("tx").set()
    await txn
    await write
    await rt.crash()
    await rt.restart()
    assert rt.storage("PROBE", "txn").get("b") == 1
    assert rt.storage("PROBE", "txn").get("t") == 1


async def test_no_output_after_a_failed_write_on_a_hibernatable_socket(cfemu_runtime, mod):
    rt = cfemu_runtime
    ws = await rt.websocket("/hws/ws")
    rt.fail_next_storage_write("PROBE", "hws")
    await ws.send("write-then-ack")
    await rt.settle()
    await spin()
    assert "ack" not in ws.pending()
    assert rt.storage("PROBE", "hws").get("acked") is None
