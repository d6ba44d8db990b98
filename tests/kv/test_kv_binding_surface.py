"""What worker code can reach on `env.KV`: the Workers KV API, not the standalone helpers."""

from __future__ import annotations

import pytest

from cfemu.clock import VirtualClock
from cfemu.kv import KVNamespace
from cfemu.testing import Runtime

START = 1_800_000_000.0

WORKER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/close"):
            try:
                self.env.KV.close()
            except Exception as error:
                return Response(f"{type(error).__name__}", status=400)
            return Response("closed")
        await self.env.KV.put("k", "v")
        return Response(await self.env.KV.get("k"))
"""


@pytest.fixture
def config(tmp_path, write_worker):
    return write_worker(tmp_path / "app", WORKER, '[[kv_namespaces]]\nbinding = "KV"\nid = "ns"\n')


async def test_a_worker_cannot_close_the_namespace_for_everybody(config):
    async with Runtime.from_config(config, start=START) as rt:
        resp = await rt.fetch("/close")
        assert resp.status == 400 and await resp.text() == "AttributeError"
        # The namespace still serves every later request.
        assert await (await rt.fetch("/")).text() == "v"


async def test_the_binding_shows_only_the_kv_api(config):
    async with Runtime.from_config(config, start=START) as rt:
        kv = rt.env.KV
        public = {name for name in dir(kv) if not name.startswith("_")}
        assert public == {"get", "getWithMetadata", "put", "delete", "list"}
        for name in ("close", "open", "location"):
            assert not hasattr(kv, name)
        # Tests reach other locations through the service, as before.
        remote = rt.service("kv").location("KV", "sydney")
        assert not hasattr(remote, "close")


async def test_standalone_namespaces_keep_open_close_and_location(tmp_path):
    clock = VirtualClock(START)
    with KVNamespace.open(tmp_path / "ns.sqlite", clock=clock) as kv:
        remote = kv.location("sydney")
        await kv.put("k", "v")
        assert await remote.get("k") is None
        clock.set(START + 60)
        assert await remote.get("k") == "v"
    with pytest.raises(RuntimeError, match="is closed"):
        await kv.get("other")
    kv.close()  # closing twice is fine
