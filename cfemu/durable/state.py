"""`ctx` of a Durable Object (DurableObjectState): id, storage, concurrency control, WebSockets."""

from __future__ import annotations

import asyncio
import inspect
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import JsException, JsRangeError, JsTypeError
from ..websocket import WebSocket, WebSocketRequestResponsePair
from .instance import current_block

if TYPE_CHECKING:
    from .instance import ObjectInstance

__all__ = ["DurableObjectState"]

MAX_TAGS = 10
MAX_TAG_LENGTH = 256
MAX_SOCKETS = 32768
MAX_EVENT_TIMEOUT_MS = 604_800_000
# workerd's texts (src/workerd/api/actor-state.c++)
TOO_MANY_TAGS = "a Hibernatable WebSocket cannot have more than 10 tags"
TAG_TOO_LONG = '"{tag}" is longer than the max tag length (256 characters).'
TOO_MANY_SOCKETS = "Too many hibernatable WebSockets: the maximum is 32768 per Durable Object."
ALREADY_ACCEPTED = "Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`"
AUTO_RESPONSE_TOO_LARGE = "{what} cannot be larger than 2048 bytes. A {lower} of size {size} was provided."
EVENT_TIMEOUT_TOO_LARGE = "Event timeout should not exceed 604800000 ms."
# cfemu's own text (in JS the argument is coerced to a uint32)
EVENT_TIMEOUT_NOT_A_NUMBER = (
    "setHibernatableWebSocketEventTimeout() takes a number of milliseconds from 0 to 604800000."
)
# workerd src/workerd/api/web-socket.c++, WebSocket::getHibernatableTags()
TAGS_NOT_ACCEPTED = "you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket."
TAGS_NOT_HIBERNATABLE = "only hibernatable websockets can have tags."
# jsg's text when an argument is not a function (nothing runs, nothing is reset)
BLOCK_NOT_A_FUNCTION = (
    "Failed to execute 'blockConcurrencyWhile' on 'DurableObjectState': parameter 1 is not of type "
    "'Function'."
)
# workerd io/io-context.h, IoContext::blockConcurrencyWhile(): the callback races a 30 s limit timer.
BLOCK_TIMEOUT_S = 30.0
BLOCK_TIMED_OUT = (
    "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
    "The call was canceled and the Durable Object was reset."
)


class DurableObjectState:
    """Mirrors DurableObjectState: `id`, `storage`, `blockConcurrencyWhile`, `waitUntil`, `abort`,
    and the WebSocket hibernation API."""

    def __init__(self, instance: ObjectInstance) -> None:
        self._instance = instance
        self.id = instance.handle.id
        self.storage = instance.storage
        self.props = None

    @property
    def _handle(self):
        return self._instance.handle

    def waitUntil(self, awaitable: Any) -> None:
        if inspect.iscoroutine(awaitable):
            # Work the object goes on with after the event: its I/O completions pass the input gate.
            awaitable = _background(self._instance.gated(awaitable, current_block.get()))
        self._handle.service.host.spawn(awaitable, name="waitUntil")

    def blockConcurrencyWhile(self, fn: Any) -> asyncio.Future:
        """Run `fn` with no other event delivered meanwhile; returns an awaitable of its result.

        It starts at once (so a constructor may call it without awaiting); if `fn` raises, the
        object is reset and the error propagates.  If `fn` is still running 30 s later (on the
        runtime clock), it is canceled and the object is reset with production's OVERLOADED error,
        which the caller and every event waiting at the input gate receive.
        """
        if not callable(fn):
            if inspect.iscoroutine(fn):
                fn.close()  # passed self.load() instead of self.load: never awaited, no warning
            raise JsTypeError(BLOCK_NOT_A_FUNCTION)
        instance = self._instance
        block = instance.block()
        timed_out: list[JsException] = []

        def expire() -> None:
            if task.done() or instance.broken is not None:
                return
            error = JsException(BLOCK_TIMED_OUT, overloaded=True)
            timed_out.append(error)
            instance.reset(error)  # fails the waiting events and cancels this block's task

        async def run() -> Any:
            current_block.set(block)  # this task's own context: timers set in fn fire inside the block
            limit = self._handle.service.host.clock.call_later(BLOCK_TIMEOUT_S, expire)
            try:
                result = fn()
                if inspect.isawaitable(result):
                    result = await result
                return result
            except asyncio.CancelledError:
                if timed_out:
                    raise timed_out[0] from None
                instance.reset(instance.broken or JsException("blockConcurrencyWhile() callback was canceled."))
                raise
            except BaseException as error:
                instance.reset(error if isinstance(error, Exception) else JsException(str(error)))
                raise
            finally:
                limit.cancel()
                instance._block_tasks.discard(task)
                # Open the gate one loop turn later, after this task's result has woken the event
                # awaiting it: the block hands the input lock back to its caller first, as in
                # workerd, before any event that queued meanwhile (which could open a new block).
                instance.loop.call_soon(instance.unblock, block)

        task = asyncio.ensure_future(run())
        instance._block_tasks.add(task)
        # A constructor's block is often not awaited: its failure is the reset, not a stray warning.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    def abort(self, reason: str | None = None) -> None:
        """Reset the object: in-memory state is dropped, calls in flight fail with `reason`."""
        error = JsException(reason if reason else "Application called abort() to reset Durable Object.")
        self._instance.reset(error)
        raise error  # nothing after abort() runs (workerd terminates execution)

    # -- hibernation API ------------------------------------------------------------------------

    def acceptWebSocket(self, ws: WebSocket, tags: list[str] | None = None) -> None:
        if not isinstance(ws, WebSocket):
            raise JsTypeError("acceptWebSocket() takes the server end of a WebSocketPair.")
        if ws._accepted or ws._owner is not None:
            raise JsTypeError(ALREADY_ACCEPTED)
        distinct: dict[str, None] = {}
        for tag in tags or []:
            if not isinstance(tag, str):
                raise JsTypeError("WebSocket tags must be strings.")
            # workerd's order: once 10 distinct tags are in, any further tag (even a repeat) is
            # refused; the length limit counts UTF-8 bytes; duplicates count once.
            if len(distinct) >= MAX_TAGS:
                raise JsException(TOO_MANY_TAGS)
            if len(tag.encode("utf-8", "surrogatepass")) > MAX_TAG_LENGTH:
                raise JsException(TAG_TOO_LONG.format(tag=tag))
            distinct.setdefault(tag, None)
        tags = list(distinct)
        handle = self._handle
        if len(handle.sockets) >= MAX_SOCKETS:
            raise JsRangeError(TOO_MANY_SOCKETS)
        ws._do_meta["tags"] = tags
        ws._owner = handle
        ws._send_gate = self._gate_send
        handle.sockets.append(ws)

    def _gate_send(self, deliver: Any) -> None:
        # A hibernated socket outlives instances: a send goes through the gate of the instance whose
        # event is sending (dropped if that instance was reset), else of whichever one is live now.
        from ..websocket import current_object

        sender = current_object.get()
        if sender is not None and sender.handle is self._handle:
            if sender.broken is not None:
                return
            if not sender.closed:
                sender.gate_send(deliver)
                return
        instance = self._handle.instance
        if instance is None or instance.closed:
            asyncio.get_running_loop().call_soon(deliver)
        else:
            instance.gate_send(deliver)

    def getWebSockets(self, tag: str | None = None) -> list[WebSocket]:
        sockets = [ws for ws in self._handle.sockets if ws.readyState != WebSocket.CLOSED]
        if tag is None:
            return sockets
        return [ws for ws in sockets if tag in ws._do_meta.get("tags", ())]

    def getTags(self, ws: WebSocket) -> list[str]:
        if not isinstance(ws, WebSocket):
            raise JsTypeError("getTags() takes a WebSocket.")
        if ws._owner is None:
            # a closed hibernatable socket keeps its tags (webSocketClose may read them)
            raise JsException(TAGS_NOT_HIBERNATABLE if ws._accepted else TAGS_NOT_ACCEPTED)
        return list(ws._do_meta.get("tags", ()))

    def setWebSocketAutoResponse(self, pair: WebSocketRequestResponsePair | None = None) -> None:
        if pair is not None and not isinstance(pair, WebSocketRequestResponsePair):
            raise JsTypeError("setWebSocketAutoResponse() takes a WebSocketRequestResponsePair.")
        if pair is not None:
            for what, text in (("Request", pair.request), ("Response", pair.response)):
                size = len(text.encode())
                if size > WebSocketRequestResponsePair.MAX_LENGTH:
                    raise JsRangeError(AUTO_RESPONSE_TOO_LARGE.format(what=what, lower=what.lower(), size=size))
        self._handle.auto_response = pair

    def getWebSocketAutoResponse(self) -> WebSocketRequestResponsePair | None:
        return self._handle.auto_response

    def getWebSocketAutoResponseTimestamp(self, ws: WebSocket) -> datetime | None:
        at = ws._do_meta.get("auto_response_at")
        return None if at is None else datetime.fromtimestamp(at / 1000, tz=timezone.utc)

    def setHibernatableWebSocketEventTimeout(self, timeout_ms: int | None = None) -> None:
        if timeout_ms is not None:
            if (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float))
                    or not math.isfinite(timeout_ms) or timeout_ms < 0):
                raise JsTypeError(EVENT_TIMEOUT_NOT_A_NUMBER)
            if timeout_ms > MAX_EVENT_TIMEOUT_MS:
                raise JsException(EVENT_TIMEOUT_TOO_LARGE)
            timeout_ms = int(timeout_ms)
        # 0 (or nothing) unsets it: getHibernatableWebSocketEventTimeout() is then null, as in workerd
        self._handle.__dict__["event_timeout_ms"] = timeout_ms or None

    def getHibernatableWebSocketEventTimeout(self) -> int | None:
        return self._handle.__dict__.get("event_timeout_ms")


async def _background(gated: Any) -> Any:
    return await gated
