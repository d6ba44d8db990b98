"""Running coroutines that are known never to suspend, without an event loop."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

__all__ = ["run_nonsuspending"]


def run_nonsuspending(coroutine: Coroutine[Any, Any, Any], what: str = "operation") -> Any:
    """Drive `coroutine` to its result; fails if it suspends.

    Storage calls of the bindings (Durable Object storage, D1, R2 on in-memory values) are `async`
    for worker code but never wait, so the CLI and test inspectors can call them from anywhere,
    including code that already runs an event loop.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError(f"the {what} unexpectedly waited")
