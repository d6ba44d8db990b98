"""Results handed to worker code: dicts that also allow attribute access, as the Python SDK returns."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["JsObject", "JsBuffer", "JsDate", "to_js_object", "to_py", "usv"]


class JsObject(dict):
    """A converted JS object: a dict whose keys are also attributes.

    Dict methods win over keys (``obj.keys`` is the method), exactly as in the official SDK, so
    portable code writes ``obj["keys"]``.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_py(self) -> dict:
        """A plain dict (deeply), as `JsProxy.to_py()` gives one in Pyodide."""
        return to_py(self)


class JsBuffer(bytes):
    """Bytes handed to worker code where Pyodide hands a JS buffer proxy (an ArrayBuffer or
    Uint8Array): plain `bytes` that also answer `to_bytes()`, `to_py()` and `byteLength`, so code
    written for Cloudflare (`value.to_bytes()`) and plain Python code both work."""

    __slots__ = ()

    def to_bytes(self) -> bytes:
        return bytes(self)

    to_py = to_bytes

    @property
    def byteLength(self) -> int:  # noqa: N802 - the JS name
        return len(self)


class JsDate(datetime):
    """An aware datetime handed to worker code where Pyodide hands a JS `Date` proxy: it also
    answers `getTime()`, `valueOf()` and `toISOString()`."""

    __slots__ = ()

    def getTime(self) -> int:  # noqa: N802 - the JS name
        return round(self.timestamp() * 1000)

    valueOf = getTime

    def toISOString(self) -> str:  # noqa: N802 - the JS name
        utc = self.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

    @classmethod
    def from_ms(cls, ms: float) -> JsDate:
        """The instant `ms` milliseconds after the epoch (millisecond precision, as a JS Date)."""
        return cls.fromtimestamp(round(ms) / 1000, tz=timezone.utc)


def to_py(value: Any) -> Any:
    """Plain Python values (dicts, lists, bytes) from what cfemu hands worker code."""
    if isinstance(value, dict):
        return {k: to_py(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_py(v) for v in value]
    if isinstance(value, JsBuffer):
        return bytes(value)
    return value


def to_js_object(value: Any) -> Any:
    """Recursively turn plain dicts into `JsObject`s (lists are walked, other values kept)."""
    if isinstance(value, dict):
        return JsObject((k, to_js_object(v)) for k, v in value.items())
    if isinstance(value, list):
        return [to_js_object(v) for v in value]
    return value


def usv(text: str) -> str:
    """`text` as workerd receives a JS string: lone surrogates become U+FFFD (V8's UTF-8 conversion),
    and a surrogate pair held as two code points becomes the one character it encodes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
