"""`Headers`, `Request`, `Response` and `fetch`, shaped like the Python Workers SDK's.

Bodies are held as bytes (or an async iterable of bytes for a streamed response) and can be read
once, as in the Fetch API; `clone()` gives a second reader.
"""

from __future__ import annotations

import json as _json
import re
from enum import IntEnum
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from multidict import CIMultiDict

from .errors import JsRangeError, JsTypeError
from .objects import JsObject

__all__ = ["Headers", "Request", "Response", "fetch", "BODY_USED", "BodyUsedError"]

BODY_USED = "Body has already been used. It can only be used once. Use tee() first if you need to read it twice."


class BodyUsedError(JsTypeError, OSError):
    """A body read twice: workerd throws a TypeError; the SDK raises OSError (pyodide's BodyUsedError)."""


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")


class Headers:
    """The Fetch API's `Headers`: case-insensitive, several values per name, iterated in name order."""

    __slots__ = ("_h",)

    def __init__(self, init: Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._h: CIMultiDict[str] = CIMultiDict()
        if init is None:
            return
        if isinstance(init, Headers):
            self._h = init._h.copy()
            return
        items = init.items() if isinstance(init, Mapping) else init
        for item in items:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise JsTypeError("Incorrect number of elements in header pair (expected 2).") from None
            self.append(name, value)

    @staticmethod
    def _check(name: str, value: Any = "") -> tuple[str, str]:
        name = str(name)
        if not _TOKEN.match(name):
            raise JsTypeError(f"Invalid header name '{name}'.")
        value = str(value).strip(" \t\r\n")
        if "\n" in value or "\r" in value or "\0" in value:
            raise JsTypeError(f"Invalid header value for '{name}'.")
        return name, value

    @classmethod
    def new(cls, init: Any = None) -> Headers:
        """`js.Headers.new(...)`, as code written against the FFI constructs it."""
        return cls(init)

    @classmethod
    def _trusted(cls, pairs: Any) -> Headers:
        """Headers already validated by the HTTP server (skips the per-header checks)."""
        headers = cls()
        headers._h = CIMultiDict(pairs)
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._h.getall(name, None)
        if not values:
            return default
        return ", ".join(values)

    def getAll(self, name: str) -> list[str]:
        return list(self._h.getall(name, []))

    get_all = getAll  # the SDK's headers are an `http.client.HTTPMessage`, whose method is `get_all`

    def getSetCookie(self) -> list[str]:
        return self.getAll("set-cookie")

    def set(self, name: str, value: Any) -> None:
        name, value = self._check(name, value)
        self._h[name] = value

    def append(self, name: str, value: Any) -> None:
        name, value = self._check(name, value)
        self._h.add(name, value)

    def delete(self, name: str) -> None:
        self._h.popall(name, None)

    def has(self, name: str) -> bool:
        return name in self._h

    def keys(self) -> list[str]:
        return [k for k, _ in self.items()]

    def values(self) -> list[str]:
        return [v for _, v in self.items()]

    def items(self) -> list[tuple[str, str]]:
        """(lower-case name, value) pairs in name order; repeated names joined by ", " except set-cookie."""
        names = sorted({k.lower() for k in self._h.keys()})
        out: list[tuple[str, str]] = []
        for name in names:
            if name == "set-cookie":
                out.extend((name, v) for v in self._h.getall(name))
            else:
                out.append((name, ", ".join(self._h.getall(name))))
        return out

    entries = items

    def raw_items(self) -> list[tuple[str, str]]:
        """Every header as written, in insertion order (for the wire)."""
        return list(self._h.items())

    def __iter__(self):
        return iter(self.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._h

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __len__(self) -> int:
        return len(self.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self.items() == other.items()

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"

    def to_dict(self) -> dict[str, str]:
        return dict(self.items())


class _RequestHeaders(Headers):
    """A request's headers: in the SDK they are an `http.client.HTTPMessage`, so a missing name reads None."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str | None:  # type: ignore[override]
        return self.get(name)


def _coerce_headers(headers: Any) -> Headers:
    if isinstance(headers, Headers):
        return Headers(headers)
    return Headers(headers)


def _encode_body(body: Any, headers: Headers | None = None, kind: str = "Response") -> bytes | AsyncIterable[bytes] | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, AsyncIterable):
        return body
    from .sdk.forms import Blob, FormData, encode_form

    if isinstance(body, FormData):
        data, content_type = encode_form(body)
        if headers is not None and "content-type" not in headers:
            headers._h["content-type"] = content_type
        return data
    if isinstance(body, Blob):
        if headers is not None and body.content_type and "content-type" not in headers:
            headers._h["content-type"] = body.content_type
        return body._data
    # The SDK's own text for a body it cannot send.
    raise JsTypeError(f"Unsupported type in {kind}: {type(body).__name__}")


class _Body:
    """Shared body reading for Request and Response."""

    _body: bytes | AsyncIterable[bytes] | None
    _used: bool

    @property
    def bodyUsed(self) -> bool:
        return self._used

    @property
    def body(self) -> bytes | AsyncIterable[bytes] | None:
        return self._body

    async def bytes(self) -> bytes:
        if self._used:
            raise BodyUsedError(BODY_USED)
        self._used = True
        body = self._body
        if body is None:
            return b""
        if isinstance(body, bytes):
            return body
        chunks = []
        async for chunk in body:
            chunks.append(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
        return b"".join(chunks)

    arrayBuffer = bytes

    async def text(self) -> str:
        return (await self.bytes()).decode("utf-8", errors="replace")

    async def json(self, **kwargs: Any) -> Any:
        """The body as JSON; keyword arguments go to `json.loads`, as in the SDK."""
        text = await self.text()
        try:
            return _json.loads(text, **kwargs)
        except ValueError as e:
            raise _syntax_error(f"Unexpected token in JSON: {e}") from None

    @property
    def body_used(self) -> bool:
        return self._used

    @property
    def js_object(self) -> Any:
        """The SDK's handle on the underlying JS object; in cfemu the object is its own handle."""
        return self

    async def form_data(self) -> Any:
        """`await request.form_data()`: a `FormData` from a urlencoded or multipart body."""
        from .sdk.forms import parse_form

        return parse_form(await self.bytes(), self.headers.get("content-type"))

    formData = form_data

    async def blob(self) -> Any:
        from .sdk.forms import Blob

        return Blob([await self.bytes()], content_type=self.headers.get("content-type") or "")


def _syntax_error(message: str) -> Exception:
    # JSON.parse throws a SyntaxError; the SDK surfaces it as a JsException named SyntaxError.
    from .errors import JsException

    return JsException(message, name="SyntaxError")


class Request(_Body):
    """The Fetch API's `Request` as the Python SDK presents it."""

    def __init__(self, input: str | Request, *, method: str | None = None, headers: Any = None,
                 body: Any = None, cf: Mapping[str, Any] | None = None, redirect: str | None = None,
                 **_ignored: Any) -> None:
        if isinstance(input, Request):
            base = input
            url = base.url
            method = method or base.method
            headers = base.headers if headers is None else headers
            if body is None and base._body is not None:
                if base._used:
                    raise BodyUsedError(BODY_USED)
                body, base._used = base._body, True
            cf = base.cf if cf is None else cf
        else:
            url = str(input)
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise JsTypeError(f"Invalid URL: {url}")
        url = _normalize_url(url, parts)
        method = (method or "GET").upper() if (method or "GET").upper() in _METHODS else (method or "GET")
        self.url = url
        self.method = method
        self.headers = _coerce_headers(headers)
        self.headers.__class__ = _RequestHeaders
        self._body = _encode_body(body, self.headers, "Request")
        if self._body is not None and method in ("GET", "HEAD"):
            raise JsTypeError("Request with a GET or HEAD method cannot have a body.")
        self._used = False
        self.cf = JsObject(cf or {})
        self.redirect = redirect or "follow"

    @classmethod
    def new(cls, input: Any, init: Mapping[str, Any] | None = None, **kwargs: Any) -> Request:
        """`js.Request.new(url, init)`: the init object's keys as keyword arguments."""
        return cls(input, **{**dict(init or {}), **kwargs})

    @classmethod
    def _incoming(cls, url: str, method: str, headers: Headers, body: bytes | None, cf: JsObject) -> Request:
        """A request the server has already parsed: skip re-validating what aiohttp checked."""
        request = cls.__new__(cls)
        headers.__class__ = _RequestHeaders
        request.url, request.method, request.headers, request._body = url, method, headers, body
        request._used, request.cf, request.redirect = False, cf, "follow"
        return request

    def clone(self) -> Request:
        if self._used:
            raise BodyUsedError(BODY_USED)
        if self._body is not None and not isinstance(self._body, bytes):
            raise JsTypeError("Cannot clone a Request with a streamed body.")
        clone = Request(self.url, method=self.method, headers=self.headers, cf=dict(self.cf))
        clone._body = self._body
        return clone

    @property
    def path(self) -> str:
        """Path and query of the URL (a convenience; JS code writes `new URL(request.url)`)."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def __repr__(self) -> str:
        return f"Request(method={self.method!r}, url={self.url!r})"


def _normalize_url(url: str, parts: Any) -> str:
    """What `new Request(url).url` gives back: scheme and host lower-cased, an empty path becomes "/"."""
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower() if "@" not in parts.netloc else parts.netloc
    path = parts.path or ("/" if scheme in ("http", "https", "ws", "wss") else "")
    if scheme == parts.scheme and netloc == parts.netloc and path == parts.path:
        return url
    rest = url.split("#", 1)
    query = f"?{parts.query}" if parts.query or "?" in rest[0] else ""
    fragment = f"#{parts.fragment}" if len(rest) > 1 else ""
    return f"{scheme}://{netloc}{path}{query}{fragment}"


class Response(_Body):
    """The Fetch API's `Response`; `web_socket=` carries the client end of a `WebSocketPair` (status 101)."""

    def __init__(self, body: Any = None, status: int | None = None, status_text: str = "", headers: Any = None,
                 web_socket: Any = None, *, statusText: str | None = None, webSocket: Any = None) -> None:
        if status is None:
            status = 200
        elif isinstance(status, IntEnum):  # HTTPStatus.NOT_FOUND, as SDK examples write it
            status = int(status)
        web_socket = web_socket if web_socket is not None else webSocket
        if not isinstance(status, int) or isinstance(status, bool):
            raise JsTypeError(f"Response status must be an integer, got {status!r}.")
        if status == 101:
            if web_socket is None:
                raise JsRangeError("Responses may only be constructed with status codes in the range 200 to 599, inclusive.")
        elif not 200 <= status <= 599:
            raise JsRangeError("Responses may only be constructed with status codes in the range 200 to 599, inclusive.")
        self.status = status
        self.statusText = statusText if statusText is not None else status_text
        self.headers = _coerce_headers(headers)
        self._body = _encode_body(body, self.headers)
        if self._body is not None and status in (101, 204, 205, 304):
            raise JsTypeError("Response with null body status cannot have body")
        if isinstance(body, str) and "content-type" not in self.headers:
            self.headers._h["content-type"] = "text/plain;charset=UTF-8"  # a known-valid header
        self._used = False
        self.webSocket = web_socket
        self.url = ""
        self.redirected = False

    @property
    def status_text(self) -> str:
        return self.statusText

    @property
    def web_socket(self) -> Any:
        return self.webSocket

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    @classmethod
    def from_json(cls, data: Any, status: int = 200, status_text: str = "", headers: Any = None) -> Response:
        """The SDK's `Response.from_json` (`Response.json(data)` as a static call): body is `json.dumps(data)`."""
        # The SDK serialises with Python's json.dumps defaults (", " and ": " separators, ASCII escapes),
        # so the bytes on the wire are the same as on Cloudflare.
        body = _json.dumps(data)
        h = _coerce_headers(headers)
        if "content-type" not in h:
            h.set("content-type", "application/json")
        return cls(body, status=status, status_text=status_text, headers=h)

    json = from_json

    @classmethod
    def new(cls, body: Any = None, init: Mapping[str, Any] | None = None, **kwargs: Any) -> Response:
        """`js.Response.new(body, init)`: init's `status`, `statusText`, `headers`, `webSocket`."""
        options = {**dict(init or {}), **kwargs}
        return cls(body, status=options.get("status"), status_text=options.get("statusText", ""),
                   headers=options.get("headers"), web_socket=options.get("webSocket"))

    def replace_body(self, body: Any) -> Response:
        """The SDK's `replace_body`: same status, status text and headers, a new body."""
        return Response(body, status=self.status, status_text=self.statusText, headers=self.headers,
                        web_socket=self.webSocket)

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        status = int(status)
        if status not in _REDIRECT_STATUSES:
            raise JsRangeError(f"Invalid status code {status}: redirect status must be one of 301, 302, 303, 307, 308.")
        return cls(None, status=status, headers={"location": str(url)})

    def raise_for_status(self) -> None:
        """pyodide's `FetchResponse.raise_for_status`: OSError for a 4xx or 5xx status."""
        kind = "Client" if 400 <= self.status < 500 else "Server" if 500 <= self.status < 600 else None
        if kind is not None:
            raise OSError(f"{self.status} {kind} Error: {self.statusText or _reason_phrase(self.status)} "
                          f"for url: {self.url}")

    async def string(self) -> str:
        """pyodide's name for `text()`."""
        return await self.text()

    async def buffer(self) -> bytes:
        """pyodide's `buffer()` (an ArrayBuffer there; the bytes here)."""
        return await self.bytes()

    @property
    def js_response(self) -> Response:
        return self

    @classmethod
    def error(cls) -> Response:
        resp = cls(None, status=200)
        resp.status = 0
        return resp

    def clone(self) -> Response:
        if self._used:
            raise BodyUsedError(BODY_USED)
        if self._body is not None and not isinstance(self._body, bytes):
            raise JsTypeError("Cannot clone a Response with a streamed body.")
        clone = Response(None, status=200, headers=self.headers)
        clone.status, clone.statusText, clone._body, clone.webSocket = self.status, self.statusText, self._body, self.webSocket
        return clone

    def __repr__(self) -> str:
        parts = [f"status={self.status}"]
        if self.statusText:
            parts.append(f"status_text={self.statusText!r}")
        if "content-type" in self.headers:
            parts.append(f"content_type={self.headers['content-type']!r}")
        if self.url:
            parts.append(f"url={self.url!r}")
        return f"Response({', '.join(parts)})"


class _InstanceOrClass:
    """Lets `Response.json` be the static constructor and `await resp.json()` the body reader."""

    def __init__(self, classmethod_func: Any, instance_func: Any) -> None:
        self._cls = classmethod_func
        self._inst = instance_func

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self._cls.__get__(objtype, objtype)
        return self._inst.__get__(obj, objtype)


Response.json = _InstanceOrClass(Response.__dict__["from_json"], _Body.json)  # type: ignore[assignment]


async def fetch(input: str | Request, **init: Any) -> Response:
    """Outbound `fetch()` through aiohttp's client; returns a `Response` with the body read."""
    from . import context

    request = input if isinstance(input, Request) and not init else Request(input, **init)
    runtime = context.current_runtime()
    if runtime is not None:
        routed = await runtime.route_subrequest(request)
        if routed is not None:
            return routed
    import aiohttp

    body = await request.bytes() if request.body is not None else None
    session = await context.client_session()
    try:
        # As in production (and Miniflare): the client's CF-Connecting-IP never leaves with a
        # subrequest, and the subrequest says which worker sent it.
        out = [(k, v) for k, v in request.headers.raw_items() if k.lower() not in ("cf-connecting-ip", "cf-worker")]
        if runtime is not None:
            out.append(("CF-Worker", runtime.config.name))
        async with session.request(request.method, request.url, headers=out, data=body,
                                   allow_redirects=request.redirect != "manual") as resp:
            content = await resp.read()
            response = Response(content or None if resp.status not in (204, 205, 304) else None,
                                status=resp.status if resp.status >= 200 else 200,
                                status_text=resp.reason or "",
                                headers=[(k, v) for k, v in resp.headers.items()])
            response.url = str(resp.url)
            response.redirected = bool(resp.history)
            return response
    except aiohttp.ClientError as e:
        raise JsTypeError(f"Network connection lost. ({e})") from None


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
