"""The runtime's one clock: virtual time moves only on advance(); timers run in order at their instant."""

from __future__ import annotations

import asyncio
import time

import pytest

from cfemu.clock import RealClock, VirtualClock
from cfemu.testing import Runtime

START = 1_800_000_000.0


def test_virtual_clock_stands_still():
    clock = VirtualClock(START)
    assert clock.now() == START and clock.now_ms() == int(START * 1000)
    time.sleep(0.002)
    assert clock.now() == START


def test_pop_due_in_time_order_and_cancel():
    clock = VirtualClock(START)
    fired = []
    clock.call_at(START + 3, lambda: fired.append(3))
    clock.call_later(1, lambda: fired.append(1))
    cancelled = clock.call_later(2, lambda: fired.append(2))
    clock.call_later(1, lambda: fired.append("1b"))  # same instant: scheduling order
    cancelled.cancel()
    while (timer := clock.pop_due(START + 10)) is not None:
        assert clock.now() == timer.when  # the callback sees its own instant
        clock.fire(timer)
    assert fired == [1, "1b", 3]
    assert clock.now() == START + 3


def test_pop_due_stops_at_the_limit_and_set_never_goes_back():
    clock = VirtualClock(START)
    clock.call_later(5, lambda: None)
    assert clock.pop_due(START + 4.999) is None
    assert clock.next_due() == START + 5
    clock.set(START + 4)
    clock.set(START + 1)
    assert clock.now() == START + 4
    assert clock.call_later(-10, lambda: None).when == START + 4  # negative delays mean "now"


async def test_virtual_sleep_ends_only_when_advanced(tmp_path, write_worker):
    config = write_worker(tmp_path, "from workers import Response\nasync def on_fetch(request):\n    return Response('')\n")
    async with Runtime.from_config(config, start=START) as rt:
        woke = []

        async def sleeper(seconds):
            await rt.clock.sleep(seconds)
            woke.append((seconds, rt.now()))

        rt.core.spawn(sleeper(30))
        rt.core.spawn(sleeper(10))
        await rt.settle()
        assert woke == []
        await rt.advance(9.5)
        assert woke == []
        await rt.advance(0.5)
        assert woke == [(10, START + 10)]
        await rt.advance(100)
        assert woke == [(10, START + 10), (30, START + 30)]


async def test_timers_scheduled_by_timers_run_within_one_advance(tmp_path, write_worker):
    config = write_worker(tmp_path, "from workers import Response\nasync def on_fetch(request):\n    return Response('')\n")
    async with Runtime.from_config(config, start=START) as rt:
        ticks = []

        def tick():
            ticks.append(rt.now() - START)
            if len(ticks) < 100:
                rt.clock.call_later(1, tick)

        async def async_tick():
            await asyncio.sleep(0)
            ticks.append(("async", rt.now() - START))

        rt.clock.call_later(1, tick)
        rt.clock.call_later(2.5, async_tick)
        await rt.advance(5)
        assert ticks == [1, 2, ("async", 2.5), 3, 4, 5]


async def test_advance_needs_a_virtual_clock(tmp_path, write_worker):
    config = write_worker(tmp_path, "from workers import Response\nasync def on_fetch(request):\n    return Response('')\n")
    async with Runtime.from_config(config, clock="real") as rt:
        assert abs(rt.now() - time.time()) < 5
        with pytest.raises(RuntimeError):
            await rt.advance(1)


async def test_real_clock_timers_ride_the_event_loop():
    clock = RealClock()
    done = asyncio.Event()
    fired = []

    async def callback():
        fired.append(clock.now())
        done.set()

    before = clock.now()
    clock.call_later(0.01, callback)
    cancelled = clock.call_later(0.005, lambda: fired.append("cancelled"))
    cancelled.cancel()
    await asyncio.wait_for(done.wait(), 2)
    assert len(fired) == 1 and fired[0] >= before + 0.009
