"""In-process WebSockets: `WebSocketPair` and its two ends, as workerd gives them to a worker.

What one end sends arrives at the other end's listeners (or its owner, for the hibernation API)
on a later turn of the event loop, in order.  The dev server and the test client hold the client
end and bridge it to a real socket or a queue.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable
from typing import Any, Protocol

from .errors import JsTypeError
from .objects import JsObject

__all__ = ["WebSocket", "WebSocketPair", "WebSocketRequestResponsePair", "validate_close"]

log = logging.getLogger("cfemu.websocket")

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_REASON_BYTES = 123
_RESERVED_CODES = {1004, 1005, 1006, 1015}
ACCEPT_FIRST = "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages."
CLOSED_SEND = "Can't call WebSocket send() after close()."


# The Durable Object whose event is running: a socket it accepts sends behind its output gate.
current_object: contextvars.ContextVar[Any] = contextvars.ContextVar("cfemu_current_object", default=None)


class WebSocketOwner(Protocol):
    """Receives events for a socket accepted through the hibernation API (a Durable Object)."""

    def ws_message(self, ws: WebSocket, data: str | bytes) -> None: ...
    def ws_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None: ...


def validate_close(code: int | None, reason: str | None) -> None:
    """Cloudflare's rules for `close(code, reason)`."""
    if code is not None:
        if not isinstance(code, int) or isinstance(code, bool) or not 1000 <= code <= 4999 or code in _RESERVED_CODES:
            raise JsTypeError(f"Invalid WebSocket close code: {code}.")
    if reason:
        if code is None:
            raise JsTypeError("If you specify a WebSocket close reason, you must also specify a code.")
        if len(reason.encode()) > MAX_REASON_BYTES:
            raise JsTypeError("Reason too long.")


class WebSocket:
    """One end of a `WebSocketPair`: `accept()`, `send()`, `close()`, `addEventListener()`."""

    CONNECTING, OPEN, CLOSING, CLOSED = CONNECTING, OPEN, CLOSING, CLOSED

    def __init__(self) -> None:
        self._peer: WebSocket | None = None
        self._accepted = False
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self._buffer: list[tuple[str, Any]] = []
        self._owner: WebSocketOwner | None = None
        self._send_gate: Callable[[Callable[[], None]], None] | None = None
        self._dispatch_hook: Callable[[Callable[[Any], Any], Any], None] | None = None
        self.readyState = OPEN
        self.url: str | None = None
        self.protocol = ""
        self.extensions = ""
        self._attachment: bytes | None = None
        self._close_sent = False
        self._close_received = False
        # set by the Durable Object layer: tags, auto-response timestamp, ...
        self._do_meta: dict[str, Any] = {}

    # -- the worker-facing API ---------------------------------------------------------------

    def accept(self) -> None:
        if self._owner is not None:
            raise JsTypeError("Can't call WebSocket.accept() on a WebSocket that was accepted with acceptWebSocket().")
        if self._accepted:
            return
        self._accepted = True
        owner = current_object.get()
        if owner is not None:
            owner.adopt_socket(self)
        pending, self._buffer = self._buffer, []
        for kind, payload in pending:
            self._dispatch(kind, payload)

    def addEventListener(self, kind: str, listener: Callable[[Any], Any], *_options: Any) -> None:
        self._listeners.setdefault(kind, []).append(listener)

    def removeEventListener(self, kind: str, listener: Callable[[Any], Any], *_options: Any) -> None:
        listeners = self._listeners.get(kind, [])
        if listener in listeners:
            listeners.remove(listener)

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        if not self._accepted and self._owner is None:
            raise JsTypeError(ACCEPT_FIRST)
        if self._close_sent or self.readyState == CLOSED:
            raise JsTypeError(CLOSED_SEND)
        if isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
        if not isinstance(message, (str, bytes)):
            raise JsTypeError(f"WebSocket send() takes str or bytes, not {type(message).__name__}.")
        self._transmit("message", message)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        # workerd ignores a second close() before checking anything, then wants the socket accepted.
        if self._close_sent:
            return
        if not self._accepted and self._owner is None:
            raise JsTypeError(ACCEPT_FIRST)
        validate_close(code, reason)
        self._close_sent = True
        self.readyState = CLOSED if self._close_received else CLOSING
        self._transmit("close", (1005 if code is None else code, reason or ""))

    def _disconnect(self, code: int = 1006, reason: str = "") -> None:
        """The far side went away (a transport closed without a handshake): tell the peer once."""
        if self._close_sent:
            return
        self._close_sent = True
        self.readyState = CLOSED
        self._send_gate = None  # a dropped connection does not wait for (or die with) the output gate
        self._transmit("close", (code, reason))

    def serializeAttachment(self, value: Any) -> None:
        from .values import serialize

        data = serialize(value)
        if len(data) > ATTACHMENT_LIMIT:
            raise JsTypeError(
                f"A WebSocket 'serializeAttachment()' value cannot be larger than {ATTACHMENT_LIMIT} bytes. "
                f"Given: {len(data)} bytes."
            )
        self._attachment = data

    def deserializeAttachment(self) -> Any:
        from .values import deserialize

        return None if self._attachment is None else deserialize(self._attachment)

    # -- plumbing ----------------------------------------------------------------------------

    def _transmit(self, kind: str, payload: Any) -> None:
        peer = self._peer
        if peer is None:
            return
        deliver = lambda: peer._receive(kind, payload)  # noqa: E731
        if self._send_gate is not None:
            # A Durable Object holds sends behind its output gate.
            self._send_gate(deliver)
        else:
            asyncio.get_running_loop().call_soon(deliver)

    def _receive(self, kind: str, payload: Any) -> None:
        if self.readyState == CLOSED and kind != "close":
            return
        if kind == "close":
            if self._close_received:
                return
            self._close_received = True
            code, reason = payload
            if self._close_sent:
                self.readyState = CLOSED
            else:
                # Answer a close with a close, as workerd does under web_socket_auto_reply_to_close.
                self._close_sent = True
                self.readyState = CLOSED
                self._transmit("close", (code, reason))
            payload = (code, reason, code != 1006)
        if self._owner is not None:
            if kind == "message":
                self._owner.ws_message(self, payload)
            else:
                self._owner.ws_close(self, *payload)
            return
        if not self._accepted:
            self._buffer.append((kind, payload))
            return
        self._dispatch(kind, payload)

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "message":
            event = JsObject(type="message", data=payload)
        elif kind == "close":
            code, reason, clean = payload
            event = JsObject(type="close", code=code, reason=reason, wasClean=clean)
        else:
            event = JsObject(type="error", error=payload, message=str(payload))
        hook = self._dispatch_hook
        for listener in list(self._listeners.get(kind, ())):
            if hook is not None:
                hook(listener, event)
                continue
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    _spawn(result)
            except Exception:
                log.exception("WebSocket %s listener raised", kind)

    def _error(self, error: BaseException) -> None:
        """The transport failed: tell the listeners (or owner) and drop the socket."""
        self.readyState = CLOSED
        if self._owner is not None:
            handler = getattr(self._owner, "ws_error", None)
            if handler is not None:
                handler(self, error)
            return
        self._dispatch("error", error)

    def __repr__(self) -> str:
        return f"<WebSocket state={self.readyState}>"


ATTACHMENT_LIMIT = 16384


def _spawn(awaitable: Any) -> None:
    from . import context

    runtime = context.current_runtime()
    if runtime is not None:
        runtime.spawn(awaitable)
    else:
        asyncio.ensure_future(awaitable)


class WebSocketPair:
    """`new WebSocketPair()`: `WebSocketPair.new().object_values()` gives (client, server)."""

    def __init__(self) -> None:
        client, server = WebSocket(), WebSocket()
        client._peer, server._peer = server, client
        self._ends = (client, server)

    @classmethod
    def new(cls) -> WebSocketPair:
        return cls()

    def object_values(self) -> tuple[WebSocket, WebSocket]:
        return self._ends

    def __getitem__(self, index: int) -> WebSocket:
        return self._ends[index]

    def __iter__(self):
        return iter(self._ends)


class WebSocketRequestResponsePair:
    """An auto-response rule for hibernated sockets: a message equal to `request` gets `response`."""

    MAX_LENGTH = 2048

    def __init__(self, request: str, response: str) -> None:
        if not isinstance(request, str) or not isinstance(response, str):
            raise JsTypeError("WebSocketRequestResponsePair takes two strings.")
        # sizes are checked by setWebSocketAutoResponse(), as in workerd
        self.request = request
        self.response = response

    @classmethod
    def new(cls, request: str, response: str) -> WebSocketRequestResponsePair:
        return cls(request, response)
