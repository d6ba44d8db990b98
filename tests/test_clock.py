"""The runtime's one clock: virtual time moves only on advance(); timers run in order at their instant."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- asyncio.sleep / wait_for / timeout in worker code follow the runtime's clock ---------------------

SLEEPY = "workers/sleepy/wrangler.toml"


@pytest.mark.cfemu_config(SLEEPY, start=START)
async def test_worker_asyncio_sleep_waits_for_virtual_time(cfemu_runtime):
    rt = cfemu_runtime
    began = time.perf_counter()
    assert await (await rt.fetch("/later?s=10")).text() == "later"
    await rt.advance(9)
    assert await rt.env.KV.get("done") is None
    await rt.advance(1)
    assert await rt.env.KV.get("done") == str(int((START + 10) * 1000))
    # a handler that sleeps before answering answers once the clock has moved past its sleep
    call = asyncio.ensure_future(rt.fetch("/nap?s=10"))
    await rt.advance(9.5)
    assert not call.done()
    await rt.advance(0.5)
    response = await asyncio.wait_for(call, 1)
    assert await response.text() == str(int((START + 20) * 1000))
    assert time.perf_counter() - began < 0.5  # no real sleeping


@pytest.mark.cfemu_config(SLEEPY, start=START)
async def test_durable_object_alarm_handler_sleeps_on_the_virtual_clock(cfemu_runtime):
    rt = cfemu_runtime
    began = time.perf_counter()
    await rt.fetch("/alarm?s=1")
    await rt.advance(1)
    assert rt.storage("NAPPER", "a").get("began") == int((START + 1) * 1000)
    assert rt.storage("NAPPER", "a").get("woke") is None
    await rt.advance(4.9)
    assert rt.storage("NAPPER", "a").get("woke") is None
    await rt.advance(0.1)
    assert rt.storage("NAPPER", "a").get("woke") == int((START + 6) * 1000)
    assert time.perf_counter() - began < 0.5


@pytest.mark.cfemu_config(SLEEPY, start=START)
async def test_a_cancelled_worker_sleep_cancels_its_clock_timer(cfemu_runtime):
    rt = cfemu_runtime
    events = rt.worker_module("worker").events
    events.clear()
    await rt.fetch("/start?s=30")
    await rt.advance(10)
    assert rt.clock.next_due() == START + 30
    await rt.fetch("/cancel")
    await rt.settle()
    assert events == [("cancelled", int((START + 10) * 1000))]
    assert rt.clock.next_due() is None  # the sleep's timer went with it
    await rt.advance(60)
    assert events == [("cancelled", int((START + 10) * 1000))]


@pytest.mark.parametrize("how", ["wait_for", "timeout"])
@pytest.mark.cfemu_config(SLEEPY, start=START)
async def test_worker_wait_for_and_timeout_count_virtual_time(cfemu_runtime, how):
    rt = cfemu_runtime
    events = rt.worker_module("worker").events
    events.clear()
    began = time.perf_counter()
    # the 30 s sleep outlasts the 5 s limit: TimeoutError at +5, and the sleep's timer is gone
    call = asyncio.ensure_future(rt.fetch(f"/{how}?s=30"))
    await rt.advance(4.9)
    assert not call.done() and events == []
    await rt.advance(0.1)
    assert await (await asyncio.wait_for(call, 1)).text() == how
    assert events == [(how, "timeout", int((START + 5) * 1000))]
    assert rt.clock.next_due() is None
    # a 2 s sleep inside the 5 s limit finishes, and the limit's timer is gone
    call = asyncio.ensure_future(rt.fetch(f"/{how}?s=2"))
    await rt.advance(2)
    await asyncio.wait_for(call, 1)
    assert events[-1] == (how, "finished", int((START + 7) * 1000))
    assert rt.clock.next_due() is None
    assert time.perf_counter() - began < 0.5


@pytest.mark.cfemu_config(SLEEPY, start=START)
async def test_sleeps_outside_worker_code_stay_real(cfemu_runtime):
    rt = cfemu_runtime
    began = time.perf_counter()
    await asyncio.sleep(0.02)  # the test's own sleep is not the worker's
    assert time.perf_counter() - began >= 0.015
    assert rt.now() == START
    assert await asyncio.wait_for(asyncio.sleep(0.001, "r"), 1) == "r"
    await (await rt.fetch("/nap?s=0")).text()  # sleep(0) only yields, even in worker code
    assert rt.clock.next_due() is None


async def test_with_a_real_clock_worker_sleeps_are_real():
    async with Runtime.from_config(Path(__file__).parent / SLEEPY, clock="real") as rt:
        began = time.perf_counter()
        await (await rt.fetch("/nap?s=0.05")).text()
        assert time.perf_counter() - began >= 0.045


@pytest.mark.cfemu_config(SLEEPY, start=START)
async def test_a_sleep_nobody_advances_past_gets_a_hint(cfemu_runtime, caplog, monkeypatch):
    monkeypatch.setattr(VirtualClock, "STALL_HINT_AFTER", 0.01)
    call = asyncio.ensure_future(cfemu_runtime.fetch("/nap?s=10"))
    with caplog.at_level(logging.WARNING, logger="cfemu"):
        await asyncio.sleep(0.05)
    assert "virtual time moves only when the test calls advance()" in caplog.text
    await cfemu_runtime.advance(10)
    await asyncio.wait_for(call, 1)


async def test_closing_a_runtime_does_not_wait_for_virtual_sleepers():
    async with Runtime.from_config(Path(__file__).parent / SLEEPY, start=START) as rt:
        await rt.fetch("/later?s=3600")
        began = time.perf_counter()
    assert time.perf_counter() - began < 1


@settings(max_examples=60, deadline=None)
@given(sleep_s=st.integers(1, 50), limit_s=st.integers(1, 50), how=st.sampled_from(["wait_for", "timeout"]),
       steps=st.lists(st.integers(1, 20), min_size=1, max_size=6))
def test_virtual_sleep_under_a_limit_matches_the_model(sleep_s, limit_s, how, steps):
    # Model: the sleep finishes at +sleep_s unless the limit (armed first) comes at or before it.
    async def main() -> None:
        async with Runtime.from_config(Path(__file__).parent / SLEEPY, start=START) as rt:
            outcome = []

            async def guarded() -> None:
                try:
                    if how == "wait_for":
                        await asyncio.wait_for(asyncio.sleep(sleep_s), limit_s)
                    else:
                        async with asyncio.timeout(limit_s):
                            await asyncio.sleep(sleep_s)
                    outcome.append(("finished", rt.now() - START))
                except TimeoutError:
                    outcome.append(("timeout", rt.now() - START))

            rt.core.spawn(guarded())
            await rt.settle()
            elapsed = 0
            end = min(sleep_s, limit_s)
            for step in steps:
                elapsed += step
                await rt.advance(step)
                assert (outcome != []) == (elapsed >= end)
            await rt.advance(end)
            assert outcome == [("timeout" if limit_s <= sleep_s else "finished", end)]
            assert rt.clock.next_due() is None  # neither the sleep's nor the limit's timer is left

    asyncio.run(main())
