import asyncio

import pytest

from cfemu.errors import JsException

pytestmark = pytest.mark.cfemu_config("workers/basic/wrangler.toml")


async def test_input_gate_serialises_read_modify_write(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("counter")
    results = await asyncio.gather(*(stub.incr() for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await stub.get("n") == 50


async def test_other_io_opens_the_input_gate(cfemu_runtime):
    # With a real suspension between read and write, events interleave (as on Cloudflare).
    stub = cfemu_runtime.env.STORE.getByName("racy")
    await asyncio.gather(*(stub.incr_with_io() for _ in range(20)))
    assert await stub.get("n") < 20


async def test_failed_commit_discards_output_and_resets(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("f")
    await stub.put("a", 1)
    assert await stub.bump_memory() == 1
    cfemu_runtime.fail_next_storage_write("STORE", "f")
    with pytest.raises(JsException):
        await stub.put("a", 2)
    assert await stub.get("a") == 1  # the failed write never landed
    assert await stub.bump_memory() == 1  # the object was reset
    assert cfemu_runtime.storage("STORE", "f").get("a") == 1


async def test_writes_without_await_between_commit_together(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("atomic")
    cfemu_runtime.fail_next_storage_write("STORE", "atomic")
    with pytest.raises(JsException):
        await stub.incr()  # get + put in one turn
    assert cfemu_runtime.storage("STORE", "atomic").get("n") is None


async def test_block_concurrency_while_holds_other_events(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("b")
    await stub.incr()  # construct the object

    async def read_while_blocked():
        await asyncio.sleep(0)
        # delivered only after the blocking function (which sleeps, then writes) has finished
        return await stub.get("blocked")

    result, seen = await asyncio.gather(stub.blocked(), read_while_blocked())
    assert result == "result"
    assert seen == "done"


async def test_block_concurrency_while_failure_resets(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("bf")
    assert await stub.bump_memory() == 1
    with pytest.raises(RuntimeError, match="init failed"):
        await stub.block_and_fail()
    assert await stub.bump_memory() == 1


async def test_abort_resets_the_object(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("ab")
    await stub.put("kept", True)
    assert await stub.bump_memory() == 1
    with pytest.raises(JsException, match="aborted on purpose"):
        await stub.abort_me()
    assert await stub.bump_memory() == 1
    assert await stub.get("kept") is True


async def test_reroute_fails_calls_in_flight_with_retryable_error(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("r")
    assert await stub.bump_memory() == 1
    call = asyncio.ensure_future(stub.blocked())
    await asyncio.sleep(0)
    await cfemu_runtime.reroute("STORE", "r")
    with pytest.raises(JsException) as info:
        await call
    assert info.value.retryable
    assert await stub.bump_memory() == 1


async def test_eviction_keeps_storage_drops_memory(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("e")
    await stub.put("x", {"deep": [1]})
    assert await stub.bump_memory() == 1
    await cfemu_runtime.evict("STORE", "e")
    assert await stub.bump_memory() == 1
    assert await stub.get("x") == {"deep": [1]}


async def test_idle_objects_are_evicted_after_70_seconds(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("idle")
    assert await stub.bump_memory() == 1
    await cfemu_runtime.advance(30)
    assert await stub.bump_memory() == 2
    await cfemu_runtime.advance(71)
    assert await stub.bump_memory() == 1


async def test_crash_keeps_confirmed_writes(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("c")
    for i in range(5):
        await stub.put(f"k{i}", i)
    await cfemu_runtime.crash()
    await cfemu_runtime.restart()
    stub = cfemu_runtime.env.STORE.getByName("c")
    assert [await stub.get(f"k{i}") for i in range(5)] == list(range(5))
    assert cfemu_runtime.list_ids("STORE") == [cfemu_runtime.env.STORE.idFromName("c").toString()]
