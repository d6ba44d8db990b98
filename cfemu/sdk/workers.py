"""`workers`: the official Python Workers SDK's module, as cfemu provides it to worker code."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from types import LambdaType
from typing import Any, Protocol

from .. import context
from ..http import Headers, Request, Response, fetch
from ..websocket import WebSocketPair, WebSocketRequestResponsePair
from . import asgi
from .forms import Blob, BlobEnding, File, FormData

__cfemu__ = True
__all__ = [
    "Blob", "BlobEnding", "Context", "DurableObject", "FetchResponse", "File", "FormData", "Headers", "Request",
    "Response", "WorkerEntrypoint", "WorkflowEntrypoint", "env", "fetch", "handler", "import_from_javascript",
    "patch_env", "python_from_rpc", "python_to_rpc", "waitUntil", "asgi",
    "WebSocketPair", "WebSocketRequestResponsePair",
]

FetchResponse = Response  # the SDK's base class of Response; one class here


class Context(Protocol):
    """The SDK's `Context` protocol: what `self.ctx` offers."""

    def waitUntil(self, other: Awaitable[Any]) -> None: ...


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


class _GlobalEnv:
    """`from workers import env`: the env of the runtime running the calling code, looked up per access.

    Cached worker code is shared by runtimes, so the object cannot hold one runtime's env.
    """

    def _env(self) -> Any:
        runtime = context.current_runtime()
        if runtime is None or getattr(runtime, "env", None) is None:
            raise RuntimeError("workers.env is only available while a cfemu runtime runs worker code")
        return runtime.env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env(), name)

    def __getitem__(self, name: str) -> Any:
        return self._env()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._env()

    def __repr__(self) -> str:
        return "<workers.env>"


env = _GlobalEnv()


def waitUntil(awaitable: Awaitable[Any]) -> None:
    """`cloudflare:workers`' global `waitUntil`: keep work running after the response."""
    runtime = context.current_runtime()
    if runtime is None:
        raise RuntimeError("waitUntil() is only available while a cfemu runtime runs worker code")
    if not inspect.isawaitable(awaitable):
        from ..errors import JsTypeError

        raise JsTypeError("waitUntil() takes a promise (an awaitable).")
    runtime.spawn(awaitable, name="waitUntil")


class _CloudflareWorkers:
    """What `import_from_javascript("cloudflare:workers")` gives: `env` and `waitUntil`."""

    env = _GlobalEnv()
    waitUntil = staticmethod(waitUntil)
    WorkerEntrypoint = WorkerEntrypoint
    DurableObject = DurableObject
    WorkflowEntrypoint = WorkflowEntrypoint


def import_from_javascript(module_name: str) -> Any:
    """The SDK's `import_from_javascript`: only `cloudflare:workers` exists in cfemu."""
    if module_name == "cloudflare:workers":
        return _CloudflareWorkers
    raise ImportError(f"Failed to import '{module_name}': there is no JavaScript module graph in cfemu "
                      "(only 'cloudflare:workers' is available)")


@contextmanager
def patch_env(d: Any = None, **kwds: Any) -> Iterator[None]:
    """The SDK's `patch_env`: override env entries for the duration of a `with` block."""
    values = dict(d) | kwds if d else dict(kwds)
    target = env._env()
    missing = object()
    saved = {k: target.get(k, missing) for k in values}
    target.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is missing:
                target.pop(k, None)
            else:
                target[k] = v


def _check_rpc(value: Any) -> None:
    # The SDK refuses these before conversion: tuples, bytearrays, lambdas and un-awaited awaitables.
    if isinstance(value, (tuple, bytearray, LambdaType)):
        raise TypeError(f"{type(value)} cannot be sent over RPC.")
    if inspect.isawaitable(value):
        raise TypeError(f"Awaitable {type(value)} cannot be sent over RPC.")
    if isinstance(value, dict):
        for v in value.values():
            _check_rpc(v)
    elif isinstance(value, (list, set, frozenset)):
        for v in value:
            _check_rpc(v)


def python_to_rpc(value: Any) -> Any:
    """The SDK's `python_to_rpc`: checks what may cross RPC; values stay Python objects in cfemu."""
    _check_rpc(value)
    return value


def python_from_rpc(obj: Any) -> Any:
    """The SDK's `python_from_rpc`: values arrive as Python objects already in cfemu."""
    return obj


