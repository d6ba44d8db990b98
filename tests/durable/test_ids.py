import hashlib
import hmac

import pytest

from cfemu.durable.ids import ID_NOT_HEX, ID_WRONG_NAMESPACE, id_from_name, namespace_key

pytestmark = pytest.mark.cfemu_config("workers/basic/wrangler.toml")


def expected_id(script: str, cls: str, name: str) -> str:
    key = hashlib.sha256(f"{script}-{cls}".encode()).digest()
    first = hmac.new(key, name.encode(), hashlib.sha256).digest()[:16]
    return (first + hmac.new(key, first, hashlib.sha256).digest()[:16]).hex()


async def test_id_from_name_is_derived_like_workerd(cfemu_runtime):
    ns = cfemu_runtime.env.STORE
    object_id = ns.idFromName("general")
    assert object_id.toString() == expected_id("basic", "Store", "general")
    assert len(object_id.toString()) == 64
    assert object_id.name == "general"
    assert object_id.equals(ns.idFromName("general"))
    assert not object_id.equals(ns.idFromName("music"))


async def test_unique_ids_and_round_trip(cfemu_runtime):
    ns = cfemu_runtime.env.STORE
    a, b = ns.newUniqueId(), ns.newUniqueId()
    assert a.toString() != b.toString() and a.name is None
    again = ns.idFromString(a.toString())
    assert again.equals(a) and again.name is None


@pytest.mark.parametrize("bad", ["", "xyz", "a" * 63, "g" * 64, "A" * 64])
async def test_id_from_string_rejects_malformed(cfemu_runtime, bad):
    with pytest.raises(TypeError) as info:
        cfemu_runtime.env.STORE.idFromString(bad)
    assert str(info.value) == ID_NOT_HEX


async def test_ids_of_another_namespace_are_rejected(cfemu_runtime):
    other = cfemu_runtime.env.LEGACY.idFromName("x")
    with pytest.raises(TypeError) as info:
        cfemu_runtime.env.STORE.idFromString(other.toString())
    assert str(info.value) == ID_WRONG_NAMESPACE
    with pytest.raises(TypeError, match="not for this namespace"):
        cfemu_runtime.env.STORE.get(other)


def test_namespace_key_depends_on_worker_and_class():
    assert namespace_key("a", "B") != namespace_key("a", "C")
    assert id_from_name(namespace_key("a", "B"), "n").toString() == expected_id("a", "B", "n")
