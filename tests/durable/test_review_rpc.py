"""Review of issue 3: stubs, RPC values and exceptions, stub.fetch — second reviewer's tests."""

from datetime import datetime, timezone

import pytest

from cfemu.http import Request

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")


async def test_exceptions_from_object_code_are_marked_remote(cfemu_runtime):
    stub = cfemu_runtime.env.PROBE.getByName("remote")
    with pytest.raises(ValueError) as info:
        await stub.put_then_raise("k")
    assert getattr(info.value, "remote", False) is True


# -- rules that hold today ----------------------------------------------------------------------

async def test_sync_async_and_coroutine_returning_methods(cfemu_runtime):
    stub = cfemu_runtime.env.PROBE.getByName("kinds")
    assert await stub.sync_value(1) == {"sync": 1}
    assert await stub.async_value(2) == {"async": 2}
    assert await stub.returns_coroutine(3) == {"async": 3}


async def test_get_by_name_stub_carries_id_and_name(cfemu_runtime):
    ns = cfemu_runtime.env.PROBE
    stub = ns.getByName("named")
    assert stub.name == "named"
    assert stub.id.equals(ns.idFromName("named"))
    assert stub.id.name == "named"
    assert await stub.bump() == 1
    # the same object through every route to it
    assert await ns.get(ns.idFromName("named")).bump() == 2
    assert await ns.get(ns.idFromString(stub.id.toString())).bump() == 3


async def test_id_of_another_namespace_is_rejected(cfemu_runtime):
    env = cfemu_runtime.env
    with pytest.raises(TypeError):
        env.KVPROBE.get(env.PROBE.idFromName("x"))
    with pytest.raises(TypeError):
        env.KVPROBE.idFromString(env.PROBE.idFromName("x").toString())


async def test_stub_fetch_with_a_request_object_and_body(cfemu_runtime):
    stub = cfemu_runtime.env.PROBE.getByName("req")
    request = Request("https://example.com/p?q=1", method="POST", headers={"x-probe": "yes"}, body="payload")
    response = await stub.fetch(request)
    assert response.status == 200
    assert await response.text() == "POST https://example.com/p?q=1 yes payload"


async def test_stub_fetch_with_url_and_init(cfemu_runtime):
    stub = cfemu_runtime.env.PROBE.getByName("req2")
    response = await stub.fetch("https://example.com/x", method="PUT", headers={"x-probe": "h"}, body="b")
    assert await response.text() == "PUT https://example.com/x h b"


async def test_worker_forwards_its_request_to_the_object(cfemu_runtime):
    response = await cfemu_runtime.fetch("/fwd/path", method="PATCH", headers={"x-probe": "f"}, body="data")
    assert await response.text() == "PATCH http://localhost/fwd/path f data"


async def test_rpc_values_round_trip(cfemu_runtime):
    stub = cfemu_runtime.env.PROBE.getByName("vals")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    value = {"when": moment, "raw": b"\x00\xff", "nested": [{"a": None, "b": 1.5, "c": True}]}
    assert await stub.sync_value(value) == {"sync": value}
    assert await stub.sync_value(2**70) == {"sync": 2**70}  # cfemu carries big ints as BigInt
