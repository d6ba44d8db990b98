"""Which runtime the running code belongs to.

Worker code reaches `js.Date.now()`, `js.setTimeout` and `fetch()` through module-level names, as on
Cloudflare; they find the runtime (and so its clock) through a context variable that every event
dispatch sets and every task it starts inherits.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

    from .runtime import Runtime

__all__ = ["current_runtime", "use_runtime", "current_invocation", "begin_invocation", "end_invocation",
           "client_session"]

_runtime: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("cfemu_runtime", default=None)
# One object per event a worker or Durable Object handles (fetch, scheduled, queue, RPC, alarm, ...);
# work it starts (waitUntil, tasks) inherits it.  Per-invocation limits count against it.
_invocation: contextvars.ContextVar[object | None] = contextvars.ContextVar("cfemu_invocation", default=None)
# Outbound HTTP outside any runtime (rare: library code calling `fetch` directly), one per event loop.
# Keyed by the loop itself, weakly: an id() could be reused by a later loop and hand it a dead session.
_loop_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def current_runtime() -> Runtime | None:
    """The runtime running the calling worker code (None outside one); backs `workers.env`, `waitUntil`, `fetch` and `js`."""
    return _runtime.get()


def use_runtime(runtime: Runtime | None) -> contextvars.Token:
    """Make `runtime` the current one for this context; undo with `reset_runtime(token)`."""
    return _runtime.set(runtime)


def reset_runtime(token: contextvars.Token) -> None:
    _runtime.reset(token)


def current_invocation() -> object | None:
    """The event being handled (None outside any event)."""
    return _invocation.get()


def begin_invocation() -> contextvars.Token:
    """Mark the start of one event (fetch, alarm, queue batch...); undo with `end_invocation(token)`."""
    return _invocation.set(object())


def end_invocation(token: contextvars.Token) -> None:
    """End the event `begin_invocation` started."""
    _invocation.reset(token)


async def client_session() -> aiohttp.ClientSession:
    """The outbound HTTP session of the current runtime (closed with it), else of the event loop."""
    import aiohttp

    runtime = current_runtime()
    if runtime is not None:
        session = runtime.http_session
        if session is None or session.closed:
            session = runtime.http_session = aiohttp.ClientSession(auto_decompress=True)
        return session
    loop = asyncio.get_running_loop()
    session = _loop_sessions.get(loop)
    if session is None or session.closed:
        session = _loop_sessions[loop] = aiohttp.ClientSession(auto_decompress=True)
    return session


async def close_client_session() -> None:
    """Close the event loop's session (the one used outside runtimes)."""
    session = _loop_sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()
