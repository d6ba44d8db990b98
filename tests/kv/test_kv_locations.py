"""A second location's view of a namespace: writes arrive late, reads are cached for cacheTtl."""

from __future__ import annotations

import pytest

from cfemu.testing import Runtime

START = 1_800_000_000.0

WORKER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        key = request.url.rsplit("/", 1)[1]
        if request.method == "PUT":
            await self.env.KV.put(key, await request.text())
            return Response("ok")
        value = await self.env.KV.get(key)
        return Response(value if value is not None else "missing")
"""


@pytest.fixture
async def rt(tmp_path, write_worker):
    config = write_worker(tmp_path / "app", WORKER, '[[kv_namespaces]]\nbinding = "KV"\nid = "ns"\n')
    async with Runtime.from_config(config, start=START) as runtime:
        yield runtime


async def test_a_write_reaches_another_location_after_the_delay(rt):
    remote = rt.service("kv").location("KV", "sydney")
    await rt.fetch("/k", method="PUT", body="v1")
    assert await (await rt.fetch("/k")).text() == "v1"  # read-your-writes where it was written
    assert await remote.get("k") is None
    await rt.advance(59)
    assert await remote.get("k") is None
    await rt.advance(1)
    assert await remote.get("k") == "v1"


async def test_a_cached_read_outlives_the_delay_for_its_cache_ttl(rt):
    remote = rt.service("kv").location("KV", "sydney")
    await rt.env.KV.put("k", "old")
    await rt.advance(60)
    assert await remote.get("k", cacheTtl=300) == "old"
    await rt.env.KV.put("k", "new")
    await rt.advance(120)
    assert await remote.get("k") == "old"  # still inside the 300 s cache of the earlier read
    await rt.advance(180)
    assert await remote.get("k") == "new"


async def test_missing_keys_are_cached_too(rt):
    remote = rt.service("kv").location("KV", "sydney")
    assert await remote.get("k", cacheTtl=600) is None
    await rt.env.KV.put("k", "v")
    await rt.advance(300)
    assert await remote.get("k") is None
    await rt.advance(300)
    assert await remote.get("k") == "v"


async def test_writes_at_the_remote_location(rt):
    remote = rt.service("kv").location("KV", "sydney", delay=30)
    await rt.fetch("/k", method="PUT", body="primary")
    await remote.put("k", "remote")
    assert await remote.get("k") == "remote"
    assert await (await rt.fetch("/k")).text() == "primary"  # not propagated yet
    await rt.advance(60)
    assert await (await rt.fetch("/k")).text() == "remote"  # last write wins once both arrived
    await remote.delete("k")
    assert await remote.get("k") is None
    await rt.advance(60)
    assert await (await rt.fetch("/k")).text() == "missing"


async def test_list_and_bulk_get_follow_the_view(rt):
    remote = rt.service("kv").location("KV", "sydney")
    await rt.env.KV.put("a", "1")
    await rt.env.KV.put("b", "1")
    await rt.advance(60)
    await rt.env.KV.put("c", "new")
    await rt.env.KV.delete("a")
    assert [k["name"] for k in (await remote.list())["keys"]] == ["a", "b"]
    page = await remote.list(limit=1)
    assert [k["name"] for k in page["keys"]] == ["a"] and page["list_complete"] is False
    assert [k["name"] for k in (await remote.list(cursor=page["cursor"]))["keys"]] == ["b"]
    assert await remote.get(["a", "c"]) == {"a": "1", "c": None}
    assert [k["name"] for k in (await rt.env.KV.list())["keys"]] == ["b", "c"]
    await rt.advance(60)
    assert [k["name"] for k in (await remote.list())["keys"]] == ["b", "c"]


async def test_ttl_still_applies_in_a_view(rt):
    remote = rt.service("kv").location("KV", "sydney")
    await rt.env.KV.put("k", "v", expirationTtl=90)
    await rt.advance(60)
    assert await remote.get("k", cacheTtl=600) == "v"
    await rt.advance(30)
    assert await remote.get("k") is None  # the cached copy expired with the key


async def test_every_binding_of_the_namespace_is_the_primary_location(tmp_path, write_worker):
    config = write_worker(tmp_path / "two", WORKER, """
[[kv_namespaces]]
binding = "KV"
id = "ns"

[[kv_namespaces]]
binding = "ALIAS"
id = "ns"
""")
    async with Runtime.from_config(config, start=START) as rt:
        remote = rt.service("kv").location("KV", "sydney")
        await remote.put("k", "from sydney")
        assert await rt.env.ALIAS.get("k") is None
        await rt.advance(60)
        assert await rt.env.ALIAS.get("k") == "from sydney"
