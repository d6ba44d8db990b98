import pytest

from cfemu.errors import JsException

pytestmark = pytest.mark.cfemu_config("workers/basic/wrangler.toml")


async def test_rpc_calls_public_methods(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("a")
    assert await stub.incr() == 1
    assert await stub.incr() == 2
    assert await stub.echo(1, "x", flag=True) == {"args": [1, "x"], "kwargs": {"flag": True}}


async def test_arguments_and_results_are_copies(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("a")
    mine = {"list": [1, 2]}
    result = await stub.mutate(mine)
    assert result == {"list": [1, 2], "mutated": True}
    assert mine == {"list": [1, 2]}  # the callee could not touch the caller's object
    await stub.put("k", mine)
    mine["list"].append(3)
    assert await stub.get("k") == {"list": [1, 2]}


async def test_uncloneable_values_are_type_errors(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("a")
    with pytest.raises(TypeError, match="tuples"):
        await stub.echo((1, 2))
    with pytest.raises(TypeError, match="sets"):
        await stub.echo({1, 2})
    with pytest.raises(TypeError, match="tuples"):
        await stub.give_tuple()


async def test_exceptions_cross_with_type_and_message(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("a")
    with pytest.raises(ValueError, match="bad value"):
        await stub.fail_value()
    with pytest.raises(JsException) as info:
        await stub.fail_custom()
    assert str(info.value) == "custom failure"
    assert type(info.value).__name__ != "CustomError"


async def test_private_and_missing_methods_are_not_rpc(cfemu_runtime):
    stub = cfemu_runtime.env.STORE.getByName("a")
    with pytest.raises(TypeError) as info:
        await stub._private()
    assert str(info.value) == 'The RPC receiver does not implement the method "_private".'
    with pytest.raises(TypeError, match='does not implement the method "nope"'):
        await stub.nope()
    with pytest.raises(TypeError, match='"alarm"'):
        await stub.alarm()


async def test_stub_fetch_reaches_the_object(cfemu_runtime):
    resp = await cfemu_runtime.fetch("/obj/hello", method="POST", body="x")
    assert resp.status == 200
    assert await resp.text() == "fetch 1 POST http://localhost/obj/hello"


async def test_one_instance_per_id(cfemu_runtime):
    ns = cfemu_runtime.env.STORE
    assert await ns.getByName("m").bump_memory() == 1
    assert await ns.get(ns.idFromName("m")).bump_memory() == 2
    assert await ns.getByName("other").bump_memory() == 1


async def test_sql_is_not_enabled_on_kv_backed_classes(cfemu_runtime):
    with pytest.raises(JsException, match="SQL is not enabled for this Durable Object class"):
        await cfemu_runtime.env.LEGACY.getByName("x").try_sql()
    assert await cfemu_runtime.env.STORE.getByName("x").sql_count() == 1
