"""The runtime as a worker meets it: dispatch signatures, ctx, errors, crons and time from the virtual clock."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest

from cfemu.errors import WorkerLoadError
from cfemu.runtime import WORKER_THREW
from cfemu.testing import Runtime

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z, on a 5-minute boundary
assert START % 300 == 0

SIGNATURES = '''
from workers import Response, WorkerEntrypoint

seen = []

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        seen.append(("fetch", request.url, type(self.env).__name__, type(self.ctx).__name__))
        return Response("ok")

    async def scheduled(self, controller, env, ctx):
        seen.append(("scheduled", controller.cron, controller.scheduledTime, env, ctx, self.env.A))

    async def queue(self, batch, env, ctx):
        seen.append(("queue", batch.queue, env, ctx, self.env.A))
'''


async def test_class_handlers_get_env_none_and_ctx_none(tmp_path, write_worker):
    config = write_worker(tmp_path, SIGNATURES, '[vars]\nA = "a"\n')
    async with Runtime.from_config(config, start=START) as rt:
        assert await (await rt.fetch("/p")).text() == "ok"
        assert await rt.scheduled("0 * * * *") is True
        await rt.core.dispatch_queue(SimpleNamespace(queue="jobs", messages=[]))
        seen = rt.worker_module("worker").seen
        assert seen == [
            ("fetch", "http://localhost/p", "JsObject", "ExecutionContext"),
            ("scheduled", "0 * * * *", int(START * 1000), None, None, "a"),
            ("queue", "jobs", None, None, "a"),
        ]


@pytest.mark.parametrize("params, expect", [
    ("self, request", "1"),
    ("self, request, env", "2 a"),
    ("self, request, env, ctx", "3 a ExecutionContext"),
    ("self, *args", "3 a ExecutionContext"),
])
async def test_relaxed_fetch_signatures(tmp_path, write_worker, params, expect):
    code = f'''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch({params}):
        args = [a for a in locals().get("args", ()) ] or [v for k, v in locals().items() if k in ("request", "env", "ctx")]
        parts = [str(len(args))]
        if len(args) > 1:
            parts.append(args[1].A)
        if len(args) > 2:
            parts.append(type(args[2]).__name__)
        return Response(" ".join(parts))
'''
    config = write_worker(tmp_path, code, '[vars]\nA = "a"\n')
    async with Runtime.from_config(config) as rt:
        assert await (await rt.fetch("/")).text() == expect


@pytest.mark.parametrize("params, expect", [
    ("request", "GET /m"),
    ("request, env", "GET /m a"),
    ("request, env, ctx", "GET /m a ExecutionContext"),
])
async def test_module_level_on_fetch(tmp_path, write_worker, params, expect):
    code = f'''
from workers import Response

async def on_fetch({params}):
    parts = [request.method, request.path]
    if "env" in locals():
        parts.append(env.A)
    if "ctx" in locals():
        parts.append(type(ctx).__name__)
    return Response(" ".join(parts))
'''
    config = write_worker(tmp_path, code, '[vars]\nA = "a"\n')
    async with Runtime.from_config(config) as rt:
        assert await (await rt.fetch("/m")).text() == expect


async def test_module_level_on_scheduled_gets_env_and_ctx(tmp_path, write_worker):
    code = '''
seen = []
from workers import Response
async def on_fetch(request):
    return Response("")
async def on_scheduled(controller, env, ctx):
    seen.append((controller.cron, env.A, type(ctx).__name__))
'''
    config = write_worker(tmp_path, code, '[vars]\nA = "a"\n')
    async with Runtime.from_config(config) as rt:
        assert await rt.scheduled("1 * * * *")
        assert rt.worker_module("worker").seen == [("1 * * * *", "a", "ExecutionContext")]


WAIT_UNTIL = '''
import asyncio
from workers import Response, WorkerEntrypoint

events = []
gate = None

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        global gate
        gate = asyncio.Event()

        async def later():
            await gate.wait()
            events.append("background done")

        async def broken():
            await asyncio.sleep(0)
            raise RuntimeError("background boom")

        self.ctx.waitUntil(later())
        if request.path == "/broken":
            self.ctx.waitUntil(broken())
        events.append("responded")
        return Response("early")
'''


async def test_wait_until_runs_after_the_response(tmp_path, write_worker):
    config = write_worker(tmp_path, WAIT_UNTIL)
    async with Runtime.from_config(config) as rt:
        module = rt.worker_module("worker")
        resp = await asyncio.wait_for(rt.fetch("/"), 2)  # a runtime that awaited the work would hang here
        assert await resp.text() == "early"
        await rt.settle()
        assert module.events == ["responded"]  # the response came back while the work still waits
        module.gate.set()
        await rt.settle()
        assert module.events == ["responded", "background done"]


async def test_wait_until_errors_are_logged_not_raised(tmp_path, write_worker, caplog):
    config = write_worker(tmp_path, WAIT_UNTIL)
    async with Runtime.from_config(config) as rt:
        with caplog.at_level(logging.ERROR, logger="cfemu"):
            resp = await rt.fetch("/broken")
            assert resp.status == 200
            await rt.settle()
        errors = [r for r in caplog.records if r.exc_info and "background boom" in str(r.exc_info[1])]
        assert errors, caplog.text
        rt.worker_module("worker").gate.set()


async def test_wait_until_requires_an_awaitable(tmp_path, write_worker):
    code = '''
from workers import Response, WorkerEntrypoint
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        try:
            self.ctx.waitUntil(42)
        except TypeError as e:
            return Response(str(e))
        return Response("accepted")
'''
    async with Runtime.from_config(write_worker(tmp_path, code)) as rt:
        assert await (await rt.fetch("/")).text() == "waitUntil() takes a promise (an awaitable)."


THROWS = '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.path == "/pass":
            self.ctx.passThroughOnException()
        if request.path == "/none":
            return None
        return 1 / 0
'''


async def test_a_worker_that_raises_gives_500_and_logs_the_traceback(tmp_path, write_worker, caplog):
    config = write_worker(tmp_path, THROWS)
    async with Runtime.from_config(config) as rt:
        with caplog.at_level(logging.ERROR, logger="cfemu"):
            resp = await rt.fetch("/boom")
        assert resp.status == 500
        assert await resp.text() == WORKER_THREW == "Worker threw exception"
        record = next(r for r in caplog.records if r.exc_info)
        assert isinstance(record.exc_info[1], ZeroDivisionError)
        assert "GET http://localhost/boom" in record.getMessage()
        assert f'File "{tmp_path / "worker.py"}", line 10, in fetch' in caplog.text
        # the runtime keeps serving
        assert (await rt.fetch("/boom")).status == 500


async def test_a_handler_returning_no_response_is_a_500(tmp_path, write_worker, caplog):
    async with Runtime.from_config(write_worker(tmp_path, THROWS)) as rt:
        resp = await rt.fetch("/none")
        assert resp.status == 500
        assert await resp.text() == "The worker's fetch handler did not return a Response."


async def test_pass_through_on_exception_falls_back_to_assets(tmp_path, write_worker):
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "pass.html").write_text("<p>origin</p>")
    config = write_worker(tmp_path, THROWS, '[assets]\ndirectory = "public"\nrun_worker_first = true\n')
    async with Runtime.from_config(config) as rt:
        resp = await rt.fetch("/pass")
        assert resp.status == 200
        assert await resp.text() == "<p>origin</p>"
        assert (await rt.fetch("/other")).status == 500  # without passThroughOnException


async def test_a_worker_without_default_does_not_load(tmp_path, write_worker):
    config = write_worker(tmp_path, "x = 1\n")
    with pytest.raises(WorkerLoadError) as info:
        async with Runtime.from_config(config):
            pass
    assert "no `class Default(WorkerEntrypoint)` (or `on_fetch`) found" in str(info.value)


async def test_env_has_vars_and_secrets(tmp_path, write_worker):
    code = '''
from workers import Response, WorkerEntrypoint
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response.json({"a": self.env.A, "n": self.env.NESTED["k"], "nested_attr": self.env.NESTED.k,
                              "s": self.env.SECRET})
'''
    config = write_worker(tmp_path, code, '[vars]\nA = "1"\nNESTED = { k = [1, 2] }\n')
    (tmp_path / ".dev.vars").write_text("SECRET=shh\n")
    async with Runtime.from_config(config) as rt:
        assert await (await rt.fetch("/")).json() == {"a": "1", "n": [1, 2], "nested_attr": [1, 2], "s": "shh"}


CRON = '''
from js import Date
from workers import Response, WorkerEntrypoint

fired = []

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("")

    async def scheduled(self, controller, env, ctx):
        fired.append((controller.cron, controller.scheduledTime, Date.now()))
'''


@pytest.mark.parametrize("step", [3000.0, 60.0, 299.0])
async def test_cron_fires_exactly_on_the_boundaries(tmp_path, write_worker, step):
    config = write_worker(tmp_path, CRON, '[triggers]\ncrons = ["*/5 * * * *"]\n')
    n = 10
    async with Runtime.from_config(config, start=START + 1) as rt:
        fired = rt.worker_module("worker").fired
        moved = 0.0
        while moved < n * 300:
            delta = min(step, n * 300 - moved)
            await rt.advance(delta)
            moved += delta
        boundaries = [int((START + 300 * i) * 1000) for i in range(1, n + 1)]
        assert [f[1] for f in fired] == boundaries
        assert [f[2] for f in fired] == boundaries  # Date.now() inside the handler is the scheduled instant
        assert {f[0] for f in fired} == {"*/5 * * * *"}
        assert rt.now() == START + 1 + n * 300


async def test_two_crons_interleave_in_time_order(tmp_path, write_worker):
    config = write_worker(tmp_path, CRON, '[triggers]\ncrons = ["*/10 * * * *", "*/15 * * * *"]\n')
    async with Runtime.from_config(config, start=START) as rt:
        await rt.advance(1800)
        fired = rt.worker_module("worker").fired
        times = [f[1] for f in fired]
        assert times == sorted(times)
        # (crons due at the same instant have no defined order between them)
        assert sorted(((f[1] // 1000 - int(START)) // 60, f[0]) for f in fired) == [(m, c) for c, m in [
            ("*/10 * * * *", 10), ("*/15 * * * *", 15), ("*/10 * * * *", 20), ("*/10 * * * *", 30),
            ("*/15 * * * *", 30)]]


async def test_no_cron_fires_before_its_time(tmp_path, write_worker):
    config = write_worker(tmp_path, CRON, '[triggers]\ncrons = ["0 0 * * *"]\n')
    async with Runtime.from_config(config, start=START) as rt:
        await rt.advance(15 * 3600)
        assert rt.worker_module("worker").fired == []
        await rt.advance(1 * 3600)  # 08:00 + 16 h = midnight
        assert len(rt.worker_module("worker").fired) == 1


TIMERS = '''
from js import Date, setTimeout, clearTimeout
from workers import Response, WorkerEntrypoint

log = []

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.path == "/now":
            return Response(str(Date.now()))
        if request.path == "/timer":
            setTimeout(lambda: log.append(("sync", Date.now())), 5000)

            async def later(tag):
                log.append((tag, Date.now()))
            setTimeout(later, 2000, "async")
            cancelled = setTimeout(lambda: log.append(("cancelled", 0)), 1000)
            clearTimeout(cancelled)
        return Response("ok")
'''


async def test_date_now_follows_the_virtual_clock(tmp_path, write_worker):
    async with Runtime.from_config(write_worker(tmp_path, TIMERS), start=START) as rt:
        first = int(await (await rt.fetch("/now")).text())
        assert first == int(START * 1000)
        await rt.advance(12.5)
        assert int(await (await rt.fetch("/now")).text()) == first + 12_500
        assert rt.now() == START + 12.5


async def test_set_timeout_fires_on_advance(tmp_path, write_worker):
    async with Runtime.from_config(write_worker(tmp_path, TIMERS), start=START) as rt:
        log = rt.worker_module("worker").log
        await rt.fetch("/timer")
        await rt.advance(1.999)
        assert log == []
        await rt.advance(0.001)
        assert log == [("async", int(START * 1000) + 2000)]
        await rt.advance(2.999)
        assert len(log) == 1
        await rt.advance(0.001)
        assert log == [("async", int(START * 1000) + 2000), ("sync", int(START * 1000) + 5000)]
        await rt.advance(60)
        assert len(log) == 2  # the cleared timer never fires


async def test_advance_rejects_going_backwards(tmp_path, write_worker):
    async with Runtime.from_config(write_worker(tmp_path, TIMERS)) as rt:
        with pytest.raises(ValueError):
            await rt.advance(-1)


SDK = '''
from js import (JSON, Date, Object, WebSocketPair, WebSocketRequestResponsePair, console, setInterval,
                clearInterval)
from pyodide.ffi import JsException, JsProxy, create_proxy, to_js
from workers import DurableObject, Headers, Request, Response, WorkerEntrypoint, fetch, handler

ticks = []
interval = None

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        global interval
        if request.path == "/interval":
            interval = setInterval(lambda: ticks.append(Date.now()), 1000)
            return Response("started")
        if request.path == "/stop":
            clearInterval(interval)
            return Response("stopped")
        console.log("hello", {"a": 1})
        obj = Object.fromEntries([("a", 1), ("b", [1, 2])])
        converted = to_js({"x": {"y": 1}}, dict_converter=Object.fromEntries)
        proxy = create_proxy(lambda v: v * 2)
        try:
            JSON.parse("{bad")
        except JsException as e:
            parse_error = e.name
        return Response.json({
            "obj": [obj.a, obj["b"]],
            "converted": converted.x["y"],
            "proxy": [proxy(21), isinstance(proxy, JsProxy)],
            "json": JSON.stringify({"k": [1, "é"]}),
            "parse_error": parse_error,
            "headers": Headers({"A": "1"}).get("a"),
        })
'''


async def test_the_sdk_surface_worker_code_imports(tmp_path, write_worker, caplog):
    async with Runtime.from_config(write_worker(tmp_path, SDK), start=START) as rt:
        with caplog.at_level(logging.INFO, logger="cfemu.console"):
            body = await (await rt.fetch("/")).json()
        assert body == {"obj": [1, [1, 2]], "converted": 1, "proxy": [42, True], "json": '{"k":[1,"é"]}',
                        "parse_error": "SyntaxError", "headers": "1"}
        assert 'hello {"a": 1}' in caplog.text


async def test_set_interval_on_the_virtual_clock(tmp_path, write_worker):
    async with Runtime.from_config(write_worker(tmp_path, SDK), start=START) as rt:
        ticks = rt.worker_module("worker").ticks
        await rt.fetch("/interval")
        await rt.advance(3.5)
        assert ticks == [int(START * 1000) + 1000 * i for i in (1, 2, 3)]
        await rt.fetch("/stop")
        await rt.advance(10)
        assert len(ticks) == 3


async def test_sdk_modules_are_cfemu_s(tmp_path, write_worker):
    import sys

    async with Runtime.from_config(write_worker(tmp_path, SDK)):
        assert sys.modules["workers"].__name__ == "cfemu.sdk.workers"
        assert sys.modules["js"].__name__ == "cfemu.sdk.js"
        assert sys.modules["pyodide.ffi"].__name__ == "cfemu.sdk.pyodide_ffi"


ZERO_DELAY_LOOP = '''
from js import setTimeout
from workers import Response, WorkerEntrypoint

def again():
    setTimeout(again, 0)

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        setTimeout(again, 0)
        return Response("ok")
'''


async def test_advance_stops_a_timer_that_reschedules_itself_without_delay(tmp_path, write_worker, monkeypatch):
    # Was: advance() never returned (each timer came due at the same instant as the last).
    import cfemu.runtime

    monkeypatch.setattr(cfemu.runtime, "MAX_TIMERS_PER_INSTANT", 500)
    config = write_worker(tmp_path, ZERO_DELAY_LOOP)
    async with Runtime.from_config(config, start=START) as rt:
        await rt.fetch("/")
        with pytest.raises(RuntimeError) as info:
            await asyncio.wait_for(rt.advance(1), 10)
        assert str(info.value) == cfemu.runtime.TIMER_LOOP.format(count=500, at=START)


SPINNER = '''
import asyncio
from js import setTimeout
from workers import Response, WorkerEntrypoint

state = {"spin": True, "turns": 0, "chains": 0, "ticks": 0}

async def spin():
    while state["spin"]:  # busy-waits on the event loop, never on the clock
        state["turns"] += 1
        await asyncio.sleep(0)

async def chain(n):
    for _ in range(n):
        await asyncio.sleep(0)
    state["chains"] += 1

def tick():
    state["ticks"] += 1

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/spin"):
            self.ctx.waitUntil(spin())
        else:
            self.ctx.waitUntil(chain(300))
            for second in range(1, 6):
                setTimeout(tick, second * 1000)
        return Response("ok")
'''


async def test_advance_stays_fast_beside_a_task_spinning_on_sleep_zero(tmp_path, write_worker):
    # Was: every settle() inside advance() turned the loop 100,000 times (~3 s) for the spinner.
    config = write_worker(tmp_path, SPINNER)
    async with Runtime.from_config(config, start=START) as rt:
        state = rt.worker_module("worker").state
        await rt.fetch("/spin")
        began = time.perf_counter()
        await rt.fetch("/work")  # 300 loop turns of real work, and five timers
        await rt.advance(10)
        took = time.perf_counter() - began
        assert state["chains"] == 1 and state["ticks"] == 5  # the real work still finished in time
        assert state["turns"] > 300
        state["spin"] = False
        await rt.settle()
    assert took < 0.5, took
