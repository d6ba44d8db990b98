"""`pyodide.ffi` stand-ins, so code written for Cloudflare's Python Workers imports unchanged.

There is no JS heap in cfemu: values are plain Python objects, `to_js` converts dicts to JS-object
dicts when asked, and proxies are thin wrappers whose `destroy()` is harmless.
"""

from __future__ import annotations

from typing import Any

from ..errors import JsException
from ..objects import JsObject

__cfemu__ = True
__all__ = ["to_js", "JsProxy", "JsException", "create_proxy", "create_once_callable", "destroy_proxies"]


class JsProxy:
    """Base class for values that would be JS proxies in Pyodide (isinstance checks keep working)."""


class _Proxy(JsProxy):
    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self.destroyed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._obj(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)

    def destroy(self) -> None:
        self.destroyed = True


def to_js(obj: Any, *, depth: int = -1, dict_converter: Any = None, create_pyproxies: bool = True,
          pyproxies: Any = None, default_converter: Any = None, **_: Any) -> Any:
    """Convert for a JS API: dicts become JS objects when `dict_converter` is given (e.g. Object.fromEntries)."""
    if depth == 0:
        return obj
    if isinstance(obj, dict):
        converted = {k: to_js(v, depth=depth - 1, dict_converter=dict_converter) for k, v in obj.items()}
        return JsObject(converted) if dict_converter is not None else converted
    if isinstance(obj, (list, tuple)):
        return [to_js(v, depth=depth - 1, dict_converter=dict_converter) for v in obj]
    return obj


def create_proxy(obj: Any, *, capture_this: bool = False, roundtrip: bool = True) -> _Proxy:
    """Pyodide's `create_proxy`: a wrapper with `destroy()`; nothing crosses into JS in cfemu."""
    return _Proxy(obj)


def create_once_callable(obj: Any) -> _Proxy:
    """Pyodide's `create_once_callable`: like `create_proxy` here (the once-only rule is not enforced)."""
    return _Proxy(obj)


def destroy_proxies(proxies: Any) -> None:
    """Pyodide's `destroy_proxies`: `destroy()` each proxy."""
    for proxy in proxies:
        proxy.destroy()
