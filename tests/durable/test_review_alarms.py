"""Review of issue 3: alarms — second reviewer's tests (xfail(strict=True) = finding)."""

import asyncio

import pytest

from cfemu.errors import JsException

from review_support import spin

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")


def now_ms(rt):
    return int(rt.now() * 1000)


def runs(rt, name):
    return rt.storage("PROBE", name).get("runs") or []


async def test_alarm_set_in_handler_that_comes_due_during_the_handler_still_fires(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("rearm")
    start = now_ms(rt)
    await stub.set_alarm(start + 1000, "rearm")
    await rt.advance(1.5)  # handler runs at +1 s, sets an alarm for +2 s, keeps running until +3 s
    assert len(runs(rt, "rearm")) == 1
    await rt.advance(5)
    got = runs(rt, "rearm")
    assert len(got) == 2
    assert got[1]["at"] >= start + 3000  # after the first handler finished


async def test_failed_delete_alarm_leaves_the_alarm_firing(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("fda")
    when = now_ms(rt) + 10_000
    await stub.set_alarm(when)
    rt.fail_next_storage_write("PROBE", "fda")
    with pytest.raises(JsException):
        await stub.delete_alarm()
    assert await stub.get_alarm() == when  # the delete never became durable
    await rt.advance(20)
    assert len(runs(rt, "fda")) == 1


async def test_crash_during_alarm_handler_runs_the_alarm_again(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("crashy")
    await stub.set_alarm(now_ms(rt) + 1000, "hang")
    advancing = asyncio.ensure_future(rt.advance(2))
    for _ in range(200):
        await asyncio.sleep(0)
        if ("alarm", "hang", 1) in mod.LOG:
            break
    assert ("alarm", "hang", 1) in mod.LOG
    await spin()  # the handler's writes commit; the handler itself is still running
    await rt.crash()
    mod.gate("alarm-hang").set()  # release the dead runtime's handler
    await spin()
    advancing.cancel()
    try:
        await advancing
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the crashed runtime's advance
        pass
    await rt.restart()
    await rt.advance(100)
    # the handler ran again after the restart
    assert sum(1 for entry in mod.LOG if entry[0] == "alarm") >= 2
    assert len(runs(rt, "crashy")) == 2
    assert await rt.env.PROBE.getByName("crashy").get_alarm() is None


# -- rules that hold today ----------------------------------------------------------------------

async def test_alarm_set_in_handler_for_now_fires_again(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("again")
    await stub.set_alarm(now_ms(rt) + 1000, "rearm_now")
    await rt.advance(2)
    assert len(runs(rt, "again")) == 2
    assert await stub.get_alarm() is None


async def test_delete_alarm_cancels(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("del")
    await stub.set_alarm(now_ms(rt) + 5000)
    await stub.delete_alarm()
    assert await stub.get_alarm() is None
    await rt.advance(60)
    assert runs(rt, "del") == []


async def test_set_alarm_replaces_the_previous_one(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("repl")
    start = now_ms(rt)
    await stub.set_alarm(start + 5000)
    await stub.set_alarm(start + 20_000)
    await rt.advance(10)
    assert runs(rt, "repl") == []
    await rt.advance(15)
    assert [r["at"] for r in runs(rt, "repl")] == [start + 20_000]


async def test_alarm_in_the_past_fires_promptly(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("past")
    await stub.set_alarm(now_ms(rt) - 60_000)
    await rt.advance(0)
    assert len(runs(rt, "past")) == 1
    assert await stub.get_alarm() is None


async def test_alarm_info_on_first_run(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("info")
    await stub.set_alarm(now_ms(rt) + 1000)
    await rt.advance(1)
    assert [r["retryCount"] for r in runs(rt, "info")] == [0]
