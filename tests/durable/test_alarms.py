import pytest

pytestmark = pytest.mark.cfemu_config("workers/basic/wrangler.toml")


def runs(rt, name):
    return rt.storage("STORE", name).get("runs")


async def test_alarm_fires_on_the_clock(cfemu_runtime):
    rt = cfemu_runtime
    stub = rt.env.STORE.getByName("a")
    start = rt.now()
    await stub.set_alarm_in(10)
    assert await stub.get_alarm() == int(start * 1000) + 10_000
    await rt.advance(9.5)
    assert runs(rt, "a") == []
    await rt.advance(1)
    assert [(r["retryCount"], r["isRetry"]) for r in runs(rt, "a")] == [(0, False)]
    assert runs(rt, "a")[0]["at"] == int(start * 1000) + 10_000
    assert await stub.get_alarm() is None
    await rt.advance(100)
    assert len(runs(rt, "a")) == 1


async def test_raising_alarm_retries_with_backoff(cfemu_runtime):
    rt = cfemu_runtime
    stub = rt.env.STORE.getByName("retry")
    start_ms = int(rt.now() * 1000)
    await stub.set_alarm_in(1, fail_times=3)
    await rt.advance(1 + 2 + 4 + 8 + 0.5)
    got = runs(rt, "retry")
    assert [(r["retryCount"], r["isRetry"]) for r in got] == [(0, False), (1, True), (2, True), (3, True)]
    offsets = [r["at"] - start_ms for r in got]
    assert offsets == [1000, 3000, 7000, 15000]


async def test_alarm_dropped_after_six_retries(cfemu_runtime):
    rt = cfemu_runtime
    stub = rt.env.STORE.getByName("doomed")
    await stub.set_alarm_in(1, fail_times=100)
    await rt.advance(1 + 2 + 4 + 8 + 16 + 32 + 64 + 1000)
    assert [r["retryCount"] for r in runs(rt, "doomed")] == [0, 1, 2, 3, 4, 5, 6]
    assert await stub.get_alarm() is None


async def test_alarm_survives_restart_and_fires_when_due_while_stopped(cfemu_runtime):
    rt = cfemu_runtime
    stub = rt.env.STORE.getByName("p")
    await stub.set_alarm_in(30)
    await rt.crash()
    rt.clock.set(rt.now() + 60)  # time passes while the runtime is down
    await rt.restart()
    await rt.advance(0)
    assert len(runs(rt, "p")) == 1


async def test_run_alarm_now(cfemu_runtime):
    rt = cfemu_runtime
    stub = rt.env.STORE.getByName("now")
    await stub.set_alarm_in(3600)
    await rt.run_alarm("STORE", "now")
    assert len(runs(rt, "now")) == 1
    await rt.advance(3600)
    assert len(runs(rt, "now")) == 1


async def test_retry_count_survives_a_restart(cfemu_runtime):
    rt = cfemu_runtime
    stub = rt.env.STORE.getByName("rr")
    await stub.set_alarm_in(1, fail_times=100)
    await rt.advance(1 + 2 + 0.5)  # first run and retry 1 have failed; retry 2 is due in 4 s
    assert [r["retryCount"] for r in runs(rt, "rr")] == [0, 1]
    await rt.crash()
    await rt.restart()
    await rt.advance(4)
    assert [r["retryCount"] for r in runs(rt, "rr")] == [0, 1, 2]
