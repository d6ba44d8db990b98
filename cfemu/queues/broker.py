"""The queue broker: durable messages, batching on the clock, delivery, retries and dead letters.

It owns one `QueueStore` and, for each queue consumed here, an in-memory index of which stored
messages are ready now, which wait for a later time and which are in flight.  Everything runs on the
event-loop thread with synchronous SQLite calls, so no two deliveries can pick the same message.

It needs only a clock, a `dispatch(batch)` coroutine and a `spawn` for background work, so it works
without a worker too (a durable queue with a consumer callback).
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..clock import Clock, Timer
from ..config import QueueConsumerConfig
from ..objects import JsObject
from . import codec
from .batch import Message, MessageBatch, _Outcome
from .errors import CONSUMER_WALL_TIME_LIMIT, DEFAULT_MAX_CONCURRENCY, WALL_TIME_EXCEEDED
from .producer import Queue
from .storage import QueueCounts, QueueStore, StoredMessage

__all__ = ["QueueBroker"]

log = logging.getLogger("cfemu.queues")


@dataclass
class _Consumed:
    """The in-memory index of one consumed queue."""

    config: QueueConsumerConfig
    # (seq, since) of messages deliverable now, oldest first; `since` (when each became
    # deliverable) is what the batch timeout counts from.
    ready: deque[tuple[int, float]] = field(default_factory=deque)
    delayed: list[tuple[float, int]] = field(default_factory=list)  # heap of (visible_at, seq)
    in_flight: set[int] = field(default_factory=set)
    running: int = 0  # batches being handled
    deadline: float | None = None  # when the partial batch in `ready` must go (timer armed)
    flush_timer: Timer | None = None
    wake_at: float | None = None
    wake_timer: Timer | None = None


class QueueBroker:
    """Durable queues with Cloudflare's delivery semantics (at least once, batched, retried)."""

    def __init__(self, path: str | Path, *, clock: Clock, dispatch: Callable[[MessageBatch], Awaitable[Any]],
                 consumers: Iterable[QueueConsumerConfig] = (),
                 spawn: Callable[[Awaitable[Any]], asyncio.Future] | None = None,
                 logger: logging.Logger | None = None,
                 wall_time_limit: float = CONSUMER_WALL_TIME_LIMIT) -> None:
        self.clock = clock
        self.wall_time_limit = wall_time_limit
        self.store = QueueStore(path)
        self._dispatch = dispatch
        self._spawn = spawn or asyncio.ensure_future
        self.log = logger or log
        self._consumed = {}
        for config in consumers:
            if not 1 <= config.max_batch_size <= 100:
                raise ValueError(f"queue {config.queue!r}: max_batch_size must be between 1 and 100")
            if config.max_concurrency is not None and config.max_concurrency < 1:
                raise ValueError(f"queue {config.queue!r}: max_concurrency must be at least 1")
            self._consumed[config.queue] = _Consumed(config)
        self._tasks: set[asyncio.Future] = set()
        self._unconsumed_logged: set[str] = set()
        self._accepting = False  # deliveries may start
        self._dead = False  # abandoned or closed: no more writes

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Index what the store holds (a restart redelivers it) and schedule due deliveries."""
        now = self.clock.now()
        for seq, queue, visible_at in self.store.index():
            state = self._consumed.get(queue)
            if state is not None:
                self._index(state, seq, visible_at, now)
        self._accepting = True
        for name in self._consumed:
            self._kick(name)

    async def close(self, grace: float = 10.0) -> None:
        """Stop timers, give batches in flight `grace` seconds to finish (their outcome is stored),
        cancel the rest (their messages stay stored and are delivered again), close the file."""
        self._accepting = False
        self._cancel_timers()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1)
        self._dead = True
        self.store.close()

    def abandon(self) -> None:
        """A crash: stop now; in-flight messages stay stored and are redelivered after a restart."""
        self._accepting = False
        self._dead = True
        self._cancel_timers()
        for task in list(self._tasks):
            task.cancel()
        self.store.close()

    def _cancel_timers(self) -> None:
        for state in self._consumed.values():
            for timer in (state.flush_timer, state.wake_timer):
                if timer is not None:
                    timer.cancel()
            state.flush_timer = state.wake_timer = None
            state.deadline = state.wake_at = None

    # -- producing ------------------------------------------------------------------------------

    def producer(self, queue: str, delivery_delay: int = 0, *, expose_error_codes: bool = False) -> Queue:
        """A producer binding for `queue` (what `env.MY_QUEUE` is)."""
        return Queue(self, queue, delivery_delay, expose_error_codes=expose_error_codes)

    def enqueue(self, queue: str, items: list[tuple[bytes, str, int]]) -> list[str]:
        """Store encoded (body, content_type, delay_seconds) messages durably; returns their ids."""
        if self._dead:
            from ..errors import JsException

            raise JsException("Queue send failed: the runtime has shut down")
        now = self.clock.now()
        ts = self.clock.now_ms()
        ids = [secrets.token_hex(16) for _ in items]
        rows = [(mid, ts, ctype, data, now + delay) for mid, (data, ctype, delay) in zip(ids, items)]
        seqs = self.store.insert(queue, rows)
        state = self._consumed.get(queue)
        if state is None:
            if queue not in self._unconsumed_logged:
                self._unconsumed_logged.add(queue)
                self.log.info("queue %r has no consumer in this worker; its messages are stored, not delivered", queue)
            return ids
        if not self._accepting:
            return ids  # start() indexes what the store holds
        for seq, row in zip(seqs, rows):
            self._index(state, seq, row[4], now)
        self._kick(queue)
        return ids

    def _index(self, state: _Consumed, seq: int, visible_at: float, now: float) -> None:
        if visible_at <= now:
            state.ready.append((seq, visible_at))
        else:
            heapq.heappush(state.delayed, (visible_at, seq))

    # -- delivering -----------------------------------------------------------------------------

    def _kick(self, queue: str) -> None:
        """Start whatever batches are due for `queue`, and set the timers for the next ones."""
        state = self._consumed.get(queue)
        if state is None or not self._accepting:
            return
        config = state.config
        now = self.clock.now()
        while state.delayed and state.delayed[0][0] <= now:
            visible_at, seq = heapq.heappop(state.delayed)
            state.ready.append((seq, visible_at))
        limit = config.max_concurrency or DEFAULT_MAX_CONCURRENCY
        timeout = config.max_batch_timeout
        while state.ready and state.running < limit:
            # A batch goes when full, or once its oldest message has waited max_batch_timeout
            # (also when that happened while every consumer slot was busy).
            full = len(state.ready) >= config.max_batch_size
            expired = now >= state.ready[0][1] + timeout
            if not (full or expired):
                break
            count = min(len(state.ready), config.max_batch_size)
            seqs = [state.ready.popleft()[0] for _ in range(count)]
            state.in_flight.update(seqs)
            state.running += 1
            task = self._spawn(self._deliver(queue, state, seqs))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # With every slot busy no timer is needed: a finishing batch kicks the queue again.
        due = state.ready[0][1] + timeout if state.ready and state.running < limit else None
        if due != state.deadline:
            self._set_deadline(queue, state, due)
        next_wake = state.delayed[0][0] if state.delayed else None
        if next_wake != state.wake_at:
            if state.wake_timer is not None:
                state.wake_timer.cancel()
            state.wake_at = next_wake
            state.wake_timer = None if next_wake is None else self.clock.call_at(next_wake, lambda: self._wake(queue))

    def _set_deadline(self, queue: str, state: _Consumed, deadline: float | None) -> None:
        if state.flush_timer is not None:
            state.flush_timer.cancel()
            state.flush_timer = None
        state.deadline = deadline
        if deadline is not None:
            state.flush_timer = self.clock.call_at(deadline, lambda: self._kick(queue))

    def _wake(self, queue: str) -> None:
        state = self._consumed.get(queue)
        if state is not None:
            state.wake_at = state.wake_timer = None
        self._kick(queue)

    async def _deliver(self, queue: str, state: _Consumed, seqs: list[int]) -> None:
        config = state.config
        settled = False
        try:
            rows = self.store.start_delivery(seqs)
            # A message whose earlier delivery was cut short by a crash already used that attempt;
            # one that has used them all goes where a failed one would, instead of looping forever.
            exhausted = [r for r in rows if r.attempts > config.max_retries + 1]
            rows = [r for r in rows if r.attempts <= config.max_retries + 1]
            if exhausted:
                self._settle(queue, state, [(r, True, None) for r in exhausted])
            if not rows:
                settled = True
                return
            outcome = _Outcome()
            messages = [
                Message(r.id, r.timestamp_ms, codec.decode(r.body, r.content_type), r.attempts, outcome) for r in rows
            ]
            failed = await self._invoke(queue, MessageBatch(queue, messages, outcome))
            if self._dead:
                return
            decisions = [outcome.decide(r.id, failed) for r in rows]
            self._settle(queue, state, [(r, d.retry, d.delay) for r, d in zip(rows, decisions)])
            settled = True
        finally:
            state.running -= 1
            state.in_flight.difference_update(seqs)
            if not self._dead:
                if not settled:
                    # The store failed mid-way (the error reaches the runtime's log): whatever is
                    # still stored is delivered again rather than forgotten until a restart.
                    now = self.clock.now()
                    # They wait a batch timeout again (from now), so a failing disk is not hammered.
                    for seq, visible_at in self.store.visible_at(seqs):
                        self._index(state, seq, max(visible_at, now), now)
                self._kick(queue)

    async def _invoke(self, queue: str, batch: MessageBatch) -> bool:
        """Run the consumer on `batch` within the wall-time limit; True if the invocation failed."""
        async def run() -> None:
            result = self._dispatch(batch)
            if inspect.isawaitable(result):  # a standalone consumer callback may be a plain function
                await result

        invocation = asyncio.ensure_future(run())
        expired: list[bool] = []

        def expire() -> None:
            if not invocation.done():
                expired.append(True)
                invocation.cancel()

        # On the runtime's clock, so a test reaches the limit by advancing the virtual clock.
        limit = self.clock.call_later(self.wall_time_limit, expire)
        try:
            await invocation
        except asyncio.CancelledError:
            if not expired:
                raise  # the broker itself is being cancelled (close or crash)
            self.log.warning(WALL_TIME_EXCEEDED.format(queue=queue, limit=f"{self.wall_time_limit:g}"))
            return True
        except Exception as error:  # the handler's failure is the batch's outcome, not ours
            self.log.error("queue %r: consumer raised %s: %s", queue, type(error).__name__, error, exc_info=error)
            return True
        finally:
            limit.cancel()
        return False

    def _settle(self, queue: str, state: _Consumed, results: list[tuple[StoredMessage, bool, int | None]]) -> None:
        """Store a batch's outcome in one transaction, then update the in-memory indexes."""
        config = state.config
        now = self.clock.now()
        acked, retried, dead, dropped = [], [], [], []
        for row, retry, delay in results:
            if not retry:
                acked.append(row.seq)
            elif row.attempts <= config.max_retries:
                wait = config.retry_delay if delay is None else delay
                retried.append((row.seq, now + wait))
            elif config.dead_letter_queue:
                dead.append((row.seq, config.dead_letter_queue, now))
                self.log.warning('Moving message "%s" of queue "%s" to dead letter queue "%s" after %d failed attempts',
                                 row.id, queue, config.dead_letter_queue, min(row.attempts, config.max_retries + 1))
            else:
                dropped.append(row.seq)
                self.log.warning('Dropped message "%s" of queue "%s" after %d failed attempts (no dead letter queue)',
                                 row.id, queue, min(row.attempts, config.max_retries + 1))
        self.store.settle(queue, acked=acked, retried=retried, dead_lettered=dead, dropped=dropped)
        self.log.info("QUEUE %s %d/%d acked", queue, len(acked), len(results))
        for seq, visible_at in retried:
            self._index(state, seq, visible_at, now)
        if dead:
            target = self._consumed.get(config.dead_letter_queue)
            if target is not None:
                for seq, _, visible_at in dead:
                    self._index(target, seq, visible_at, now)
                self._kick(config.dead_letter_queue)

    # -- inspection (tests, the CLI) ------------------------------------------------------------

    def pending(self, queue: str) -> int:
        """How many messages of `queue` are stored and not yet acked (delayed and in flight included)."""
        return self.store.depth(queue)

    def in_flight(self, queue: str) -> int:
        state = self._consumed.get(queue)
        return len(state.in_flight) if state else 0

    def messages(self, queue: str) -> list[JsObject]:
        """The stored messages of `queue`, decoded, in delivery order."""
        state = self._consumed.get(queue)
        flying = state.in_flight if state else set()
        return [
            JsObject(id=r.id, body=codec.decode(r.body, r.content_type), contentType=r.content_type,
                     attempts=r.attempts, timestamp_ms=r.timestamp_ms, visible_at=r.visible_at,
                     in_flight=r.seq in flying)
            for r in self.store.pending(queue)
        ]

    def stats(self) -> list[QueueCounts]:
        """Per queue: depth, delayed, in flight and lifetime counters (acked, retried, dead_lettered, dropped)."""
        return [replace(c, in_flight=self.in_flight(c.queue)) for c in self.store.counts(self.clock.now(), self._consumed)]

    def purge(self, queue: str) -> int:
        """Delete every stored message of `queue` that is not in flight; returns how many."""
        state = self._consumed.get(queue)
        keep = state.in_flight if state else set()
        gone = set(self.store.purge(queue, keep=keep))
        if state is not None:
            state.ready = deque(item for item in state.ready if item[0] not in gone)
            state.delayed = [item for item in state.delayed if item[1] not in gone]
            heapq.heapify(state.delayed)
            self._kick(queue)
        return len(gone)

    async def idle(self) -> None:
        """Wait until no batch is being handled (batches waiting on the clock do not count)."""
        while any(not t.done() for t in self._tasks):
            await asyncio.wait([t for t in self._tasks if not t.done()])
