"""The one clock of a runtime: real in `cfemu dev`, virtual in tests.

Everything whose behaviour depends on time (KV TTLs, alarms, queue delays and batch timeouts, crons,
retention, `js.Date.now()`, `js.setTimeout`) reads `now()` and schedules with `call_at()` on the
runtime's clock, so a test that advances the virtual clock reaches all of it.

Worker code also waits with plain `asyncio.sleep`, `asyncio.wait_for` and `asyncio.timeout`.  In
Pyodide those ride on `setTimeout`, that is on the runtime's timers, so this module wraps the three
asyncio functions: called on behalf of a runtime whose clock is virtual (the context says which
runtime the running code belongs to), they wait on that clock; everywhere else (test code, the dev
server, libraries outside any worker event, a real clock) they are asyncio's own, unchanged.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import context

__all__ = ["Clock", "RealClock", "VirtualClock", "Timer", "VirtualTimeout", "real_sleep", "real_wait_for",
           "real_timeout"]

log = logging.getLogger("cfemu")

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

    async def sleep(self, seconds: float, result: Any = None) -> Any:
        """Sleep on this clock's time line (a virtual sleep ends only when the clock is advanced).

        Cancelling the sleep cancels its timer, so nothing is left on the clock.
        """
        future = asyncio.get_running_loop().create_future()
        timer = self.call_later(seconds, lambda: future.done() or future.set_result(result))
        try:
            return await future
        finally:
            timer.cancel()

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

    # A virtual sleep still pending after this much real time most likely waits for an advance()
    # that the test will never make (it awaits the sleeping call itself): say so once.
    STALL_HINT_AFTER = 2.0

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self._now = float(time.time() if start is None else start)
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        # Tasks blocked in `sleep()`: only advance() can wake them, so settle() need not wait for them.
        self.sleepers: set[asyncio.Task] = set()
        self._hinted = False

    async def sleep(self, seconds: float, result: Any = None) -> Any:
        task = asyncio.current_task()
        hint = asyncio.get_running_loop().call_later(self.STALL_HINT_AFTER, self._stall_hint, seconds)
        if task is not None:
            self.sleepers.add(task)
        try:
            return await super().sleep(seconds, result)
        finally:
            hint.cancel()
            self.sleepers.discard(task)  # type: ignore[arg-type]

    def _stall_hint(self, seconds: float) -> None:
        if not self._hinted:
            self._hinted = True
            log.warning("worker code has been sleeping %gs on the virtual clock for %gs of real time; "
                        "virtual time moves only when the test calls advance()", seconds, self.STALL_HINT_AFTER)

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


# -- asyncio's waits in worker code --------------------------------------------------------------------

# asyncio's originals (its submodules keep them even after the package attributes are wrapped)
real_sleep = asyncio.tasks.sleep
real_wait_for = asyncio.tasks.wait_for
real_timeout = asyncio.timeouts.timeout


def _virtual_clock() -> VirtualClock | None:
    """The virtual clock of the runtime the calling code works for, if it has one."""
    runtime = context.current_runtime()
    if runtime is None:
        return None
    clock = runtime.clock
    return clock if clock.virtual else None  # type: ignore[return-value]


async def _sleep(delay: float, result: Any = None) -> Any:
    """`asyncio.sleep`, on the runtime's virtual clock when worker code calls it (0 still just yields)."""
    clock = _virtual_clock()
    if clock is not None and isinstance(delay, (int, float)) and delay > 0:
        return await clock.sleep(delay, result)
    return await real_sleep(delay, result)


class VirtualTimeout:
    """`asyncio.timeout()` whose deadline is on a virtual clock (worker code under test).

    `when()` and `reschedule()` speak the event loop's time, as `asyncio.Timeout` does; the delay
    they describe is counted on the virtual clock.
    """

    def __init__(self, clock: Clock, delay: float | None) -> None:
        self._clock = clock
        self._delay = delay
        self._when: float | None = None
        self._timer: Any = None
        self._task: asyncio.Task | None = None
        self._cancelling = 0
        self._state = "created"

    def when(self) -> float | None:
        return self._when

    def expired(self) -> bool:
        return self._state in ("expiring", "expired")

    def reschedule(self, when: float | None) -> None:
        if self._state != "entered":
            raise RuntimeError(f"Cannot change state of {self._state} Timeout")
        loop = asyncio.get_running_loop()
        self._arm(None if when is None else when - loop.time(), when)

    def _arm(self, delay: float | None, when: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._when = when
        if delay is None:
            return
        if delay <= 0:
            self._timer = asyncio.get_running_loop().call_soon(self._on_timeout)
        else:
            self._timer = self._clock.call_later(delay, self._on_timeout)

    def _on_timeout(self) -> None:
        assert self._task is not None
        self._task.cancel()
        self._state = "expiring"
        self._timer = None

    async def __aenter__(self) -> VirtualTimeout:
        if self._state != "created":
            raise RuntimeError("Timeout has already been entered")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._task, self._state = task, "entered"
        self._cancelling = task.cancelling()
        if self._delay is not None:
            self._arm(self._delay, asyncio.get_running_loop().time() + self._delay)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state == "expiring":
            self._state = "expired"
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
        elif self._state == "entered":
            self._state = "exited"
        return None


def _timeout(delay: float | None) -> Any:
    """`asyncio.timeout`, counted on the runtime's virtual clock when worker code calls it."""
    clock = _virtual_clock()
    if clock is None or delay is None:
        return real_timeout(delay)
    return VirtualTimeout(clock, delay)


async def _wait_for(fut: Any, timeout: float | None) -> Any:
    """`asyncio.wait_for`, counted on the runtime's virtual clock when worker code calls it."""
    clock = _virtual_clock()
    if clock is None or timeout is None or not isinstance(timeout, (int, float)) or timeout <= 0:
        return await real_wait_for(fut, timeout)
    fut = asyncio.ensure_future(fut)
    async with VirtualTimeout(clock, timeout):
        return await fut


def _install() -> None:
    # Module attributes, so `asyncio.sleep(...)` and `from asyncio import sleep` in worker modules
    # (imported after cfemu) both reach the wrappers; asyncio's own internals are untouched.
    if asyncio.sleep is not _sleep:
        asyncio.sleep = _sleep  # type: ignore[assignment]
        asyncio.wait_for = _wait_for  # type: ignore[assignment]
        asyncio.timeout = _timeout  # type: ignore[assignment]


_install()
