"""`workers`: the official Python Workers SDK's module, as cfemu provides it to worker code."""

from __future__ import annotations

from typing import Any

from ..http import Headers, Request, Response, fetch
from ..websocket import WebSocketPair, WebSocketRequestResponsePair

__cfemu__ = True
__all__ = [
    "WorkerEntrypoint",
    "DurableObject",
    "WorkflowEntrypoint",
    "Request",
    "Response",
    "Headers",
    "fetch",
    "handler",
    "import_from_javascript",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
]


class WorkerEntrypoint:
    """`class Default(WorkerEntrypoint)`: constructed per event with `(ctx, env)`."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Base class of a Durable Object: constructed with `(ctx, env)`; `ctx` is its DurableObjectState."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class WorkflowEntrypoint:
    """Workflows are not emulated; the class exists so that code importing it still loads."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


def handler(func: Any) -> Any:
    """The SDK's `@handler` decorator for module-level `on_fetch` style handlers (a no-op here)."""
    return func


def import_from_javascript(name: str) -> Any:
    raise ImportError(f"import_from_javascript({name!r}): there is no JavaScript module graph in cfemu")
