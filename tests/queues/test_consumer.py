"""Consumer delivery: batching on the clock, ack/retry rules, retries, dead letters, delays, concurrency."""

from __future__ import annotations

import asyncio
import logging


def consumer_toml(**settings) -> str:
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items())
    return f"""
[[queues.producers]]
binding = "Q"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
{lines}"""


def delivered(h, queue: str = "jobs") -> list[list]:
    """Bodies per delivered batch of `queue`."""
    return [[body for _, body, _ in messages] for q, messages in h.worker.deliveries if q == queue]


def attempts(h, queue: str = "jobs") -> list[tuple]:
    return [(body, n) for q, messages in h.worker.deliveries if q == queue for _, body, n in messages]


# -- batching -------------------------------------------------------------------------------------


async def test_defaults_batch_of_10_or_5_seconds(make_runtime):
    h = await make_runtime(consumer_toml())
    await h.rt.env.Q.sendBatch([{"body": i} for i in range(25)])
    await h.rt.advance(0)
    # Two full batches go at once; the rest waits for the 5 s batch timeout.
    assert delivered(h) == [list(range(10)), list(range(10, 20))]
    await h.rt.advance(4.999)
    assert len(delivered(h)) == 2
    await h.rt.advance(0.001)
    assert delivered(h)[2] == list(range(20, 25))
    assert h.service.pending("jobs") == 0


async def test_batch_by_size(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_size=3, max_batch_timeout=30))
    for i in range(2):
        await h.rt.env.Q.send(i)
    await h.rt.advance(0)
    assert delivered(h) == []
    await h.rt.env.Q.send(2)  # the third message fills the batch: delivered without waiting
    await h.rt.advance(0)
    assert delivered(h) == [[0, 1, 2]]


async def test_batch_by_timeout_counts_from_first_waiting_message(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_size=100, max_batch_timeout=2))
    await h.rt.env.Q.send("a")
    await h.rt.advance(1.5)
    await h.rt.env.Q.send("b")
    await h.rt.advance(0.4)
    assert delivered(h) == []
    await h.rt.advance(0.1)
    assert delivered(h) == [["a", "b"]]
    await h.rt.env.Q.send("c")
    await h.rt.advance(1.9)
    assert len(delivered(h)) == 1
    await h.rt.advance(0.1)
    assert delivered(h) == [["a", "b"], ["c"]]


async def test_zero_batch_timeout_delivers_at_once(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=0))
    await h.rt.env.Q.send("now")
    await h.rt.advance(0)
    assert delivered(h) == [["now"]]


# -- acknowledgement rules --------------------------------------------------------------------------


async def test_returning_acks_everything_not_retried(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=1))

    def behaviour(batch, env):
        for m in batch.messages:
            if m.body == "again" and m.attempts == 1:
                m.retry()

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": "ok"}, {"body": "again"}])
    await h.rt.advance(1)
    assert h.service.pending("jobs") == 1
    await h.rt.advance(1)
    assert attempts(h) == [("ok", 1), ("again", 1), ("again", 2)]
    assert h.service.pending("jobs") == 0


async def test_raising_retries_everything_not_acked(make_runtime, caplog):
    h = await make_runtime(consumer_toml(max_batch_timeout=1))

    def behaviour(batch, env):
        if batch.messages[0].attempts == 1:
            batch.messages[0].ack()
            raise RuntimeError("boom")

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": "acked"}, {"body": "b"}, {"body": "c"}])
    with caplog.at_level(logging.ERROR, logger="cfemu"):
        await h.rt.advance(1)
    assert "boom" in caplog.text
    assert h.service.pending("jobs") == 2
    await h.rt.advance(1)
    assert attempts(h) == [("acked", 1), ("b", 1), ("c", 1), ("b", 2), ("c", 2)]
    assert h.service.pending("jobs") == 0


async def test_ack_all_survives_a_raise_and_retry_all_overrides_return(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=1))
    calls = []

    def behaviour(batch, env):
        calls.append([m.body for m in batch.messages])
        if batch.messages[0].body == "ack-all-then-raise":
            batch.ackAll()
            raise ValueError("after ackAll")
        if batch.messages[0].attempts == 1:
            batch.retryAll()

    h.worker.behaviour = behaviour
    await h.rt.env.Q.send("ack-all-then-raise")
    await h.rt.advance(1)
    assert h.service.pending("jobs") == 0
    await h.rt.env.Q.send("retry-all")
    await h.rt.advance(1)
    assert h.service.pending("jobs") == 1
    await h.rt.advance(1)
    assert calls == [["ack-all-then-raise"], ["retry-all"], ["retry-all"]]
    assert h.service.pending("jobs") == 0


async def test_per_message_calls_beat_batch_calls_and_first_call_wins(make_runtime, caplog):
    h = await make_runtime(consumer_toml(max_batch_timeout=1))

    def behaviour(batch, env):
        if batch.messages[0].attempts > 1:
            return
        a, b, c, d = batch.messages
        a.ack()
        b.retry()
        batch.retryAll()  # covers c and d only; a stays acked
        a.retry()  # first call on `a` won: ignored
        c.ack()  # after retryAll(): ignored with a warning
        b.ack()  # first call on `b` won: ignored
        batch.ackAll()  # after retryAll(): ignored

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": x} for x in "abcd"])
    with caplog.at_level(logging.WARNING, logger="cfemu.queues"):
        await h.rt.advance(1)
    assert sorted(m.body for m in h.service.messages("jobs")) == ["b", "c", "d"]
    assert "after ack() was already called" in caplog.text
    assert "after retryAll() was already called" in caplog.text
    assert "Calling ackAll() after calling retryAll() has no effect." in caplog.text


async def test_message_calls_before_ack_all_keep_their_effect(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=1))

    def behaviour(batch, env):
        if batch.messages[0].attempts == 1:
            batch.messages[1].retry()
            batch.ackAll()
            batch.messages[2].retry()  # after ackAll(): ignored

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": x} for x in "xyz"])
    await h.rt.advance(1)
    assert [m.body for m in h.service.messages("jobs")] == ["y"]


# -- retry delays ---------------------------------------------------------------------------------


async def test_retry_delays_on_the_clock(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=0, retry_delay=30, max_retries=10))
    times: dict[str, list[float]] = {}

    def behaviour(batch, env):
        for m in batch.messages:
            times.setdefault(m.body, []).append(h.clock.now() - h.t0)
            if m.body == "own" and m.attempts < 3:
                m.retry(delaySeconds=7)
            elif m.body == "default" and m.attempts < 2:
                m.retry()
        if batch.messages[0].body == "all" and batch.messages[0].attempts < 2:
            batch.retryAll(delaySeconds=100)
        if batch.messages[0].body == "raise" and batch.messages[0].attempts < 2:
            raise RuntimeError("fail")

    h.worker.behaviour = behaviour
    for body in ("own", "default", "all", "raise"):
        await h.rt.env.Q.send(body)
        await h.rt.advance(0)
    await h.rt.advance(200)
    assert times == {
        "own": [0, 7, 14],  # its own delaySeconds
        "default": [0, 30],  # the consumer's retry_delay
        "all": [0, 100],  # retryAll's delaySeconds
        "raise": [0, 30],  # a raising handler retries after retry_delay
    }
    assert h.service.pending("jobs") == 0


async def test_attempts_increase_and_max_retries_drops_without_dlq(make_runtime, caplog):
    h = await make_runtime(consumer_toml(max_batch_timeout=1, max_retries=2))

    def behaviour(batch, env):
        raise RuntimeError("always")

    h.worker.behaviour = behaviour
    await h.rt.env.Q.send("poison")
    with caplog.at_level(logging.WARNING, logger="cfemu"):
        await h.rt.advance(10)
    assert attempts(h) == [("poison", 1), ("poison", 2), ("poison", 3)]
    assert h.service.pending("jobs") == 0
    assert 'Dropped message "' in caplog.text and "after 3 failed attempts" in caplog.text
    (counts,) = [c for c in h.service.stats() if c.queue == "jobs"]
    assert (counts.dropped, counts.retried, counts.dead_lettered) == (1, 2, 0)


async def test_default_max_retries_is_3(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=1))
    h.worker.behaviour = lambda batch, env: batch.retryAll()
    await h.rt.env.Q.send("m")
    await h.rt.advance(30)
    assert [n for _, n in attempts(h)] == [1, 2, 3, 4]


async def test_dead_letter_queue_with_its_own_consumer(make_runtime, caplog):
    h = await make_runtime("""
[[queues.producers]]
binding = "Q"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
max_batch_timeout = 1
max_retries = 1
dead_letter_queue = "jobs-dlq"

[[queues.consumers]]
queue = "jobs-dlq"
max_batch_timeout = 2
""")

    def behaviour(batch, env):
        if batch.queue == "jobs":
            for m in batch.messages:
                if m.body != "fine":
                    m.retry()

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": "fine"}, {"body": "bad", "contentType": "text"}])
    await h.rt.advance(1)
    first_id = [i for _, messages in h.worker.deliveries for i, body, _ in messages if body == "bad"][0]
    with caplog.at_level(logging.WARNING, logger="cfemu"):
        await h.rt.advance(1)
    assert "to dead letter queue" in caplog.text
    assert h.service.pending("jobs") == 0
    assert [m.body for m in h.service.messages("jobs-dlq")] == ["bad"]
    await h.rt.advance(2)
    (dlq_batch,) = [messages for q, messages in h.worker.deliveries if q == "jobs-dlq"]
    # The dead letter keeps its id and body; its attempts start again on the new queue.
    assert dlq_batch == [(first_id, "bad", 1)]
    assert h.service.pending("jobs-dlq") == 0
    counts = {c.queue: c for c in h.service.stats()}
    assert counts["jobs"].dead_lettered == 1 and counts["jobs-dlq"].acked == 1


async def test_dead_letter_queue_without_consumer_keeps_messages(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=1, max_retries=0, dead_letter_queue="graveyard"))
    h.worker.behaviour = lambda batch, env: batch.retryAll()
    await h.rt.env.Q.sendBatch([{"body": 1}, {"body": 2}])
    await h.rt.advance(5)
    assert h.service.pending("jobs") == 0
    assert [m.body for m in h.service.messages("graveyard")] == [1, 2]


# -- delays ---------------------------------------------------------------------------------------


async def test_delay_seconds_is_honoured(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=0))
    await h.rt.env.Q.send("late", delaySeconds=60)
    await h.rt.env.Q.sendBatch([{"body": "later", "delaySeconds": 120}, {"body": "batch-delay"}], delaySeconds=90)
    await h.rt.env.Q.send("now")
    await h.rt.advance(59.9)
    assert delivered(h) == [["now"]]
    await h.rt.advance(0.1)
    assert delivered(h)[-1] == ["late"]
    await h.rt.advance(30)
    assert delivered(h)[-1] == ["batch-delay"]
    await h.rt.advance(30)
    assert delivered(h)[-1] == ["later"]


async def test_producer_delivery_delay(make_runtime):
    h = await make_runtime("""
[[queues.producers]]
binding = "Q"
queue = "jobs"
delivery_delay = 30

[[queues.consumers]]
queue = "jobs"
max_batch_timeout = 0
""")
    await h.rt.env.Q.send("default-delay")
    await h.rt.env.Q.send("own-delay", delaySeconds=0)
    await h.rt.advance(0)
    assert delivered(h) == [["own-delay"]]
    await h.rt.advance(29.9)
    assert len(delivered(h)) == 1
    await h.rt.advance(0.1)
    assert delivered(h)[-1] == ["default-delay"]


# -- concurrency ----------------------------------------------------------------------------------


async def test_max_concurrency_and_no_double_delivery(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_size=2, max_batch_timeout=1, max_concurrency=2))
    release = asyncio.Event()
    running = []
    peak = []
    seen: list[str] = []

    async def behaviour(batch, env):
        running.append(batch)
        peak.append(len(running))
        seen.extend(m.id for m in batch.messages)
        await release.wait()
        running.remove(batch)

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": i} for i in range(9)])
    await h.rt.advance(5)
    assert len(running) == 2 and h.service.in_flight("jobs") == 4
    release.set()
    await h.rt.advance(5)
    assert max(peak) == 2
    assert len(seen) == len(set(seen)) == 9
    assert h.service.pending("jobs") == 0


async def test_unlimited_concurrency_delivers_full_batches_in_parallel(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_size=1))
    release = asyncio.Event()
    running = []

    async def behaviour(batch, env):
        running.append(1)
        await release.wait()

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": i} for i in range(5)])
    await h.rt.advance(0)
    assert len(running) == 5
    release.set()
    await h.rt.advance(0)
    assert h.service.pending("jobs") == 0


async def test_queue_without_consumer_only_stores(make_runtime, caplog):
    h = await make_runtime("""
[[queues.producers]]
binding = "OUT"
queue = "elsewhere"
""")
    with caplog.at_level(logging.INFO, logger="cfemu"):
        await h.rt.env.OUT.send({"x": 1})
        await h.rt.env.OUT.send({"x": 2})
        await h.rt.advance(100)
    assert h.worker.deliveries == []
    assert [m.body for m in h.service.messages("elsewhere")] == [{"x": 1}, {"x": 2}]
    assert caplog.text.count("has no consumer in this worker") == 1


async def test_purge(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=10))
    await h.rt.env.Q.sendBatch([{"body": i} for i in range(3)])
    await h.rt.env.Q.send("delayed", delaySeconds=5)
    assert h.service.purge("jobs") == 4
    await h.rt.advance(20)
    assert h.worker.deliveries == [] and h.service.pending("jobs") == 0


async def test_retry_without_delay_takes_retry_all_delay_over_retry_delay(make_runtime):
    h = await make_runtime(consumer_toml(max_batch_timeout=0, retry_delay=30, max_retries=5))
    times: list[float] = []

    def behaviour(batch, env):
        times.append(h.clock.now() - h.t0)
        if batch.messages[0].attempts == 1:
            batch.messages[0].retry()
            batch.retryAll(delaySeconds=100)

    h.worker.behaviour = behaviour
    await h.rt.env.Q.send("m")
    await h.rt.advance(99)
    assert times == [0]
    await h.rt.advance(1)
    assert times == [0, 100]


async def test_a_handler_that_never_returns_hits_the_15_minute_wall_time_limit(make_runtime, caplog):
    """Production ends a consumer invocation after 15 minutes; what it did not ack is retried."""
    h = await make_runtime(consumer_toml(max_batch_timeout=1, max_concurrency=1))

    async def behaviour(batch, env):
        if batch.messages[0].attempts == 1:
            batch.messages[0].ack()
            await asyncio.Event().wait()  # never returns

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": "acked"}, {"body": "stuck"}])
    await h.rt.advance(1)
    with caplog.at_level(logging.WARNING, logger="cfemu"):
        await h.rt.advance(899.9)
        assert h.service.in_flight("jobs") == 2 and "wall-time limit" not in caplog.text
        await h.rt.advance(0.1)
    assert "exceeded its wall-time limit of 900 s" in caplog.text
    assert h.service.in_flight("jobs") == 0
    await h.rt.advance(1)
    assert attempts(h) == [("acked", 1), ("stuck", 1), ("stuck", 2)]
    assert h.service.pending("jobs") == 0


async def test_dead_letter_chain_with_max_retries_zero(make_runtime, caplog):
    """jobs -> dlq1 (its own consumer and DLQ) -> dlq2; max_retries = 0 means one delivery per queue."""
    h = await make_runtime("""
[[queues.producers]]
binding = "Q"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
max_batch_timeout = 1
max_retries = 0
dead_letter_queue = "dlq1"

[[queues.consumers]]
queue = "dlq1"
max_batch_timeout = 1
max_retries = 1
retry_delay = 5
dead_letter_queue = "dlq2"
""")

    def behaviour(batch, env):
        raise RuntimeError(f"fail on {batch.queue}")

    h.worker.behaviour = behaviour
    await h.rt.env.Q.send("poison")
    with caplog.at_level(logging.WARNING, logger="cfemu"):
        await h.rt.advance(1)  # jobs: the one and only attempt fails
        assert attempts(h, "jobs") == [("poison", 1)]
        assert h.service.pending("jobs") == 0 and h.service.pending("dlq1") == 1
        await h.rt.advance(1)  # dlq1: first attempt
        await h.rt.advance(6)  # retry_delay 5 + batch timeout 1: second and last attempt
    assert attempts(h, "dlq1") == [("poison", 1), ("poison", 2)]
    assert 'to dead letter queue "dlq1"' in caplog.text and 'to dead letter queue "dlq2"' in caplog.text
    (kept,) = h.service.messages("dlq2")  # no consumer: kept until purged
    (first,) = [m for q, ms in h.worker.deliveries if q == "jobs" for m in ms]
    assert kept.id == first[0] and kept.body == "poison"
    counts = {c.queue: c for c in h.service.stats()}
    assert (counts["jobs"].dead_lettered, counts["jobs"].retried) == (1, 0)
    assert (counts["dlq1"].dead_lettered, counts["dlq1"].retried) == (1, 1)


async def test_consumer_without_queue_handler_retries_then_drops(make_runtime, caplog):
    """A worker that consumes a queue but exports no queue() fails each invocation (as workerd does)."""
    h = await make_runtime(consumer_toml(max_batch_timeout=1, max_retries=1))
    original = h.worker.queue
    del h.worker.queue
    try:
        await h.rt.env.Q.send("m")
        with caplog.at_level(logging.WARNING, logger="cfemu"):
            await h.rt.advance(5)
        assert h.service.pending("jobs") == 0
        assert "after 2 failed attempts" in caplog.text
    finally:
        h.worker.queue = original


async def test_batch_timeout_counts_from_the_first_waiting_message_even_behind_busy_consumers(make_runtime):
    """Messages held back by max_concurrency keep the time they started waiting."""
    h = await make_runtime(consumer_toml(max_batch_size=10, max_batch_timeout=5, max_concurrency=1))
    release = asyncio.Event()
    times: list[tuple[float, int]] = []

    async def behaviour(batch, env):
        times.append((h.clock.now() - h.t0, len(batch.messages)))
        if len(times) == 1:
            await release.wait()

    h.worker.behaviour = behaviour
    await h.rt.env.Q.sendBatch([{"body": i} for i in range(25)])  # all waiting from t=0
    await h.rt.advance(0)
    assert times == [(0, 10)]
    await h.rt.advance(1)
    release.set()  # the slot frees at t=1: the next full batch goes at once
    await h.rt.advance(0)
    assert times == [(0, 10), (1, 10)]
    await h.rt.advance(3.9)
    assert len(times) == 2
    await h.rt.advance(0.1)  # the last 5 have waited since t=0: they go at t=5, not t=6
    assert times == [(0, 10), (1, 10), (5, 5)]
    await h.rt.advance(1)
    assert len(times) == 3 and h.service.pending("jobs") == 0
