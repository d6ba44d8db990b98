"""The broker on its own (no worker, no wrangler.toml): a durable queue with a consumer callback."""

from __future__ import annotations

import asyncio

from cfemu.clock import RealClock, VirtualClock
from cfemu.config import QueueConsumerConfig
from cfemu.queues import QueueBroker, QueueStore


async def run_due(clock: VirtualClock, seconds: float) -> None:
    """Drive a virtual clock without a runtime: fire due timers in order, letting tasks run between."""
    target = clock.now() + seconds
    for _ in range(5):
        await asyncio.sleep(0)
    while (timer := clock.pop_due(target)) is not None:
        clock.fire(timer)
        for _ in range(5):
            await asyncio.sleep(0)
    clock.set(target)


async def test_standalone_queue_with_callback(tmp_path):
    clock = VirtualClock(1000)
    got = []

    async def consume(batch):
        got.extend((batch.queue, m.body, m.attempts) for m in batch.messages)
        if any(m.body == "again" and m.attempts == 1 for m in batch.messages):
            raise RuntimeError("retry me")

    config = QueueConsumerConfig(queue="work", max_batch_size=2, max_batch_timeout=3, retry_delay=10)
    broker = QueueBroker(tmp_path / "q.sqlite3", clock=clock, dispatch=consume, consumers=[config])
    await broker.start()
    work = broker.producer("work")
    await work.send("again")
    await run_due(clock, 2.9)
    assert got == []
    await run_due(clock, 0.1)
    await broker.idle()
    assert got == [("work", "again", 1)]
    await run_due(clock, 13)  # retry_delay 10, then the 3 s batch timeout
    await broker.idle()
    assert got[-1] == ("work", "again", 2)
    assert broker.pending("work") == 0
    await broker.close()


async def test_standalone_on_the_real_clock(tmp_path):
    got = asyncio.Queue()

    async def consume(batch):
        for m in batch.messages:
            await got.put(m.body)

    broker = QueueBroker(tmp_path / "q.sqlite3", clock=RealClock(), dispatch=consume,
                         consumers=[QueueConsumerConfig(queue="now", max_batch_timeout=0)])
    await broker.start()
    await broker.producer("now").sendBatch([{"body": 1}, {"body": 2}])
    assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [1, 2]
    await broker.idle()
    assert broker.pending("now") == 0
    await broker.close()


async def test_store_counts_offline(tmp_path):
    """What `cfemu queues list` can read without a running server."""
    clock = VirtualClock(0)
    broker = QueueBroker(tmp_path / "q.sqlite3", clock=clock, dispatch=lambda batch: None)
    await broker.start()
    await broker.producer("a").send(1)
    await broker.producer("a").send(2, delaySeconds=60)
    await broker.close()
    store = QueueStore(tmp_path / "q.sqlite3")
    (counts,) = store.counts(now=0)
    assert (counts.queue, counts.depth, counts.delayed, counts.acked) == ("a", 2, 1, 0)
    assert len(store.purge("a")) == 2 and store.depth("a") == 0
    store.close()


async def test_close_cancels_a_consumer_that_outlives_the_grace_and_keeps_its_messages(tmp_path):
    clock = VirtualClock(0)
    hung = asyncio.Event()
    got = []

    async def consume(batch):
        got.extend((m.body, m.attempts) for m in batch.messages)
        if batch.messages[0].attempts == 1:
            hung.set()
            await asyncio.Event().wait()

    config = QueueConsumerConfig(queue="q", max_batch_timeout=0)
    broker = QueueBroker(tmp_path / "q.sqlite3", clock=clock, dispatch=consume, consumers=[config])
    await broker.start()
    await broker.producer("q").send("m")
    await asyncio.wait_for(hung.wait(), 5)
    await asyncio.wait_for(broker.close(grace=0.01), 1)
    assert all(t.done() for t in broker._tasks)
    # Not acked: the next broker on the file delivers it again (the cut-short attempt counted).
    again = QueueBroker(tmp_path / "q.sqlite3", clock=clock, dispatch=consume, consumers=[config])
    await again.start()
    await run_due(clock, 0)
    await again.idle()
    assert got == [("m", 1), ("m", 2)] and again.pending("q") == 0
    await again.close()


async def test_a_plain_function_works_as_consumer_callback(tmp_path):
    clock = VirtualClock(0)
    got = []
    broker = QueueBroker(tmp_path / "q.sqlite3", clock=clock, dispatch=lambda batch: got.extend(m.body for m in batch.messages),
                         consumers=[QueueConsumerConfig(queue="q", max_batch_timeout=0)])
    await broker.start()
    await broker.producer("q").sendBatch([{"body": 1}, {"body": 2}])
    await run_due(clock, 0)
    await broker.idle()
    assert got == [1, 2] and broker.pending("q") == 0
    await broker.close()
