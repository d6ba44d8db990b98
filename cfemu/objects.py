"""Results handed to worker code: dicts that also allow attribute access, as the Python SDK returns."""

from __future__ import annotations

from typing import Any

__all__ = ["JsObject", "to_js_object"]


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


def to_js_object(value: Any) -> Any:
    """Recursively turn plain dicts into `JsObject`s (lists are walked, other values kept)."""
    if isinstance(value, dict):
        return JsObject((k, to_js_object(v)) for k, v in value.items())
    if isinstance(value, list):
        return [to_js_object(v) for v in value]
    return value
