"""Run a worker in-process and control its infrastructure from tests.

    async with Runtime.from_config("wrangler.toml") as rt:
        resp = await rt.fetch("/hello")
        await rt.advance(60)          # TTLs, alarms, queue batches, crons, timers come due

The clock is virtual by default: time moves only when the test says so.  That includes worker code's
own waits (`asyncio.sleep(n)`, `asyncio.wait_for`, `asyncio.timeout`, `js.setTimeout`): a handler
that sleeps answers once the test has advanced past its sleep, so start such a fetch as a task:

    call = asyncio.ensure_future(rt.fetch("/slow"))
    await rt.advance(10)
    response = await call

The same object offers
crash and restart, redeploys, and (with Durable Objects) eviction, reroutes and fault injection.
`SyncRuntime` wraps it for hypothesis state machines and plain scripts.
"""

from __future__ import annotations

import asyncio
import json as _json
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .clock import Clock
from .config import WorkerConfig, load_config
from .http import Request, Response
from .runtime import Runtime as _CoreRuntime
from .runtime import make_clock
from .websocket import WebSocket

__all__ = ["Runtime", "SyncRuntime", "TestWebSocket", "WebSocketClosed"]

BASE_URL = "http://localhost"
LOCAL_CF = {"colo": "LOCAL", "country": "XX", "httpProtocol": "HTTP/1.1", "clientTcpRtt": 0, "asn": 0}


class WebSocketClosed(Exception):
    """`receive()` on a socket the worker (or a crash) closed; carries the close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason


class TestWebSocket:
    """The client end of a worker's WebSocket, as a test drives it."""

    __test__ = False  # not a pytest test class

    def __init__(self, end: WebSocket, response: Response) -> None:
        self.response = response
        self._end = end
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""
        end.addEventListener("message", lambda ev: self._queue.put_nowait(("message", ev.data)))
        end.addEventListener("close", self._on_close)
        end.accept()

    def _on_close(self, event: Any) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = event.code, event.reason
        self._queue.put_nowait(("close", (event.code, event.reason)))

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    async def send(self, data: str | bytes) -> None:
        self._end.send(data)
        await asyncio.sleep(0)

    async def send_json(self, value: Any) -> None:
        await self.send(_json.dumps(value))

    async def receive(self, timeout: float = 5.0) -> str | bytes:
        """The next message; raises `WebSocketClosed` once the socket is closed."""
        if self.closed and self._queue.empty():
            raise WebSocketClosed(self.close_code or 1006, self.close_reason)
        kind, payload = await asyncio.wait_for(self._queue.get(), timeout)
        if kind == "close":
            self._queue.put_nowait((kind, payload))  # every later receive() sees the close too
            raise WebSocketClosed(*payload)
        return payload

    async def receive_json(self, timeout: float = 5.0) -> Any:
        return _json.loads(await self.receive(timeout))

    def pending(self) -> list[str | bytes]:
        """Messages already delivered and not yet received (without waiting)."""
        out = []
        while not self._queue.empty():
            kind, payload = self._queue.get_nowait()
            if kind == "close":
                self._queue.put_nowait((kind, payload))
                break
            out.append(payload)
        return out

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._end.readyState < WebSocket.CLOSING:
            self._end.close(code, reason)
        await asyncio.sleep(0)

    def _drop(self) -> None:
        """The runtime crashed: the connection is gone."""
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, ""
            self._queue.put_nowait(("close", (1006, "")))


class Runtime:
    """A worker loaded from a wrangler config, with a (virtual by default) clock and local state."""

    def __init__(self, config: WorkerConfig, *, persist_to: str | Path | None = None,
                 clock: str | Clock = "virtual", start: float | None = None) -> None:
        self.config = config
        self._temp = None if persist_to is not None else tempfile.mkdtemp(prefix="cfemu-test-")
        self.state_dir = Path(persist_to if persist_to is not None else self._temp)
        self.clock = make_clock(clock, start)
        self.core: _CoreRuntime | None = None
        self._sockets: list[TestWebSocket] = []

    @classmethod
    def from_config(cls, path: str | Path, *, persist_to: str | Path | None = None, clock: str | Clock = "virtual",
                    env: str | None = None, vars: dict[str, Any] | None = None, start: float | None = None) -> Runtime:
        """Load `path` (a wrangler.toml or its directory); use as `async with`."""
        return cls(load_config(path, env, extra_vars=vars), persist_to=persist_to, clock=clock, start=start)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def start(self) -> None:
        self.core = _CoreRuntime(self.config, state_dir=self.state_dir, clock=self.clock)
        await self.core.start()

    async def close(self) -> None:
        if self.core is not None:
            await self.core.close()
            self.core = None
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    # -- what a test reads -------------------------------------------------------------------

    @property
    def env(self) -> Any:
        return self._core.env

    @property
    def _core(self) -> _CoreRuntime:
        if self.core is None:
            raise RuntimeError("the runtime is not running (start it, or restart() it after crash())")
        return self.core

    def now(self) -> float:
        """The runtime clock, in seconds since the epoch."""
        return self.clock.now()

    def service(self, kind: str) -> Any:
        return self._core.service(kind)

    @property
    def analytics(self) -> Any:
        """The Analytics Engine service (`rt.analytics.query(sql)`)."""
        return self.service("analytics")

    def worker_module(self, name: str) -> Any:
        """A module of the loaded worker (for unit tests of worker code that must not import it directly)."""
        code = self._core.code
        if code is None or name not in code.modules:
            raise KeyError(f"the worker has no module named {name!r}")
        return code.modules[name]

    # -- events ------------------------------------------------------------------------------

    def _request(self, path_or_url: str | Request, method: str, headers: Any, body: Any, json: Any) -> Request:
        if isinstance(path_or_url, Request):
            return path_or_url
        url = path_or_url if "://" in path_or_url else BASE_URL + ("" if path_or_url.startswith("/") else "/") + path_or_url
        if json is not None:
            body = _json.dumps(json)
            headers = dict(headers or {})
            headers.setdefault("content-type", "application/json")
        # Incoming requests always carry `cf`, as they do under `cfemu dev` and on Cloudflare.
        return Request(url, method=method, headers=headers, body=body, cf=dict(LOCAL_CF))

    async def fetch(self, path_or_url: str | Request = "/", *, method: str = "GET", headers: Any = None,
                    body: Any = None, json: Any = None) -> Response:
        """Dispatch a fetch event in-process (no socket) and return the worker's Response."""
        response = await self._core.fetch(self._request(path_or_url, method, headers, body, json))
        await asyncio.sleep(0)
        return response

    async def websocket(self, path: str = "/", *, headers: Any = None, protocols: list[str] | None = None) -> TestWebSocket:
        """Open a WebSocket to the worker; raises `AssertionError` if it does not answer 101."""
        h = dict(headers or {})
        h.setdefault("upgrade", "websocket")
        h.setdefault("connection", "Upgrade")
        if protocols:
            h["sec-websocket-protocol"] = ", ".join(protocols)
        response = await self.fetch(path, headers=h)
        if response.status != 101 or response.webSocket is None:
            text = await response.text() if response.body is not None else ""
            raise AssertionError(f"expected a WebSocket upgrade (101), got {response.status}: {text[:200]}")
        socket = TestWebSocket(response.webSocket, response)
        self._sockets.append(socket)
        await asyncio.sleep(0)
        return socket

    async def scheduled(self, cron: str | None = None) -> bool:
        """Fire a scheduled event now (as `/cdn-cgi/handler/scheduled` does); True if it succeeded."""
        cron = cron if cron is not None else (self.config.crons[0] if self.config.crons else "* * * * *")
        ok = await self._core.dispatch_scheduled(cron)
        await self._core.settle()
        return ok

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock forward and run everything that comes due, in time order."""
        await self._core.advance(seconds)

    async def settle(self) -> None:
        """Let background work (waitUntil, deliveries) finish without moving the clock."""
        await self._core.settle()

    # -- infrastructure controls -------------------------------------------------------------

    async def crash(self) -> None:
        """Kill the runtime as `kill -9` would: what was not durable is lost; sockets drop (1006)."""
        core = self._core
        self.core = None
        core.abandon()
        for socket in self._sockets:
            socket._drop()
        self._sockets.clear()
        await asyncio.sleep(0)

    async def restart(self) -> None:
        """Start again on the same state directory and clock (after `crash()` or on a running runtime)."""
        if self.core is not None:
            await self.core.close()
        await self.start()

    async def redeploy(self, config_path: str | Path | None = None) -> None:
        """Deploy new code/config: every live object resets, new migrations apply, state stays."""
        if config_path is not None:
            self.config = load_config(config_path, self.config.env_name)
        if self.core is not None:
            durable = self.core.service("durable_objects")
            if durable is not None:
                await durable.reload()  # calls in flight fail: "...reset because its code was updated."
            await self.core.close()
        self.core = _CoreRuntime(self.config, state_dir=self.state_dir, clock=self.clock, fresh_code=True)
        await self.core.start()

    def _durable(self) -> Any:
        service = self.service("durable_objects")
        if service is None:
            raise RuntimeError("this worker has no Durable Object bindings")
        return service

    async def evict(self, binding: str, name_or_id: Any, *, websockets: str = "hibernate") -> None:
        """Drop the object's in-memory state; hibernated sockets stay open unless websockets="close"."""
        await self._durable().evict(binding, name_or_id, websockets=websockets)

    async def reroute(self, binding: str, name_or_id: Any) -> None:
        """Move the object as Cloudflare might: memory lost, calls in flight fail with a retryable error."""
        await self._durable().reroute(binding, name_or_id)

    async def run_alarm(self, binding: str, name_or_id: Any) -> None:
        """Run the object's pending alarm now, whatever its scheduled time."""
        await self._durable().run_alarm(binding, name_or_id)
        await self._core.settle()

    def list_ids(self, binding: str) -> list[str]:
        return self._durable().list_ids(binding)

    def storage(self, binding: str, name_or_id: Any) -> Any:
        """Read access to an object's stored data (`.get(key)`, `.list()`, `.sql(query)`), live or not."""
        return self._durable().inspect_storage(binding, name_or_id)

    def fail_next_storage_write(self, binding: str, name_or_id: Any) -> None:
        """The object's next storage commit fails: it is reset and the output it held back is discarded."""
        self._durable().fail_next_storage_write(binding, name_or_id)


class SyncRuntime:
    """`Runtime` for synchronous code: its event loop runs on a helper thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cfemu-sync-runtime", daemon=True)
        self._thread.start()
        self.run(runtime.start())

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> SyncRuntime:
        return cls(Runtime.from_config(path, **kwargs))

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def fetch(self, path_or_url: str = "/", **kwargs: Any) -> Response:
        return self.run(self.runtime.fetch(path_or_url, **kwargs))

    def text(self, response: Response) -> str:
        return self.run(response.text())

    def json(self, response: Response) -> Any:
        return self.run(response.json())

    def advance(self, seconds: float) -> None:
        self.run(self.runtime.advance(seconds))

    def websocket(self, path: str = "/", **kwargs: Any) -> _SyncWebSocket:
        """`Runtime.websocket` whose send/receive/close are plain calls."""
        return _SyncWebSocket(self.run(self.runtime.websocket(path, **kwargs)), self.run)

    def now(self) -> float:
        return self.runtime.now()

    @property
    def env(self) -> Any:
        return self.runtime.env

    def call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a binding method (sync or async) on the runtime's loop, e.g. `call(rt.env.KV.get, "k")`."""

        async def invoke() -> Any:
            result = func(*args, **kwargs)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            return result

        return self.run(invoke())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.runtime, name)
        if asyncio.iscoroutinefunction(attr):
            return lambda *a, **k: self.run(attr(*a, **k))
        return attr

    def close(self) -> None:
        try:
            self.run(self.runtime.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> SyncRuntime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _SyncWebSocket:
    """A `TestWebSocket` for synchronous code: its coroutine methods run on the SyncRuntime's loop."""

    def __init__(self, socket: TestWebSocket, run: Any) -> None:
        self._socket = socket
        self._run = run

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._socket, name)
        if asyncio.iscoroutinefunction(attr):
            return lambda *a, **k: self._run(attr(*a, **k))
        return attr
