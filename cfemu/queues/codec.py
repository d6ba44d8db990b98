"""Message bodies on the wire: the four content types of Cloudflare Queues, and delay checks.

A body is serialized when it is sent (so a sender mutating its object afterwards changes nothing)
and decoded afresh for every delivery (so a handler mutating `m.body` does not change a retry).
"""

from __future__ import annotations

import codecs
import json
import math
from datetime import datetime, timezone
from typing import Any, Callable

from .. import values
from ..errors import JsException, JsTypeError
from ..objects import JsBuffer, to_js_object
from .errors import (
    CONTENT_TYPES,
    DEFAULT_CONTENT_TYPE,
    BIGINT_NOT_JSON,
    MAX_DELAY_SECONDS,
    NOT_JSON,
    UNSUPPORTED_CONTENT_TYPE,
    WRONG_BODY_TYPE,
)

__all__ = ["content_type", "encode", "decode", "js_typeof", "check_delay"]

_MAX_SAFE_INTEGER = 2**53 - 1
_ESCAPE_SURROGATES = "cfemu-json-escape-surrogates"


def _escape_surrogates(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "".join(f"\\u{ord(c):04x}" for c in error.object[error.start:error.end]), error.end


codecs.register_error(_ESCAPE_SURROGATES, _escape_surrogates)


def content_type(value: Any) -> str:
    """The validated content type (case-insensitive, as workerd accepts it); None means json."""
    if value is None:
        return DEFAULT_CONTENT_TYPE
    lowered = value.lower() if isinstance(value, str) else None
    if lowered not in CONTENT_TYPES:
        raise JsTypeError(UNSUPPORTED_CONTENT_TYPE.format(content_type=value))
    return lowered


def js_typeof(value: Any) -> str:
    """What JS `typeof` says of the value a Python body becomes."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if callable(value) and not isinstance(value, type):
        return "function"
    return "object"  # null, objects, arrays, buffers


def encode(body: Any, ctype: str) -> bytes:
    """Serialize a body for storage; raises the TypeError workerd raises for a mismatched body."""
    if ctype == "text":
        if not isinstance(body, str):
            raise JsTypeError(WRONG_BODY_TYPE.format(content_type="text", expected="string", typeof=js_typeof(body)))
        return body.encode("utf-8", "surrogatepass")
    if ctype == "bytes":
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise JsTypeError(WRONG_BODY_TYPE.format(content_type="bytes", expected="ArrayBufferView", typeof=js_typeof(body)))
        return bytes(body)
    if ctype == "json":
        plain = _jsonable(body, set())
        text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        # Lone surrogates can only sit inside JSON strings; well-formed JSON.stringify escapes them.
        return text.encode("utf-8", _ESCAPE_SURROGATES)
    if ctype == "v8":
        return values.serialize(body)
    raise JsTypeError(UNSUPPORTED_CONTENT_TYPE.format(content_type=ctype))


def decode(data: bytes, ctype: str) -> Any:
    """The value a consumer sees as `m.body` (objects allow attribute access, as JsProxies do)."""
    if ctype == "text":
        return data.decode("utf-8", "surrogatepass")
    if ctype == "bytes":
        return JsBuffer(data)
    if ctype == "json":
        return to_js_object(json.loads(data.decode("utf-8", "surrogatepass")))
    if ctype == "v8":
        return to_js_object(values.deserialize(data))
    raise JsTypeError(UNSUPPORTED_CONTENT_TYPE.format(content_type=ctype))


def _jsonable(value: Any, stack: set[int]) -> Any:
    """What `JSON.stringify` would write, or a clear TypeError for what it cannot represent."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            # Pyodide hands such ints to JS as BigInts, which JSON.stringify refuses.
            raise JsTypeError(BIGINT_NOT_JSON)
        return value
    if isinstance(value, float):
        # JSON.stringify writes NaN and Infinity as null, and an integral number without a
        # fraction (2.0 -> 2, -0.0 -> 0): the size counted and the type the consumer gets follow.
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise JsTypeError(NOT_JSON.format(detail="a naive datetime; give it a timezone"))
        # Date.prototype.toJSON: ISO 8601 in UTC with milliseconds.
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, (dict, list)):
        if id(value) in stack:
            raise JsTypeError(NOT_JSON.format(detail="it contains a cycle"))
        stack.add(id(value))
        try:
            if isinstance(value, list):
                return [_jsonable(v, stack) for v in value]
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise JsTypeError(NOT_JSON.format(detail=f"dict key {k!r} is not a str"))
                out[k] = _jsonable(v, stack)
            return out
        finally:
            stack.discard(id(value))
    raise JsTypeError(NOT_JSON.format(detail=f"{type(value).__name__} values are not supported"))


def check_delay(value: Any, fail: Callable[[Any], JsException]) -> int:
    """A delay in whole seconds within 0..43200; `fail(value)` builds the error otherwise.

    Fractions are truncated as WebIDL's integer conversion does before workerd sends the delay.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise fail(value)
        value = math.trunc(value)
    if not 0 <= value <= MAX_DELAY_SECONDS:
        raise fail(value)
    return int(value)
