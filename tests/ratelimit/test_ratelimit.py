"""The Rate Limiting binding: fixed windows on the virtual clock, per-key budgets, restarts, errors."""

from __future__ import annotations

import pytest

from cfemu.errors import JsException
from cfemu.testing import Runtime

# A multiple of 60 (and of 10): windows start exactly here.
START = 1_800_000_000.0 - (1_800_000_000 % 60)

WORKER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        key = request.headers.get("x-user") or "anonymous"
        outcome = await self.env.RL.limit(key=key)
        if not outcome.success:
            return Response("slow down", status=429)
        return Response("ok")
"""

TOML = """
[[ratelimits]]
name = "RL"
namespace_id = "1001"
simple = { limit = 3, period = 10 }
"""


@pytest.fixture
def config(tmp_path, write_worker):
    return write_worker(tmp_path / "app", WORKER, TOML)


async def statuses(rt, n, user="ann"):
    return [(await rt.fetch("/", headers={"x-user": user})).status for _ in range(n)]


async def test_limit_within_a_window_and_reset_at_the_next(config):
    async with Runtime.from_config(config, start=START) as rt:
        assert await statuses(rt, 4) == [200, 200, 200, 429]
        await rt.advance(9.999)
        assert await statuses(rt, 1) == [429]
        await rt.advance(0.001)  # the window boundary: a multiple of the period since the epoch
        assert await statuses(rt, 4) == [200, 200, 200, 429]


async def test_windows_are_fixed_not_sliding(config):
    async with Runtime.from_config(config, start=START + 9) as rt:
        assert await statuses(rt, 3) == [200, 200, 200]
        await rt.advance(1)  # one second later is a new window: the whole budget is back
        assert await statuses(rt, 3) == [200, 200, 200]


async def test_keys_have_separate_budgets(config):
    async with Runtime.from_config(config, start=START) as rt:
        assert await statuses(rt, 4, "ann") == [200, 200, 200, 429]
        assert await statuses(rt, 3, "bob") == [200, 200, 200]


async def test_counts_survive_restart_and_crash(config, tmp_path):
    state = tmp_path / "state"
    async with Runtime.from_config(config, persist_to=state, start=START) as rt:
        assert await statuses(rt, 2) == [200, 200]
    async with Runtime.from_config(config, persist_to=state, start=START + 1) as rt:
        assert await statuses(rt, 2) == [200, 429]
        await rt.crash()
        await rt.restart()
        assert await statuses(rt, 1) == [429]
        await rt.advance(10)
        assert await statuses(rt, 1) == [200]
    assert (state / "ratelimit" / "counters.sqlite").is_file()


async def test_option_forms_and_result_shape(config):
    async with Runtime.from_config(config, start=START) as rt:
        rl = rt.env.RL
        result = await rl.limit({"key": "k"})
        assert result == {"success": True} and result.success is True
        assert (await rl.limit(key="k"))["success"] is True
        assert (await rl.limit({"key": "k"}))["success"] is True
        assert (await rl.limit(key="k"))["success"] is False
        # limit and period may be given per call.
        assert (await rl.limit(key="k", limit=5)).success is True
        assert (await rl.limit(key="other", period=60, limit=1)).success is True
        assert (await rl.limit(key="other", period=60, limit=1)).success is False


async def test_errors(config):
    async with Runtime.from_config(config, start=START) as rt:
        rl = rt.env.RL
        cases = [
            (rl.limit(), "invalid key: undefined"),
            (rl.limit({}), "invalid key: undefined"),
            (rl.limit(key=None), "invalid key: null"),
            (rl.limit(key=42), "invalid key: 42"),
            (rl.limit("user-1"), "invalid rate limit options"),
            (rl.limit({"key": "k", "burst": 2, "x": 1}), "bad rate limit options: [burst,x]"),
            (rl.limit(key="k", period=30), "unsupported period: 30"),
            (rl.limit(key="k", period="10"), "period must be a number: 10"),
            (rl.limit(key="k", limit="many"), "limit must be a number: many"),
        ]
        for call, message in cases:
            with pytest.raises(JsException) as info:
                await call
            assert str(info.value) == message and info.value.name == "Error"


async def test_unsafe_binding_form_and_shared_namespaces(tmp_path, write_worker):
    config = write_worker(tmp_path / "app", WORKER, """
[[ratelimits]]
name = "RL"
namespace_id = "7"
simple = { limit = 2, period = 60 }

[[unsafe.bindings]]
name = "SAME_NAMESPACE"
type = "ratelimit"
namespace_id = "7"
simple = { limit = 2, period = 60 }

[[unsafe.bindings]]
name = "OTHER"
type = "ratelimit"
namespace_id = "8"
simple = { limit = 1, period = 10 }
""")
    async with Runtime.from_config(config, start=START) as rt:
        assert (await rt.env.RL.limit(key="k")).success is True
        assert (await rt.env.SAME_NAMESPACE.limit(key="k")).success is True
        assert (await rt.env.RL.limit(key="k")).success is False  # one namespace, one counter
        assert (await rt.env.OTHER.limit(key="k")).success is True
        assert (await rt.env.OTHER.limit(key="k")).success is False
        await rt.advance(10)
        assert (await rt.env.OTHER.limit(key="k")).success is True
        assert (await rt.env.RL.limit(key="k")).success is False  # 60 s window still running
        await rt.advance(50)
        assert (await rt.env.RL.limit(key="k")).success is True


async def test_standalone_limiter(tmp_path):
    from cfemu.clock import VirtualClock
    from cfemu.ratelimit import RateLimiter, RateLimitStore

    clock = VirtualClock(START)
    store = RateLimitStore(tmp_path / "rl.sqlite")
    rl = RateLimiter(store, namespace_id="1", limit=1, period=10, clock=clock)
    assert (await rl.limit(key="a")).success and not (await rl.limit(key="a")).success
    clock.set(START + 10)
    assert (await rl.limit(key="a")).success
    store.close()


async def test_keys_with_lone_surrogates_count_like_their_utf8_form(tmp_path):
    # A JS string key reaches Cloudflare UTF-8 encoded: a lone surrogate becomes U+FFFD.
    from cfemu.clock import VirtualClock
    from cfemu.ratelimit import RateLimiter, RateLimitStore

    store = RateLimitStore(tmp_path / "rl.sqlite")
    rl = RateLimiter(store, namespace_id="1", limit=2, period=10, clock=VirtualClock(START))
    assert (await rl.limit(key="a\ud800")).success
    assert (await rl.limit(key="a\udfff")).success
    assert not (await rl.limit(key="a\ufffd")).success
    store.close()


async def test_counters_of_ended_windows_are_forgotten_while_running(tmp_path, monkeypatch):
    import cfemu.ratelimit as ratelimit
    from cfemu.clock import VirtualClock

    monkeypatch.setattr(ratelimit, "_PURGE_EVERY", 10)
    clock = VirtualClock(START)
    store = ratelimit.RateLimitStore(tmp_path / "rl.sqlite")
    rl = ratelimit.RateLimiter(store, namespace_id="1", limit=5, period=10, clock=clock)
    for i in range(9):
        await rl.limit(key=f"ip-{i}")
    clock.set(START + 10)
    await rl.limit(key="late")  # the 10th call sweeps the ended window
    assert store._db.execute("SELECT count(*) FROM counters").fetchone()[0] == 1
    store.close()
