"""`js`: the JavaScript globals Python Workers code reaches for, driven by the runtime's clock."""

from __future__ import annotations

import inspect
import itertools
import json as _json
import logging
import uuid
from typing import Any

from .. import context
from ..clock import Clock, RealClock
from ..http import Headers, Request, Response, fetch
from ..objects import JsObject, to_js_object
from ..websocket import WebSocketPair, WebSocketRequestResponsePair
from .forms import Blob, File, FormData

__cfemu__ = True
__all__ = [
    "Date", "console", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "Object", "JSON",
    "WebSocketPair", "WebSocketRequestResponsePair", "Response", "Request", "Headers", "fetch", "crypto",
    "Array", "undefined", "URL", "URLSearchParams", "FormData", "Blob", "File",
]

log = logging.getLogger("cfemu.console")
undefined = None


_REAL_CLOCK = RealClock()  # for code that runs outside any runtime (a plain script importing js)


def _clock() -> Clock:
    runtime = context.current_runtime()
    return _REAL_CLOCK if runtime is None else runtime.clock


class Date:
    """`Date.now()` reads the runtime's clock (virtual in tests)."""

    @staticmethod
    def now() -> int:
        return _clock().now_ms()

    @staticmethod
    def new(value: Any = None) -> Any:
        from datetime import datetime, timezone

        ms = Date.now() if value is None else value
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _format(args: tuple) -> str:
    return " ".join(a if isinstance(a, str) else _json.dumps(a, default=str) if isinstance(a, (dict, list)) else str(a) for a in args)


class console:  # noqa: N801 - the JS global's name
    """The JS `console`: log/info/debug/warn/error go to the `cfemu.console` logger."""

    @staticmethod
    def log(*args: Any) -> None:
        log.info("%s", _format(args))

    info = log
    debug = log

    @staticmethod
    def warn(*args: Any) -> None:
        log.warning("%s", _format(args))

    @staticmethod
    def error(*args: Any) -> None:
        log.error("%s", _format(args))


_timer_ids = itertools.count(1)
_timers: dict[int, Any] = {}


def _call(fn: Any, args: tuple) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        return result
    return None


def setTimeout(fn: Any, delay: float = 0, *args: Any) -> int:
    """Run `fn` after `delay` ms on the runtime's clock.

    Set inside a Durable Object, the timer keeps the object from hibernating and its callback runs
    as an event of that object (through its input gate).
    """
    return _start_timer(fn, max(0, delay or 0), args, repeat=False)


def setInterval(fn: Any, delay: float = 0, *args: Any) -> int:
    """JS `setInterval`: run `fn` every `delay` ms (at least 1) until cleared, like `setTimeout` repeated."""
    return _start_timer(fn, max(1, delay or 0), args, repeat=True)


def _start_timer(fn: Any, delay_ms: float, args: tuple, *, repeat: bool) -> int:
    from ..websocket import current_object

    timer_id = next(_timer_ids)
    clock = _clock()
    owner = current_object.get()  # the Durable Object whose code set the timer, if any

    def arm() -> None:
        _timers[timer_id] = clock.call_later(delay_ms / 1000, fire)
        if owner is not None:
            owner.timer_started(timer_id)

    def fire() -> Any:
        if timer_id not in _timers:
            return None  # cleared
        if owner is None:
            if repeat:
                arm()
            else:
                del _timers[timer_id]
            return _call(fn, args)
        result = owner.timer_fired(timer_id, fn, args)
        if repeat and not owner.closed and owner.broken is None:
            arm()  # an object's timers die with the instance that set them
        else:
            _timers.pop(timer_id, None)
        return result

    arm()
    return timer_id


def clearTimeout(timer_id: int | None) -> None:
    """JS `clearTimeout` (also `clearInterval`): cancel a timer; an unknown id is ignored, as in JS."""
    handle = _timers.pop(timer_id, None) if timer_id is not None else None
    if handle is not None:
        handle.cancel()
        from ..websocket import current_object

        owner = current_object.get()
        if owner is not None:
            owner.timer_cleared(timer_id)


clearInterval = clearTimeout


class Object:
    """The JS `Object` global: `fromEntries` (a dict with attribute access), `keys`, `values`, `entries`, `new`."""

    @staticmethod
    def fromEntries(entries: Any) -> JsObject:
        if isinstance(entries, dict):
            entries = entries.items()
        return JsObject((k, v) for k, v in entries)

    @staticmethod
    def keys(obj: dict) -> list:
        return list(obj.keys())

    @staticmethod
    def values(obj: Any) -> list:
        if hasattr(obj, "object_values"):
            return list(obj.object_values())
        return list(obj.values())

    @staticmethod
    def entries(obj: dict) -> list:
        return [list(kv) for kv in obj.items()]

    @staticmethod
    def new() -> JsObject:
        return JsObject()


class URL:
    """`js.URL.new(url, base=None)`: the WHATWG URL parts worker code reads (href, pathname, search...)."""

    def __init__(self, url: str, base: str | None = None) -> None:
        from urllib.parse import urljoin, urlsplit

        from ..errors import JsTypeError

        text = urljoin(str(base), str(url)) if base is not None else str(url)
        parts = urlsplit(text)
        if not parts.scheme or (parts.scheme in ("http", "https", "ws", "wss") and not parts.netloc):
            raise JsTypeError("Invalid URL string.")
        self.protocol = parts.scheme.lower() + ":"
        self.username = parts.username or ""
        self.password = parts.password or ""
        self.hostname = (parts.hostname or "").lower()
        default_port = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme.lower())
        self.port = "" if parts.port in (None, default_port) else str(parts.port)
        self.host = self.hostname + (f":{self.port}" if self.port else "")
        self.pathname = parts.path or "/"
        self.search = f"?{parts.query}" if parts.query else ""
        self.hash = f"#{parts.fragment}" if parts.fragment else ""
        self.origin = f"{self.protocol}//{self.host}"

    new = classmethod(lambda cls, url, base=None: cls(url, base))

    @property
    def href(self) -> str:
        auth = f"{self.username}:{self.password}@" if self.password else (f"{self.username}@" if self.username else "")
        return f"{self.protocol}//{auth}{self.host}{self.pathname}{self.search}{self.hash}"

    @property
    def searchParams(self) -> URLSearchParams:
        return URLSearchParams(self.search)

    def toString(self) -> str:
        return self.href

    __str__ = toString


class URLSearchParams:
    """`js.URLSearchParams`: get/getAll/has over a query string."""

    def __init__(self, query: str = "") -> None:
        from urllib.parse import parse_qsl

        self._pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)

    new = classmethod(lambda cls, query="": cls(query))

    def get(self, name: str) -> str | None:
        return next((v for k, v in self._pairs if k == name), None)

    def getAll(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self._pairs)

    def toString(self) -> str:
        from urllib.parse import urlencode

        return urlencode(self._pairs)


class Array:
    """The JS `Array` global: `Array.new(...)` and `Array.isArray`, over Python lists."""

    @staticmethod
    def new(*items: Any) -> list:
        return list(items)

    @staticmethod
    def isArray(value: Any) -> bool:
        return isinstance(value, list)


class JSON:
    """The JS `JSON` global: `stringify` (compact unless `space`) and `parse` (SyntaxError on bad input)."""

    @staticmethod
    def stringify(value: Any, replacer: Any = None, space: Any = None) -> str:
        if space:
            return _json.dumps(value, indent=space, ensure_ascii=False, default=str)
        return _json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)

    @staticmethod
    def parse(text: str) -> Any:
        from ..errors import JsException

        try:
            return to_js_object(_json.loads(text))
        except ValueError as e:
            raise JsException(f"Unexpected token in JSON: {e}", name="SyntaxError") from None


class crypto:  # noqa: N801
    """The JS `crypto` global: `randomUUID` and `getRandomValues` (no `subtle`)."""

    @staticmethod
    def randomUUID() -> str:
        return str(uuid.uuid4())

    @staticmethod
    def getRandomValues(buf: bytearray) -> bytearray:
        import os

        buf[:] = os.urandom(len(buf))
        return buf
