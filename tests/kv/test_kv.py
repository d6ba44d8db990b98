"""Workers KV through a worker: reads, writes, TTLs on the virtual clock, metadata, lists, restarts."""

from __future__ import annotations

import json

import pytest
from cfemu.testing import Runtime

START = 1_800_000_000.0

WORKER = """
import json
from urllib.parse import parse_qs, urlparse

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        kv = self.env.KV
        try:
            if url.path == "/put":
                options = {}
                if "ttl" in q:
                    options["expirationTtl"] = int(q["ttl"])
                if "expiration" in q:
                    options["expiration"] = int(q["expiration"])
                if "meta" in q:
                    options["metadata"] = json.loads(q["meta"])
                await kv.put(q["key"], await request.text(), **options)
                return Response("stored")
            if url.path == "/get":
                value = await kv.get(q["key"], type=q.get("type", "text"))
                if value is None:
                    return Response("missing", status=404)
                return Response.json({"value": value})
            if url.path == "/meta":
                return Response.json(await kv.getWithMetadata(q["key"]))
            if url.path == "/bulk":
                return Response.json(await kv.get(q["keys"].split(","), q.get("type", "text")))
            if url.path == "/delete":
                await kv.delete(q["key"])
                return Response("deleted")
            if url.path == "/list":
                result = await kv.list(prefix=q.get("prefix"), cursor=q.get("cursor"),
                                       limit=int(q["limit"]) if "limit" in q else None)
                return Response.json(result)
            if url.path == "/stream":
                value = await kv.get(q["key"], {"type": "stream"})
                return Response(value)
        except Exception as error:
            return Response(f"{type(error).__name__}: {error}", status=400)
        return Response("no route", status=404)
"""

TOML = """
[[kv_namespaces]]
binding = "KV"
id = "0f2ac74b498b48028cb68387c421e279"
"""


@pytest.fixture
def config(tmp_path, write_worker):
    return write_worker(tmp_path / "app", WORKER, TOML)


async def test_put_get_delete_through_a_worker(config):
    async with Runtime.from_config(config, start=START) as rt:
        assert (await rt.fetch("/put?key=greeting", method="PUT", body="hello")).status == 200
        resp = await rt.fetch("/get?key=greeting")
        assert await resp.json() == {"value": "hello"}
        assert (await rt.fetch("/get?key=nope")).status == 404
        await rt.fetch("/put?key=doc", method="PUT", body='{"a": [1, 2]}')
        assert await (await rt.fetch("/get?key=doc&type=json")).json() == {"value": {"a": [1, 2]}}
        await rt.fetch("/delete?key=greeting")
        assert (await rt.fetch("/get?key=greeting")).status == 404
        # Deleting a missing key is fine.
        assert (await rt.fetch("/delete?key=greeting")).status == 200


async def test_value_types(config):
    async with Runtime.from_config(config, start=START) as rt:
        kv = rt.env.KV
        await kv.put("bin", b"\x00\xffdata")
        assert await kv.get("bin", type="arrayBuffer") == b"\x00\xffdata"
        assert await kv.get("bin", "arrayBuffer") == b"\x00\xffdata"
        assert await kv.get("bin", {"type": "arrayBuffer"}) == b"\x00\xffdata"
        await kv.put("text", "héllo ✓")
        assert await kv.get("text") == "héllo ✓"
        assert await kv.get("text", type="arrayBuffer") == "héllo ✓".encode()
        stream = await kv.get("text", type="stream")
        assert b"".join([chunk async for chunk in stream]) == "héllo ✓".encode()
        resp = await rt.fetch("/stream?key=text")
        assert await resp.text() == "héllo ✓"

        async def chunks():
            yield b"streamed "
            yield "value"

        await kv.put("from-stream", chunks())
        assert await kv.get("from-stream") == "streamed value"
        await kv.put("json", json.dumps({"n": 1, "list": [True, None]}))
        value = await kv.get("json", type="json")
        assert value == {"n": 1, "list": [True, None]}
        assert value.n == 1  # JSON objects come back as JsObjects
        await kv.put("not-json", "{oops")
        with pytest.raises(Exception) as info:
            await kv.get("not-json", type="json")
        assert info.value.name == "SyntaxError"


async def test_metadata_and_get_with_metadata(config):
    async with Runtime.from_config(config, start=START) as rt:
        await rt.fetch('/put?key=k&meta={"owner":"ann","n":2}', method="PUT", body="v")
        assert await (await rt.fetch("/meta?key=k")).json() == {
            "value": "v", "metadata": {"owner": "ann", "n": 2}, "cacheStatus": None}
        assert await (await rt.fetch("/meta?key=missing")).json() == {
            "value": None, "metadata": None, "cacheStatus": None}
        await rt.env.KV.put("plain", "x")
        result = await rt.env.KV.getWithMetadata("plain")
        assert result.metadata is None and result.value == "x"
        # A put without metadata drops the old metadata.
        await rt.env.KV.put("k", "v2")
        assert (await rt.env.KV.getWithMetadata("k"))["metadata"] is None


async def test_bulk_get(config):
    async with Runtime.from_config(config, start=START) as rt:
        kv = rt.env.KV
        await kv.put("a", '"x"', metadata={"m": 1})
        await kv.put("b", "[1]")
        resp = await rt.fetch("/bulk?keys=a,b,zz")
        assert await resp.json() == {"a": '"x"', "b": "[1]", "zz": None}
        assert list((await kv.get(["b", "zz", "a"])).keys()) == ["b", "zz", "a"]
        assert await kv.get(["a", "b", "zz"], type="json") == {"a": "x", "b": [1], "zz": None}
        with_meta = await kv.getWithMetadata(["a", "b", "zz"], "json")
        assert with_meta == {"a": {"value": "x", "metadata": {"m": 1}}, "b": {"value": [1], "metadata": None}, "zz": None}


async def test_ttl_expiry_on_the_virtual_clock(config):
    async with Runtime.from_config(config, start=START) as rt:
        await rt.fetch("/put?key=session&ttl=60", method="PUT", body="s1")
        await rt.fetch(f"/put?key=until&expiration={int(START) + 120}", method="PUT", body="u")
        await rt.fetch("/put?key=forever", method="PUT", body="f")
        listed = await (await rt.fetch("/list")).json()
        assert listed["keys"] == [{"name": "forever"}, {"name": "session", "expiration": int(START) + 60},
                                  {"name": "until", "expiration": int(START) + 120}]
        await rt.advance(59.9)
        assert (await rt.fetch("/get?key=session")).status == 200
        await rt.advance(0.1)
        # Gone the moment the clock reaches the expiration, from get and from list.
        assert (await rt.fetch("/get?key=session")).status == 404
        assert [k["name"] for k in (await (await rt.fetch("/list")).json())["keys"]] == ["forever", "until"]
        assert await (await rt.fetch("/meta?key=session")).json() == {"value": None, "metadata": None, "cacheStatus": None}
        assert (await rt.env.KV.get(["session", "until"])) == {"session": None, "until": "u"}
        await rt.advance(60)
        assert (await rt.fetch("/get?key=until")).status == 404
        assert [k["name"] for k in (await (await rt.fetch("/list")).json())["keys"]] == ["forever"]
        # Putting again without a TTL makes the key permanent.
        await rt.env.KV.put("session", "s2", expirationTtl=60)
        await rt.env.KV.put("session", "s3")
        await rt.advance(3600)
        assert await rt.env.KV.get("session") == "s3"


async def test_list_order_prefix_and_pagination(config):
    async with Runtime.from_config(config, start=START) as rt:
        kv = rt.env.KV
        names = ["b", "a", "ab", "é", "z", "\uffff", "😀", "a/1", "a/2", "a/3", "A"]
        for name in names:
            await kv.put(name, name)
        everything = await kv.list()
        # UTF-8 byte order: "😀" (F0...) sorts after "\uffff" (EF BF BF), unlike UTF-16 order.
        assert [k["name"] for k in everything["keys"]] == sorted(names, key=lambda s: s.encode())
        assert everything["list_complete"] is True and "cursor" not in everything
        assert everything["cacheStatus"] is None
        assert [k["name"] for k in (await kv.list(prefix="a/"))["keys"]] == ["a/1", "a/2", "a/3"]
        seen, cursor, pages = [], None, 0
        while True:
            page = await kv.list(limit=3, cursor=cursor)
            pages += 1
            seen += [k["name"] for k in page["keys"]]
            if page["list_complete"]:
                assert "cursor" not in page
                break
            assert len(page["keys"]) == 3 and page["cursor"]
            cursor = page["cursor"]
        assert seen == sorted(names, key=lambda s: s.encode()) and pages == 4
        # limit = number of keys: complete, no cursor.
        exact = await kv.list(prefix="a/", limit=3)
        assert exact["list_complete"] is True and "cursor" not in exact


async def test_pagination_across_expirations(config):
    async with Runtime.from_config(config, start=START) as rt:
        kv = rt.env.KV
        for i in range(10):
            await kv.put(f"k{i}", "v", expirationTtl=60 if i % 2 else 120)
        first = await kv.list(limit=4)
        assert [k["name"] for k in first["keys"]] == ["k0", "k1", "k2", "k3"]
        await rt.advance(60)  # the odd keys expire between pages
        rest, cursor = [], first["cursor"]
        while cursor:
            page = await kv.list(limit=2, cursor=cursor)
            rest += [k["name"] for k in page["keys"]]
            cursor = page.get("cursor")
        assert rest == ["k4", "k6", "k8"]


async def test_state_survives_close_and_reopen(config, tmp_path):
    state = tmp_path / "state"
    async with Runtime.from_config(config, persist_to=state, start=START) as rt:
        await rt.env.KV.put("kept", "yes", metadata={"v": 1})
        await rt.env.KV.put("short", "ttl", expirationTtl=60)
    assert (state / "kv" / "0f2ac74b498b48028cb68387c421e279.sqlite").is_file()
    async with Runtime.from_config(config, persist_to=state, start=START + 30) as rt:
        assert await rt.env.KV.get("kept") == "yes"
        assert (await rt.env.KV.getWithMetadata("kept"))["metadata"] == {"v": 1}
        assert await rt.env.KV.get("short") == "ttl"
    async with Runtime.from_config(config, persist_to=state, start=START + 61) as rt:
        assert await rt.env.KV.get("short") is None
        assert await rt.env.KV.get("kept") == "yes"


async def test_put_is_durable_across_a_crash(config, tmp_path):
    rt = Runtime.from_config(config, persist_to=tmp_path / "state", start=START)
    await rt.start()
    await rt.fetch("/put?key=a", method="PUT", body="committed")
    await rt.crash()
    await rt.restart()
    assert await rt.env.KV.get("a") == "committed"
    await rt.close()


async def test_bindings_sharing_an_id_share_data(tmp_path, write_worker):
    config = write_worker(tmp_path / "app", WORKER, """
[[kv_namespaces]]
binding = "KV"
id = "same"

[[kv_namespaces]]
binding = "OTHER"
id = "same"

[[kv_namespaces]]
binding = "SEPARATE"
id = "separate"
""")
    async with Runtime.from_config(config, start=START) as rt:
        await rt.env.KV.put("k", "v")
        assert await rt.env.OTHER.get("k") == "v"
        assert await rt.env.SEPARATE.get("k") is None


async def test_standalone_namespace(tmp_path):
    from cfemu.clock import VirtualClock
    from cfemu.kv import KVNamespace

    clock = VirtualClock(START)
    ns = KVNamespace.open(tmp_path / "cache.sqlite", clock=clock)
    await ns.put("token", "abc", expirationTtl=300)
    assert await ns.get("token") == "abc"
    clock.set(START + 300)
    assert await ns.get("token") is None
    ns.close()


def test_a_confirmed_put_survives_kill_9(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "ns.sqlite"
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from cfemu.kv import KVNamespace

        async def main():
            kv = KVNamespace.open({str(path)!r})
            for i in range(50):
                await kv.put(f"k{{i}}", "v" * 1000)
            print("confirmed", flush=True)
            time.sleep(60)

        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "confirmed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    from cfemu.kv import KVNamespace

    kv = KVNamespace.open(path)
    try:
        import asyncio

        assert asyncio.run(kv.get("k49")) == "v" * 1000
        assert len(asyncio.run(kv.list())["keys"]) == 50
    finally:
        kv.close()


async def test_a_stream_value_reads_like_a_readable_stream(config):
    from cfemu.errors import JsTypeError

    async with Runtime.from_config(config, start=START) as rt:
        kv = rt.env.KV
        data = bytes(range(256)) * 1024  # 256 KiB: several chunks
        await kv.put("big", data)
        stream = await kv.get("big", type="stream")
        reader = stream.getReader()
        with pytest.raises(JsTypeError) as info:
            stream.getReader()
        assert str(info.value) == "This ReadableStream is currently locked to a reader."
        got = b""
        while True:
            result = await reader.read()
            if result.done:
                assert result.value is None
                break
            got += result.value
        assert got == data
        # Released, the stream can be locked again (and is empty now).
        reader.releaseLock()
        assert [chunk async for chunk in stream] == []
        # getWithMetadata gives the same kind of stream.
        meta = await kv.getWithMetadata("big", type="stream")
        assert b"".join([chunk async for chunk in meta["value"]]) == data
        with pytest.raises(JsTypeError):
            [chunk async for chunk in meta["value"]]
