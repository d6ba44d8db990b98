"""`asgi`: the ASGI server the Python Workers runtime gives worker code (`import asgi`).

`await asgi.fetch(app, request, env, ctx)` runs one HTTP request through an ASGI application
(FastAPI, Starlette, a bare coroutine) and returns a `Response`. As in the SDK, each call runs the
app's lifespan startup first and its shutdown after; `scope["env"]` is the worker's env; a
`text/event-stream` response streams, its producer kept alive through `ctx.waitUntil`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from ..clock import real_wait_for
from ..http import Request, Response

__cfemu__ = True
__all__ = ["fetch", "websocket", "request_to_scope", "ASGI"]

ASGI = {"spec_version": "2.0", "version": "3.0"}
NO_RESPONSE = "The application did not generate a response"
SSE_NEEDS_CTX = "Server-Side-Events require ctx to be passed to asgi.fetch"


def request_to_scope(req: Request, env: Any, ws: bool = False) -> dict[str, Any]:
    """The ASGI scope the SDK builds: path as the URL's (still percent-encoded) pathname, env included."""
    parts = urlsplit(req.url)
    return {
        "asgi": ASGI,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in req.headers.raw_items()],
        "http_version": "1.1",
        "method": str(req.method),
        "scheme": parts.scheme,
        "path": parts.path or "/",
        "raw_path": (parts.path or "/").encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "type": "websocket" if ws else "http",
        "env": env,
    }


async def _lifespan(app: Any) -> Any:
    """Run lifespan startup; returns a coroutine function that shuts down. Apps without lifespan are fine."""
    inbox: asyncio.Queue = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()
    inbox.put_nowait({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete" and not started.done():
            started.set_result(None)
        elif kind == "lifespan.startup.failed" and not started.done():
            started.set_exception(RuntimeError(message.get("message") or "lifespan startup failed"))

    async def run() -> None:
        try:
            await app({"type": "lifespan", "asgi": ASGI, "state": {}}, receive, send)
        except BaseException:  # noqa: BLE001 - an app that does not speak lifespan may raise; the spec allows it
            pass
        finally:
            if not started.done():
                started.set_result(None)

    task = asyncio.ensure_future(run())
    await started

    async def shutdown() -> None:
        if not task.done():
            inbox.put_nowait({"type": "lifespan.shutdown"})
            try:
                await real_wait_for(asyncio.shield(task), timeout=1)  # real time, even under a virtual clock
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                task.cancel()

    return shutdown


async def fetch(app: Any, req: Request, env: Any, ctx: Any = None) -> Response:
    """Serve `req` with the ASGI `app`; the SDK's `asgi.fetch`."""
    if not isinstance(req, Request):
        req = getattr(req, "js_object", req)
    shutdown = await _lifespan(app)
    try:
        return await _process(app, req, env, ctx)
    finally:
        await shutdown()


async def _process(app: Any, req: Request, env: Any, ctx: Any) -> Response:
    loop = asyncio.get_running_loop()
    body = await req.bytes() if req.body is not None else b""
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    finished = asyncio.Event()
    result: asyncio.Future = loop.create_future()
    start: dict[str, Any] = {}
    chunks: list[bytes] = []
    stream: asyncio.Queue | None = None

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await finished.wait()
        return {"type": "http.disconnect"}

    def headers_of(message: dict[str, Any]) -> list[tuple[str, str]]:
        return [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in message.get("headers", [])]

    async def streamed() -> AsyncIterator[bytes]:
        while True:
            chunk = await stream.get()
            if chunk is None:
                return
            yield chunk

    async def send(message: dict[str, Any]) -> None:
        nonlocal stream
        kind = message.get("type")
        if kind == "http.response.start":
            start["status"] = int(message.get("status", 200))
            start["headers"] = headers_of(message)
            content_type = next((v for k, v in start["headers"] if k.lower() == "content-type"), "")
            if content_type.lower().startswith("text/event-stream"):
                stream = asyncio.Queue()
                result.set_result(Response(streamed(), status=start["status"], headers=start["headers"]))
        elif kind == "http.response.body":
            if "status" not in start:
                raise RuntimeError("ASGI: http.response.body sent before http.response.start")
            data = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if stream is not None:
                if data:
                    stream.put_nowait(data)
                if not more:
                    stream.put_nowait(None)
                    finished.set()
                return
            chunks.append(data)
            if not more and not result.done():
                status = start["status"]
                content = b"".join(chunks)
                null_body = status in (101, 204, 205, 304) or req.method == "HEAD"
                result.set_result(Response(None if null_body or not content else content, status=status,
                                           headers=start["headers"]))
                finished.set()

    async def run() -> None:
        try:
            await app(request_to_scope(req, env), receive, send)
            if not result.done():
                raise RuntimeError(NO_RESPONSE)
        except BaseException as e:
            if not result.done():
                result.set_exception(e)
            elif stream is not None:
                stream.put_nowait(None)
            finished.set()
            if not isinstance(e, Exception):
                raise
        finally:
            if stream is not None:
                stream.put_nowait(None)

    task = asyncio.ensure_future(run())
    response = await result
    if stream is None:
        await task
    elif ctx is not None:
        ctx.waitUntil(task)
    else:
        task.cancel()
        raise RuntimeError(SSE_NEEDS_CTX)
    return response


async def websocket(app: Any, req: Request) -> Response:
    """The SDK's `asgi.websocket`: accept the upgrade and run the app's WebSocket conversation."""
    from ..websocket import WebSocketPair

    client, server = WebSocketPair.new().object_values()
    server.accept()
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})

    def on_message(event: Any) -> None:
        data = event.data
        inbox.put_nowait({"type": "websocket.receive", **({"text": data} if isinstance(data, str) else {"bytes": data})})

    server.addEventListener("message", on_message)
    server.addEventListener("close", lambda event: inbox.put_nowait(
        {"type": "websocket.disconnect", "code": event.code, "reason": event.reason}))

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "websocket.send":
            if message.get("bytes") is not None:
                server.send(bytes(message["bytes"]))
            elif message.get("text") is not None:
                server.send(message["text"])
        elif kind == "websocket.close":
            server.close(int(message.get("code", 1000)), message.get("reason") or "")

    scope = request_to_scope(req, {}, ws=True)
    scope["scheme"] = {"http": "ws", "https": "wss"}.get(scope["scheme"], scope["scheme"])
    from .. import context

    runtime = context.current_runtime()
    run = app(scope, receive, send)
    if runtime is not None:
        runtime.spawn(run, name="asgi-websocket")
    else:
        asyncio.ensure_future(run)
    return Response(None, status=101, web_socket=client)
