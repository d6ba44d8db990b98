"""At-least-once across crashes: what send() confirmed is delivered after a restart until acked."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_harness import Harness

TOML = """
[[queues.producers]]
binding = "Q"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
max_batch_size = 3
max_batch_timeout = 1
max_retries = 2
retry_delay = 2
dead_letter_queue = "dlq"
max_concurrency = 2

[[queues.consumers]]
queue = "dlq"
max_batch_timeout = 1
"""


def _bodies(h, queue="jobs"):
    return [(body, n) for q, messages in h.worker.deliveries if q == queue for _, body, n in messages]


async def test_crash_after_send_delivers_after_restart(make_runtime):
    h = await make_runtime(TOML)
    await h.rt.env.Q.sendBatch([{"body": i} for i in range(2)])
    await h.rt.env.Q.send("delayed", delaySeconds=30)
    await h.rt.advance(0.5)  # the partial batch is still waiting for its timeout
    await h.restart_after_crash()
    assert h.service.pending("jobs") == 3
    await h.rt.advance(1)
    assert _bodies(h) == [(0, 1), (1, 1)]
    await h.rt.advance(28.4)
    assert len(_bodies(h)) == 2  # the delay is kept across the restart
    await h.rt.advance(1.1)
    assert _bodies(h)[-1] == ("delayed", 1)
    assert h.service.pending("jobs") == 0


async def test_crash_while_handler_runs_redelivers(make_runtime):
    h = await make_runtime(TOML)
    started = asyncio.Event()

    async def hang(batch, env):
        started.set()
        await asyncio.Event().wait()

    h.worker.behaviour = hang
    await h.rt.env.Q.sendBatch([{"body": "a"}, {"body": "b"}])
    await h.rt.advance(1)
    assert started.is_set() and h.service.in_flight("jobs") == 2
    (jobs,) = [c for c in h.service.stats() if c.queue == "jobs"]
    assert (jobs.depth, jobs.in_flight) == (2, 2)
    await h.restart_after_crash()
    h.worker.behaviour = None
    await h.rt.advance(1)
    # Redelivered; the interrupted delivery counted as an attempt.
    assert _bodies(h) == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert h.service.pending("jobs") == 0


async def test_acked_messages_are_not_redelivered(make_runtime):
    h = await make_runtime(TOML)
    h.worker.behaviour = lambda batch, env: batch.messages[0].retry(delaySeconds=10)
    await h.rt.env.Q.sendBatch([{"body": "retried"}, {"body": "acked"}])
    await h.rt.advance(1)
    await h.restart_after_crash()
    h.worker.behaviour = None
    await h.rt.advance(9.5)
    assert [b for b, _ in _bodies(h)] == ["retried", "acked"]
    await h.rt.advance(1.5)  # visible again at 11 s, then the 1 s batch timeout
    assert _bodies(h)[-1] == ("retried", 2)
    assert h.service.pending("jobs") == 0


async def test_crash_during_last_attempt_dead_letters(make_runtime):
    h = await make_runtime(TOML)

    async def behaviour(batch, env):
        if batch.queue == "jobs":
            if batch.messages[0].attempts < 3:
                raise RuntimeError("fail")
            await asyncio.Event().wait()  # the third and last attempt never finishes

    h.worker.behaviour = behaviour
    await h.rt.env.Q.send("poison")
    await h.rt.advance(10)
    assert _bodies(h) == [("poison", 1), ("poison", 2), ("poison", 3)]
    await h.restart_after_crash()
    await h.rt.advance(2)
    # It used all its attempts: it goes to the dead letter queue instead of a fourth delivery.
    assert _bodies(h, "dlq") == [("poison", 1)]
    assert h.service.pending("jobs") == h.service.pending("dlq") == 0


async def test_clean_close_finishes_batches_in_flight(make_runtime):
    h = await make_runtime(TOML)
    release = asyncio.Event()

    async def slow(batch, env):
        await release.wait()

    h.worker.behaviour = slow
    await h.rt.env.Q.send("x")
    await h.rt.advance(1)
    asyncio.get_running_loop().call_later(0.01, release.set)
    await h.rt.close()
    await h.start()
    await h.rt.advance(5)
    assert h.worker.deliveries == [] and h.service.pending("jobs") == 0


async def test_state_lives_under_the_state_dir(make_runtime):
    h = await make_runtime(TOML)
    await h.rt.env.Q.send(1)
    assert (h.state_dir / "queues" / "queues.sqlite3").is_file()


# -- property: nothing confirmed is ever lost ------------------------------------------------------

_ACTIONS = st.sampled_from(["ack", "retry", "implicit", "raise", "hang"])
_OPS = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 4), st.sampled_from([0, 0, 3])),
    # 900 s: a hanging handler reaches the wall-time limit and its batch is retried.
    st.tuples(st.just("advance"), st.sampled_from([0, 0.5, 1, 2, 5, 10, 900])),
    st.tuples(st.just("crash")),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_OPS, min_size=1, max_size=12), plans=st.lists(st.lists(_ACTIONS, max_size=4), min_size=1, max_size=8))
def test_at_least_once_under_random_failures_and_crashes(ops, plans):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp), ops, plans))


async def _scenario(tmp: Path, ops, plans) -> None:
    h = Harness(tmp, TOML)
    await h.start()
    sent: list[int] = []
    done: set[int] = set()  # acked on "jobs", or delivered (and so acked) on the dead letter queue
    flying: set[int] = set()
    draining = False

    async def behaviour(batch, env):
        bodies = [m.body for m in batch.messages]
        for body in bodies:
            assert body not in flying, f"message {body} delivered twice at once"
        flying.update(bodies)
        try:
            if batch.queue == "dlq":
                done.update(bodies)
                return
            actions = {}
            for m in batch.messages:
                plan = plans[m.body % len(plans)]
                action = "ack" if m.attempts > len(plan) else plan[m.attempts - 1]
                # While draining nothing may hang for good: a hang becomes a failure instead.
                actions[m.body] = "raise" if draining and action == "hang" else action
            for m in batch.messages:
                if actions[m.body] == "ack":
                    m.ack()
                    done.add(m.body)
                elif actions[m.body] == "retry":
                    m.retry()
            if "hang" in actions.values():
                await asyncio.Event().wait()
            if "raise" in actions.values():
                raise RuntimeError("planned failure")
            done.update(b for b, a in actions.items() if a == "implicit")
        finally:
            flying.difference_update(bodies)

    h.worker.behaviour = behaviour
    for op in ops:
        if op[0] == "send":
            _, count, delay = op
            first = len(sent)
            bodies = list(range(first, first + count))
            await h.rt.env.Q.sendBatch([{"body": b} for b in bodies], delaySeconds=delay)
            sent.extend(bodies)
        elif op[0] == "advance":
            await h.rt.advance(op[1])
        else:
            await h.restart_after_crash()
            flying.clear()
    # Drain: free anything hanging, then let every retry, delay and dead letter run its course.
    draining = True
    await h.restart_after_crash()
    flying.clear()
    await h.rt.advance(60)
    assert h.service.pending("jobs") == 0
    assert h.service.pending("dlq") == 0
    assert set(sent) <= done, f"lost: {sorted(set(sent) - done)}"
    await h.close()


async def test_a_failing_store_write_redelivers_instead_of_forgetting(make_runtime, monkeypatch):
    h = await make_runtime(TOML)
    store = h.service.broker.store
    real_settle = store.settle
    failures = []

    def flaky_settle(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OSError("disk full")
        return real_settle(*args, **kwargs)

    monkeypatch.setattr(store, "settle", flaky_settle)
    await h.rt.env.Q.send("m")
    await h.rt.advance(1)
    assert failures and h.service.pending("jobs") == 1
    await h.rt.advance(1)
    assert _bodies(h) == [("m", 1), ("m", 2)]
    assert h.service.pending("jobs") == 0


async def test_close_leaves_no_queue_timer_behind(make_runtime):
    """Batch timeouts, delays, retries and wall-time limits are all cancelled by a clean close."""
    h = await make_runtime(TOML)

    async def behaviour(batch, env):
        batch.retryAll(delaySeconds=30)

    h.worker.behaviour = behaviour
    await h.rt.env.Q.send("delayed", delaySeconds=100)
    await h.rt.env.Q.send("retried")
    await h.rt.advance(1)  # delivered and retried: a retry timer is pending
    await h.rt.env.Q.send("waiting")  # a batch-timeout timer is pending
    await h.rt.close()
    assert h.clock.pop_due(h.clock.now() + 10_000) is None
    await h.start(reset=False)
    assert h.service.pending("jobs") == 3  # all still stored for the next run
