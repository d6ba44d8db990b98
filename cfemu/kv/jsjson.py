"""JSON the way V8 writes and reads it, where KV's limits and results depend on the exact text.

Metadata is measured in bytes of `JSON.stringify(metadata)` (limit 1024), so numbers must be written
as JavaScript writes them (`1e-7`, `1e+21`, `2`), lone surrogates escaped, NaN and Infinity written as
`null`.  `JSON.parse` accepts no `NaN`/`Infinity` literals, unlike Python's `json`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..errors import JsException, JsRangeError, JsTypeError

__all__ = ["stringify", "parse", "js_number"]

_MAX_SAFE = 2**53 - 1
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def js_number(x: float) -> str:
    """`Number.prototype.toString()` of a finite double (ECMAScript's Number::toString, radix 10)."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")  # repr: the shortest digits that round-trip
    whole, _, frac = mantissa.partition(".")
    frac = frac.rstrip("0")
    digits = (whole + frac).lstrip("0")
    # value = 0.<digits> x 10^n
    n = len(whole.lstrip("0")) if whole.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    n += int(exp or 0)
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + text


def _string(s: str) -> str:
    text = _encode_string(s)
    # Well-formed JSON.stringify escapes lone surrogates instead of writing invalid UTF-16.
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def stringify(value: Any) -> str:
    """`JSON.stringify(value)` for values a Python worker passes (dict, list, str, number, bool, None)."""
    out: list[str] = []
    stack: set[int] = set()

    def write(v: Any) -> None:
        if v is None or v is True or v is False:
            out.append("null" if v is None else "true" if v else "false")
        elif isinstance(v, str):
            out.append(_string(v))
        elif isinstance(v, int):
            if abs(v) > _MAX_SAFE:
                # Pyodide hands such an int to JavaScript as a BigInt, which JSON.stringify refuses.
                raise JsTypeError("Do not know how to serialize a BigInt")
            out.append(str(v))
        elif isinstance(v, float):
            out.append(js_number(v) if math.isfinite(v) else "null")
        elif isinstance(v, (dict, list, tuple)):
            if id(v) in stack:
                raise JsTypeError("Converting circular structure to JSON")
            stack.add(id(v))
            if isinstance(v, dict):
                out.append("{")
                first = True
                for key, item in v.items():
                    if not first:
                        out.append(",")
                    first = False
                    out.append(_string(key if isinstance(key, str) else _key_text(key)))
                    out.append(":")
                    write(item)
                out.append("}")
            else:
                out.append("[")
                for i, item in enumerate(v):
                    if i:
                        out.append(",")
                    write(item)
                out.append("]")
            stack.discard(id(v))
        else:
            raise JsTypeError(f"KV put(): metadata must be serializable to JSON "
                              f"(a {type(v).__name__} is not: use dict, list, str, int, float, bool or None).")

    try:
        write(value)
    except RecursionError:
        raise JsRangeError("Maximum call stack size exceeded") from None
    return "".join(out)


def _key_text(key: Any) -> str:
    # JavaScript property names are strings: numbers and booleans become their JS text.
    if key is None or isinstance(key, bool):
        return "null" if key is None else "true" if key else "false"
    if isinstance(key, float):
        return js_number(key) if math.isfinite(key) else ("NaN" if key != key else "Infinity" if key > 0 else "-Infinity")
    return str(key)


def _no_constants(name: str) -> Any:
    raise ValueError(f"Unexpected token '{name[0]}', \"{name}\" is not valid JSON")


def parse(text: str) -> Any:
    """`JSON.parse(text)`: raises a JS `SyntaxError` where V8 would."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise JsRangeError("Maximum call stack size exceeded") from None
    except ValueError as e:
        raise JsException(f"Unexpected token in JSON: {e}", name="SyntaxError") from None
