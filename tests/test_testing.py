"""cfemu.testing and the pytest plugin: the fixture, the marker, the async and the sync runtime."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cfemu.testing import Runtime, SyncRuntime, WebSocketClosed

DEV = Path(__file__).parent / "workers" / "dev" / "wrangler.toml"


@pytest.mark.cfemu_config("workers/dev/wrangler.toml")
async def test_fixture_with_marker_relative_to_the_test_file(cfemu_runtime, tmp_path):
    assert cfemu_runtime.config.path == DEV
    assert cfemu_runtime.state_dir == tmp_path / "state"
    assert await (await cfemu_runtime.fetch("/")).text() == "hello from v1"
    start = cfemu_runtime.now()
    await cfemu_runtime.advance(600)  # two */5 crons come due on the virtual clock
    assert cfemu_runtime.now() == start + 600
    crons = await (await cfemu_runtime.fetch("/crons")).json()
    assert len(crons) == 2 and all(c[1] % 300_000 == 0 for c in crons)


@pytest.mark.cfemu_config(DEV, vars={"EXTRA": "marker kwargs"})
async def test_marker_keyword_arguments_reach_from_config(cfemu_runtime):
    assert await (await cfemu_runtime.fetch("/var")).text() == "marker kwargs"


async def test_fetch_options():
    async with Runtime.from_config(DEV) as rt:
        resp = await rt.fetch("/echo?a=b", method="POST", json={"k": [1]}, headers={"x-test": "h"})
        assert resp.status == 201
        body = await resp.json()
        assert body["method"] == "POST" and body["url"] == "http://localhost/echo?a=b"
        assert body["body"] == '{"k": [1]}' and body["x-test"] == "h"
        resp = await rt.fetch("http://example.com/echo", method="PUT", body=b"raw")
        assert (await resp.json())["url"] == "http://example.com/echo"
        assert (await rt.fetch("/style.css")).headers.get("content-type") == "text/css; charset=utf-8"


async def test_websocket_client():
    async with Runtime.from_config(DEV) as rt:
        ws = await rt.websocket("/ws")
        assert await ws.receive() == "welcome"
        await ws.send("hi")
        assert await ws.receive() == "echo: hi"
        await ws.send(b"ab")
        assert await ws.receive() == b"ba"
        await ws.send("close-me")
        with pytest.raises(WebSocketClosed) as info:
            await ws.receive()
        assert (info.value.code, info.value.reason) == (4000, "as asked")
        assert ws.closed
        ws = await rt.websocket("/ws")
        await ws.close(4001, "bye")
        await rt.settle()
        assert (await (await rt.fetch("/closes")).json())[-1] == [4001, "bye", True]
        with pytest.raises(AssertionError) as info:
            await rt.websocket("/nowhere")
        assert "expected a WebSocket upgrade (101), got 404: worker 404" in str(info.value)


async def test_scheduled_by_hand_and_errors():
    async with Runtime.from_config(DEV) as rt:
        assert await rt.scheduled() is True
        crons = await (await rt.fetch("/crons")).json()
        assert crons[-1][:2] == ["*/5 * * * *", int(rt.now() * 1000)]


async def test_state_survives_crash_and_restart(tmp_path):
    rt = Runtime.from_config(DEV, persist_to=tmp_path / "state")
    async with rt:
        await rt.fetch("/kv", method="PUT", body="durable")
        ws = await rt.websocket("/ws")
        assert await ws.receive() == "welcome"
        await rt.crash()
        with pytest.raises(WebSocketClosed) as info:
            await ws.receive()
        assert info.value.code == 1006
        with pytest.raises(RuntimeError):
            await rt.fetch("/")
        await rt.restart()
        assert await (await rt.fetch("/kv")).text() == "durable"
    async with Runtime.from_config(DEV, persist_to=tmp_path / "state") as again:
        assert await (await again.fetch("/kv")).text() == "durable"


async def test_a_temporary_state_directory_is_removed():
    async with Runtime.from_config(DEV) as rt:
        state = rt.state_dir
        await rt.fetch("/kv", method="PUT", body="x")
        assert state.is_dir()
    assert not state.exists()


async def test_redeploy_gets_fresh_code_and_keeps_state(tmp_path, write_worker):
    config = write_worker(tmp_path / "w", '''
        from workers import Response, WorkerEntrypoint
        import version
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.method == "PUT":
                    await self.env.KV.put("k", "v")
                return Response(version.V + " " + str(await self.env.KV.get("k")))
    ''', '[[kv_namespaces]]\nbinding = "KV"\n', files={"version.py": "V = 'one'\n"})
    async with Runtime.from_config(config) as rt:
        assert await (await rt.fetch("/", method="PUT")).text() == "one v"
        (tmp_path / "w" / "version.py").write_text("V = 'two!'\n")
        await rt.redeploy()
        assert await (await rt.fetch("/")).text() == "two! v"


def test_sync_runtime():
    with SyncRuntime.from_config(DEV) as rt:
        resp = rt.fetch("/echo", method="POST", body="sync")
        assert resp.status == 201
        assert rt.json(resp)["body"] == "sync"
        start = rt.now()
        rt.advance(300)
        assert rt.now() == start + 300
        rt.call(rt.env.KV.put, "k", "from sync")
        assert rt.call(rt.env.KV.get, "k") == "from sync"
        assert rt.text(rt.fetch("/kv")) == "from sync"
        assert rt.scheduled() is True  # other async methods run on the helper loop too


def test_the_plugin_in_a_fresh_project(tmp_path):
    """The `pytest11` entry point: a project with a wrangler.toml at its root gets `cfemu_runtime`."""
    def write(rel, text):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text))

    hello = '''
        from workers import Response, WorkerEntrypoint
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("{}")
    '''
    write("wrangler.toml", 'name = "root"\nmain = "src/worker.py"\n')
    write("src/worker.py", hello.format("root worker"))
    write("other/wrangler.toml", 'name = "other"\nmain = "worker.py"\n')
    write("other/worker.py", hello.format("other worker"))
    write("pytest.ini", "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    write("tests/test_app.py", '''
        import pytest

        async def test_root(cfemu_runtime):
            assert await (await cfemu_runtime.fetch("/")).text() == "root worker"

        @pytest.mark.cfemu_config("other/wrangler.toml")
        async def test_marker_from_rootdir(cfemu_runtime):
            assert await (await cfemu_runtime.fetch("/")).text() == "other worker"

        async def test_virtual_clock(cfemu_runtime):
            t = cfemu_runtime.now()
            await cfemu_runtime.advance(3600)
            assert cfemu_runtime.now() == t + 3600
    ''')
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


TIMER_CHAIN = '''
from js import Date, setTimeout
from workers import Response, WorkerEntrypoint

fired = []

def tick(n):
    fired.append((n, Date.now()))
    if n < 5:
        setTimeout(lambda: tick(n + 1), 1000)

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        setTimeout(lambda: tick(1), 1000)
        return Response("armed")
'''


async def test_advance_runs_timers_that_schedule_more_timers(tmp_path, write_worker):
    config = write_worker(tmp_path, TIMER_CHAIN)
    async with Runtime.from_config(config, start=1_000) as rt:
        await rt.fetch("/")
        await rt.advance(3.5)
        fired = rt.worker_module("worker").fired
        assert fired == [(1, 1_001_000), (2, 1_002_000), (3, 1_003_000)]  # each at its own instant
        assert rt.now() == 1_003.5
        await rt.advance(100)
        assert [n for n, _ in fired] == [1, 2, 3, 4, 5]


def test_sync_runtime_drives_timers_and_closes_its_thread(tmp_path, write_worker):
    import threading

    config = write_worker(tmp_path, TIMER_CHAIN)
    before = {t.name for t in threading.enumerate()}
    rt = SyncRuntime.from_config(config, start=1_000)
    try:
        assert rt.text(rt.fetch("/")) == "armed"
        rt.advance(10)
        assert len(rt.worker_module("worker").fired) == 5
    finally:
        rt.close()
    assert "cfemu-sync-runtime" not in {t.name for t in threading.enumerate()} - before


def test_sync_runtime_websocket_is_synchronous():
    # Was: SyncRuntime.websocket() handed back the async TestWebSocket; its methods returned coroutines.
    rt = SyncRuntime.from_config(DEV)
    try:
        ws = rt.websocket("/ws")
        assert ws.receive() == "welcome"
        ws.send("hi")
        assert ws.receive() == "echo: hi"
        ws.close(1000, "bye")
        assert ws.closed
    finally:
        rt.close()
