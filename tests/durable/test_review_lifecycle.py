"""Review of issue 3: lifecycle (reset, reroute, redeploy, abort, eviction) — second reviewer's tests."""

import asyncio
from pathlib import Path

import pytest

from cfemu.durable.instance import CODE_UPDATED
from cfemu.errors import JsException

from review_support import spin

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")
CONFIG = Path(__file__).parent / "workers" / "review" / "wrangler.toml"


async def test_reroute_fails_a_waiting_call_promptly(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("rr")
    call = asyncio.ensure_future(stub.wait_for("rr"))
    await spin()
    assert ("started", "rr") in mod.LOG
    await rt.reroute("PROBE", "rr")
    await spin()
    failed_promptly = call.done()
    mod.gate("rr").set()  # let the call's own wait end, so the task always finishes
    with pytest.raises(JsException) as info:
        await call
    assert info.value.retryable
    assert failed_promptly


async def test_code_after_abort_does_not_run(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("ab")
    with pytest.raises(JsException, match="stop here"):
        await stub.abort_then_continue()
    assert ("after abort",) not in mod.LOG


# -- rules that hold today ----------------------------------------------------------------------

async def test_redeploy_resets_a_call_in_flight_with_code_updated(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("dep")
    assert await stub.bump() == 1
    call = asyncio.ensure_future(stub.wait_for("dep"))
    await spin()
    await rt.redeploy(CONFIG)
    mod.gate("dep").set()  # the old module's gate: let the zombie call finish
    with pytest.raises(JsException) as info:
        await call
    assert str(info.value) == CODE_UPDATED
    # the object comes back with fresh memory and the new code
    assert await rt.env.PROBE.getByName("dep").bump() == 1


async def test_abort_keeps_confirmed_writes_and_resets_memory(cfemu_runtime, mod):
    stub = cfemu_runtime.env.PROBE.getByName("ab2")
    await stub.write("kept", 1)
    assert await stub.bump() == 1
    with pytest.raises(JsException, match="stop here"):
        await stub.abort_then_continue()
    assert await stub.bump() == 1
    assert await stub.read("kept") == 1


async def test_eviction_of_an_object_with_a_pending_alarm(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("ev")
    when = int(rt.now() * 1000) + 5000
    await stub.set_alarm(when)
    before = mod.CONSTRUCTED["Probe"]
    await rt.evict("PROBE", "ev")
    await rt.advance(6)
    runs = rt.storage("PROBE", "ev").get("runs")
    assert [r["at"] for r in runs] == [when]
    assert mod.CONSTRUCTED["Probe"] == before + 1  # the alarm rebuilt the evicted object


async def test_storage_inspection_of_a_kv_backed_object(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.KVPROBE.getByName("kv")
    await stub.write("a", {"n": 1})
    await stub.write("b", [1, 2])
    view = rt.storage("KVPROBE", "kv")
    assert view.get("a") == {"n": 1}
    assert view.list() == {"a": {"n": 1}, "b": [1, 2]}
    assert view.get(["b", "missing"]) == {"b": [1, 2]}


async def test_list_ids_lists_objects_of_one_binding(cfemu_runtime, mod):
    rt = cfemu_runtime
    ns = rt.env.KVPROBE
    for name in ("x", "y"):
        await ns.getByName(name).write("k", name)
    await rt.env.PROBE.getByName("other").write("k", 1)
    assert rt.list_ids("KVPROBE") == sorted(ns.idFromName(n).toString() for n in ("x", "y"))


async def test_list_ids_after_delete_all(cfemu_runtime, mod):
    rt = cfemu_runtime
    ns = rt.env.KVPROBE
    await ns.getByName("gone").write("k", 1)
    await ns.getByName("kept").write("k", 1)
    await ns.getByName("gone").clear()
    await rt.evict("KVPROBE", "gone")
    assert rt.list_ids("KVPROBE") == [ns.idFromName("kept").toString()]
