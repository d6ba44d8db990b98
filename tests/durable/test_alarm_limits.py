"""The alarm handler's wall-time limit.

Production (workerd api/global-scope.c++, runAlarm): the handler races a 15-minute limit timer;
when it wins, the event is aborted (OVERLOADED "Alarm exceeded its allowed execution time", the
object is reset) and the alarm is retried with the usual backoff, the retry counting against the
limit of retries.
"""

import pytest

pytestmark = pytest.mark.cfemu_config("workers/review/wrangler.toml")


def now_ms(rt):
    return int(rt.now() * 1000)


def runs(rt, name):
    return rt.storage("PROBE", name).get("runs") or []


async def test_alarm_handler_running_past_15_minutes_is_canceled_and_retried(cfemu_runtime, mod):
    rt = cfemu_runtime
    stub = rt.env.PROBE.getByName("alarm-slow")
    assert await stub.bump() == 1
    await stub.set_alarm(now_ms(rt) + 1000, "slow")
    await rt.advance(1)  # the handler starts and sleeps for 20 minutes
    assert len(runs(rt, "alarm-slow")) == 1
    await rt.advance(15 * 60 - 1)
    assert await stub.bump() == 2  # still the same instance, handler still running
    await rt.advance(2)  # past 15 minutes: canceled, the object reset, a retry due 2 s later
    assert await stub.bump() == 1
    await rt.advance(3)
    got = runs(rt, "alarm-slow")
    assert [run["retryCount"] for run in got] == [0, 1]
    await rt.advance(20 * 60)
    assert ("alarm slept", 1) not in mod.LOG  # the canceled handler never went on
    assert await stub.get_alarm() is None
