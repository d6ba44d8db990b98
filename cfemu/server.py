"""`cfemu dev`: serve a worker over HTTP and WebSockets with aiohttp.

Only this module knows how requests arrive over the network: it turns aiohttp requests into
`cfemu.http.Request`s for the runtime, bridges WebSocket upgrades to the worker's `WebSocketPair`,
logs each request like wrangler does, reloads the worker when its files change (state stays), and
keeps serving a clear error while the worker does not import.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from .config import WorkerConfig, find_config, load_config
from .devinfo import INTERNAL_PREFIX, NOT_SERVED, remove_dev_info, write_dev_info
from .errors import ConfigError, JsException, WorkerLoadError
from .http import Headers, Request, Response
from .objects import JsObject
from .runtime import Runtime
from .websocket import MAX_MESSAGE_BYTES, WebSocket

__all__ = ["DevServer", "run_dev"]

log = logging.getLogger("cfemu.dev")

MAX_REQUEST_BYTES = 100 * 1024 * 1024
# `/cdn-cgi/cfemu/<kind>/...`: the module whose `handle(request, runtime, segments)` answers it.
_ADMIN_ENDPOINTS = {"kv": "cfemu.kv.admin", "d1": "cfemu.d1.admin", "r2": "cfemu.r2.admin",
                    "queues": "cfemu.queues.admin"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length", "te", "trailer",
               "proxy-connection"}



def _secrets_file(path: str) -> bool:
    """.dev.vars(.<env>) or, as Wrangler 4 reads them when there is no .dev.vars, .env(.<env>)(.local)."""
    name = Path(path).name
    return name.startswith(".dev.vars") or name == ".env" or name.startswith(".env.")

class DevServer:
    """The worker behind an aiohttp application; `runtime` is swapped on reload."""

    def __init__(self, config_path: Path, *, env: str | None = None, state_dir: Path,
                 extra_vars: dict[str, str] | None = None, live_reload: bool = True) -> None:
        self.config_path = config_path
        self.env = env
        self.state_dir = state_dir
        self.extra_vars = extra_vars or {}
        self.live_reload = live_reload
        self.runtime: Runtime | None = None
        self.load_error: str | None = None
        self.url = ""
        self._watcher: asyncio.Task | None = None
        self._stop_watch = asyncio.Event()
        self._sockets: set[web.WebSocketResponse] = set()
        self._reload_lock = asyncio.Lock()

    # -- worker lifecycle ---------------------------------------------------------------------

    def _load_config(self) -> WorkerConfig:
        return load_config(self.config_path, self.env, extra_vars=self.extra_vars)

    async def start_worker(self) -> None:
        try:
            config = self._load_config()
            runtime = Runtime(config, state_dir=self.state_dir)
            await runtime.start()
        except (ConfigError, WorkerLoadError) as e:
            self.load_error = str(e)
            log.error("%s", e)
            return
        except Exception as e:  # noqa: BLE001 - a broken binding must not kill the server
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("the worker failed to start")
            return
        self.runtime, self.load_error = runtime, None

    async def reload(self, changed: set[str]) -> None:
        """Config changed: restart the runtime (new bindings, migrations). Code changed: fresh modules."""
        async with self._reload_lock:
            config_changed = any(Path(p).name in ("wrangler.toml", "wrangler.json", "wrangler.jsonc")
                                 or _secrets_file(p) for p in changed)
            if self.runtime is not None and not config_changed:
                try:
                    await self.runtime.reload()
                    self.load_error = None
                    log.info("Reloaded worker code")
                    return
                except WorkerLoadError as e:
                    self.load_error = str(e)
                    log.error("%s", e)
                    return
            old, self.runtime = self.runtime, None
            if old is not None:
                await old.close()
            await self.start_worker()
            if self.runtime is not None:
                log.info("Reloaded worker (configuration changed)")

    async def _watch(self) -> None:
        from watchfiles import awatch

        roots = {str(self.config_path.parent)}
        try:
            config = self._load_config()
            roots.add(str(config.main.parent))
        except ConfigError:
            pass
        state = str(self.state_dir)

        def relevant(change: Any, path: str) -> bool:
            return not path.startswith(state) and "__pycache__" not in path and (
                path.endswith((".py", ".toml", ".json", ".jsonc")) or _secrets_file(path))

        async for changes in awatch(*roots, watch_filter=relevant, stop_event=self._stop_watch, debounce=200, step=50):
            await self.reload({path for _, path in changes})

    # -- HTTP -----------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await self._dispatch(request)
            status = response.status
            return response
        except web.HTTPException as e:  # 413 from a too-large body: aiohttp answers it; log its status
            status = e.status
            raise
        finally:
            if request.path != "/cdn-cgi/cfemu/ping" and log.isEnabledFor(logging.INFO):
                elapsed = (time.perf_counter() - started) * 1000
                _access_log.write(f"[cfemu] {request.method} {request.path_qs} {status} {_reason(status)} "
                                  f"({round(elapsed)}ms)\n")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(INTERNAL_PREFIX):
            # Before the load check: the CLI still reaches the bindings while the worker code is broken.
            internal = await self._internal(request, self.runtime)
            if internal is not None:
                return internal
        # A broken edit answers with its error (not the stale code) until the fix is saved.
        if self.runtime is None or self.load_error is not None:
            message = self.load_error or "the worker is not loaded"
            return web.Response(status=500, text=f"cfemu: the worker failed to load:\n{message}\n"
                                                 "Fix the file and save: cfemu reloads it.\n")
        runtime = self.runtime
        if request.path == "/cdn-cgi/handler/scheduled":
            cron = request.query.get("cron", runtime.config.crons[0] if runtime.config.crons else "* * * * *")
            ok = await runtime.dispatch_scheduled(cron)
            return web.Response(status=200 if ok else 500, text="Ran scheduled event" if ok else "Scheduled event failed")
        if request.path.startswith("/client/v4/accounts/") and request.path.endswith("/analytics_engine/sql"):
            service = runtime.service("analytics")
            if service is not None and request.method == "POST":
                from .analytics.http import handle_sql

                return await handle_sql(service, request)
        worker_request = await _to_worker_request(request)
        response = await runtime.fetch(worker_request)
        if response.status == 101 and response.webSocket is not None:
            if request.headers.get("upgrade", "").lower() != "websocket":
                return web.Response(status=500, text="The worker returned a WebSocket for a request that was not an upgrade.")
            return await self._bridge_websocket(request, response)
        return await _to_aiohttp_response(request, response)

    async def _internal(self, request: web.Request, runtime: Runtime | None) -> web.Response | None:
        """Endpoints the CLI uses to act through the running server (only on loopback)."""
        peer = request.transport.get_extra_info("peername") if request.transport else None
        local = request.transport.get_extra_info("sockname") if request.transport else None
        # A client on this machine that dialled the address `--host` named (not 127.0.0.1) arrives
        # from that same address: a remote peer cannot complete a TCP handshake with it.
        if peer and not (_loopback(peer[0]) or (local and peer[0] == local[0])):
            return web.json_response({"error": "internal endpoints answer loopback clients only"}, status=403)
        path = request.raw_path.partition("?")[0][len(INTERNAL_PREFIX):]
        if path == "ping":
            return web.json_response({"ok": True, "url": self.url})
        # Each binding answers its own endpoints, on the service objects the worker uses.
        kind, *segments = [unquote(s) for s in path.split("/")]
        module = _ADMIN_ENDPOINTS.get(kind)
        if module is None:
            return None
        if runtime is None:  # no runtime holds the files (the config failed to load): the CLI opens them
            return web.json_response({"error": "no runtime is running", NOT_SERVED: True}, status=503)
        try:
            return await importlib.import_module(module).handle(request, runtime, segments)
        except JsException as e:  # the binding's own message, as the CLI's direct path shows it
            return web.json_response({"error": str(e)}, status=400)

    async def _bridge_websocket(self, request: web.Request, response: Response) -> web.WebSocketResponse:
        protocol = response.headers.get("sec-websocket-protocol")
        ws = web.WebSocketResponse(protocols=[protocol] if protocol else (), max_msg_size=MAX_MESSAGE_BYTES,
                                   autoping=True, heartbeat=None)
        await ws.prepare(request)
        self._sockets.add(ws)
        end: WebSocket = response.webSocket
        outgoing: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        end.addEventListener("message", lambda ev: outgoing.put_nowait(("message", ev.data)))
        end.addEventListener("close", lambda ev: outgoing.put_nowait(("close", (ev.code, ev.reason))))
        end.accept()

        async def pump_out() -> None:
            while True:
                kind, payload = await outgoing.get()
                if ws.closed:
                    return
                if kind == "message":
                    if isinstance(payload, str):
                        await ws.send_str(payload)
                    else:
                        await ws.send_bytes(payload)
                else:
                    code, reason = payload
                    await ws.close(code=code if code not in (1005, 1006) else 1000, message=reason.encode())
                    return

        writer = asyncio.ensure_future(pump_out())
        close_frame: tuple[int, str] | None = None
        try:
            while True:
                # receive() rather than `async for`, which swallows the close frame and its reason
                msg = await ws.receive()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    end.send(msg.data)
                elif msg.type == WSMsgType.CLOSE:
                    close_frame = (msg.data or 1005, msg.extra or "")  # an empty close frame is 1005
                    break
                else:  # CLOSING, CLOSED, ERROR
                    break
        finally:
            self._sockets.discard(ws)
            if end.readyState < WebSocket.CLOSING:
                if close_frame is not None:
                    end._disconnect(*close_frame)  # the client's close, code and reason as sent
                else:
                    end._disconnect(1009 if ws.close_code == 1009 else 1006, "")
            await asyncio.sleep(0)
            if not writer.done():
                writer.cancel()
        return ws

    # -- serving --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The worker as an aiohttp application (for embedding; `serve` uses the low-level server)."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def serve(self, host: str, port: int, *, ready: asyncio.Event | None = None,
                    stop: asyncio.Event | None = None) -> None:
        await self.start_worker()
        # Everything loaded so far lives as long as the server: keep it out of the collector's scans.
        gc.collect()
        gc.freeze()
        # aiohttp's low-level server: every request goes to the worker, so routing and middleware
        # machinery would only cost time.
        loop = asyncio.get_running_loop()

        def make_request(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_REQUEST_BYTES)

        server = web.Server(self.handle, request_factory=make_request, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        actual = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port  # type: ignore[union-attr]
        display = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0", "") else host
        self.url = f"http://{display}:{actual}"
        write_dev_info(self.state_dir, self.url)
        print(f"Ready on {self.url}", flush=True)
        if ready is not None:
            ready.set()
        if self.live_reload:
            self._watcher = asyncio.ensure_future(self._watch())
        stop = stop or asyncio.Event()
        try:
            await stop.wait()
        finally:
            log.info("Shutting down")
            self._stop_watch.set()
            if self._watcher is not None:
                self._watcher.cancel()
            for ws in list(self._sockets):
                await ws.close(code=1001, message=b"server shutting down")
            await runner.cleanup()
            if self.runtime is not None:
                await self.runtime.close()
            from .context import close_client_session

            await close_client_session()
            remove_dev_info(self.state_dir)


@functools.lru_cache(maxsize=None)
class _AccessLog:
    """Request log lines, written straight to stderr once per event-loop turn.

    Going through `logging` for every request cost about a third of a hello-world request's time;
    the lines keep the `[cfemu] ...` format of the other log records and obey the log level.
    """

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._scheduled = False

    def write(self, line: str) -> None:
        self._lines.append(line)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        data, self._lines = "".join(self._lines), []
        try:
            sys.stderr.write(data)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


_access_log = _AccessLog()


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, or 127.x seen through an IPv4-mapped IPv6 socket."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _reason(status: int) -> str:
    return _PHRASES.get(status, "")


_PHRASES = {status.value: status.phrase for status in __import__("http").HTTPStatus}


async def _to_worker_request(request: web.Request) -> Request:
    host = request.headers.get("host") or f"{request.url.host}:{request.url.port}"
    url = f"{request.scheme}://{host}{request.raw_path}"  # as sent: Cloudflare keeps the percent-encoding
    headers = Headers._trusted(request.headers)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer:  # Cloudflare sets it from the connection, replacing whatever the client sent
        headers._h["cf-connecting-ip"] = peer[0]  # a socket address: nothing to validate
    method = request.method
    body = (await request.read() or None) if request.can_read_body and method not in ("GET", "HEAD") else None
    cf = JsObject(colo="LOCAL", country="XX", httpProtocol=f"HTTP/{request.version.major}.{request.version.minor}",
                  clientTcpRtt=0, asn=0)
    return Request._incoming(url, method, headers, body, cf)


async def _to_aiohttp_response(request: web.Request, response: Response) -> web.StreamResponse:
    raw = response.headers._h
    if any(name in raw for name in _HOP_BY_HOP):  # case-insensitive lookups, cheaper than lowering every key
        headers = CIMultiDict((k, v) for k, v in raw.items() if k.lower() not in _HOP_BY_HOP)
    else:
        headers = raw  # aiohttp copies it
    body = response.body
    if body is None or isinstance(body, bytes):
        return web.Response(status=response.status, reason=response.statusText or None, body=body, headers=headers)
    if request.method == "HEAD":  # headers only; the worker's stream is never read
        _close_stream(body)
        return web.Response(status=response.status, reason=response.statusText or None, headers=headers)
    stream = web.StreamResponse(status=response.status, reason=response.statusText or None)
    stream.headers.extend(headers)
    await stream.prepare(request)
    try:
        async for chunk in body:
            await stream.write(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
        await stream.write_eof()
    except (ConnectionError, aiohttp.ClientConnectionResetError):
        # The client went away mid-stream: stop producing; nothing to report to anyone.
        _close_stream(body)
    return stream


def _close_stream(body: Any) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        asyncio.ensure_future(aclose())


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="[cfemu] %(message)s", stream=sys.stderr)
    # One log line per request: skip the record fields the format never shows.
    # (the logging HOWTO's "Optimization" settings; `_srcfile = None` skips the caller lookup)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def run_dev(*, config_path: str, env: str | None, persist_to: str | None, port: int, host: str,
            extra_vars: dict[str, str], live_reload: bool, log_level: str = "info") -> int:
    """Run `cfemu dev` until Ctrl-C; returns the exit code."""
    _setup_logging(log_level)
    try:
        path = find_config(Path(config_path)).resolve()
    except ConfigError as e:
        print(f"cfemu: {e}", file=sys.stderr)
        return 2
    from .cli import DEFAULT_STATE

    state = Path(persist_to).resolve() if persist_to else path.parent / DEFAULT_STATE
    server = DevServer(path, env=env, state_dir=state, extra_vars=extra_vars, live_reload=live_reload)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():  # a second Ctrl-C: stop waiting for background work, as wrangler does
                print("cfemu: exiting without waiting for background work", file=sys.stderr, flush=True)
                os._exit(130)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
            except (NotImplementedError, RuntimeError):
                pass
        await server.serve(host, port, stop=stop)

    try:
        asyncio.run(main())
    except OSError as e:
        print(f"cfemu: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        return 1
    return 0
