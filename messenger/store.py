"""Small helpers over Durable Object storage and RPC results that keep worker code portable.

Values are stored as JSON text: a string crosses the Python/JS boundary of Cloudflare's Python
Workers unchanged, while a dict would come back as a JS proxy.  RPC results get the same treatment.
"""

from __future__ import annotations

import json

from js import Object
from pyodide.ffi import to_js

__all__ = ["jget", "jget_many", "jput", "jput_many", "jlist", "py", "entries"]


def py(value):
    """A plain Python value from whatever an RPC call or binding returned (JsProxy or not)."""
    if hasattr(value, "to_py"):
        value = value.to_py()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def entries(result) -> list:
    """(key, value) pairs of a storage `get([...])`/`list()` result (a Map in JS, a dict here)."""
    if result is None:
        return []
    if hasattr(result, "items"):
        return list(result.items())
    return [(k, v) for k, v in result.entries()]


def _load(raw):
    return None if raw is None else json.loads(raw)


async def jget(storage, key: str):
    return _load(await storage.get(key))


async def jget_many(storage, keys: list[str]) -> dict:
    out = {}
    for i in range(0, len(keys), 128):  # storage takes at most 128 keys per call
        for k, v in entries(await storage.get(keys[i:i + 128])):
            out[k] = _load(v)
    return out


async def jput(storage, key: str, value) -> None:
    await storage.put(key, json.dumps(value, separators=(",", ":")))


async def jput_many(storage, values: dict) -> None:
    """One atomic put of several keys (≤ 128)."""
    encoded = {k: json.dumps(v, separators=(",", ":")) for k, v in values.items()}
    await storage.put(to_js(encoded, dict_converter=Object.fromEntries))


async def jlist(storage, **options) -> list[tuple[str, object]]:
    return [(k, _load(v)) for k, v in entries(await storage.list(**options))]
