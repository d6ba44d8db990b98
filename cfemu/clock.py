"""The one clock of a runtime: real in `cfemu dev`, virtual in tests.

Everything whose behaviour depends on time (KV TTLs, alarms, queue delays and batch timeouts, crons,
retention, `js.Date.now()`, `js.setTimeout`) reads `now()` and schedules with `call_at()` on the
runtime's clock, so a test that advances the virtual clock reaches all of it.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Clock", "RealClock", "VirtualClock", "Timer"]

Callback = Callable[[], Awaitable[Any] | Any]


class Timer:
    """A scheduled callback; `cancel()` stops it if it has not run yet."""

    __slots__ = ("when", "callback", "cancelled", "_handle")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self._handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self._handle is not None:
            self._handle.cancel()


class Clock:
    """Seconds since the Unix epoch, plus timers on the same time line."""

    virtual = False

    def __init__(self) -> None:
        # Async callbacks run as tasks created by `spawn`; the runtime swaps in its tracked spawner
        # so that `advance()` can wait for the work a timer started.
        self.spawn: Callable[[Awaitable[Any]], Any] = _default_spawn

    def now(self) -> float:
        raise NotImplementedError

    def now_ms(self) -> int:
        """Milliseconds since the epoch, as `Date.now()` gives them."""
        return int(self.now() * 1000)

    def call_at(self, when: float, callback: Callback) -> Timer:
        raise NotImplementedError

    def call_later(self, delay: float, callback: Callback) -> Timer:
        return self.call_at(self.now() + max(0.0, delay), callback)

    async def sleep(self, seconds: float) -> None:
        """Sleep on this clock's time line (a virtual sleep ends only when the clock is advanced)."""
        future = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: future.done() or future.set_result(None))
        await future

    def _fire(self, timer: Timer) -> None:
        if timer.cancelled:
            return
        timer.cancelled = True
        result = timer.callback()
        if inspect.isawaitable(result):
            self.spawn(result)


def _default_spawn(awaitable: Awaitable[Any]) -> asyncio.Task:
    return asyncio.ensure_future(awaitable)


class RealClock(Clock):
    """Wall-clock time; timers ride on the event loop."""

    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callback) -> Timer:
        timer = Timer(when, callback)
        loop = asyncio.get_running_loop()
        timer._handle = loop.call_later(max(0.0, when - time.time()), self._fire, timer)
        return timer


class VirtualClock(Clock):
    """Time that moves only when a test says so.

    `advance()` steps through due timers in order, setting `now()` to each timer's instant before
    running it, so a callback sees the time it was scheduled for.
    """

    virtual = True

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self._now = float(time.time() if start is None else start)
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callback) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, until: float) -> Timer | None:
        """Remove and return the earliest live timer due at or before `until`, moving time to it."""
        when = self.next_due()
        if when is None or when > until:
            return None
        _, _, timer = heapq.heappop(self._heap)
        self._now = max(self._now, when)
        return timer

    def set(self, instant: float) -> None:
        """Jump to `instant` without running timers (used by `advance` after the last due timer)."""
        self._now = max(self._now, float(instant))

    def fire(self, timer: Timer) -> None:
        self._fire(timer)
