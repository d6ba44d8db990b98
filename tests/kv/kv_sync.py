"""Driving KV calls from hypothesis state machines, which run without an event loop."""

from __future__ import annotations


def run(coro):
    """Run a coroutine that never suspends (KV calls on str values do not) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the KV call suspended")
