"""`AnalyticsService`: the Analytics Engine of one runtime — bindings, write buffer, store, queries."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..clock import Timer
from ..services import Service
from .dataset import AnalyticsEngineDataset, InvocationCounter
from .engine import run_query
from .storage import AnalyticsStore

__all__ = ["AnalyticsService"]

log = logging.getLogger("cfemu.analytics")

_NO_BLOBS = ("",) * 20
_NO_DOUBLES = (0.0,) * 20


class _Buffer:
    __slots__ = ("rows", "blobs", "doubles")

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.blobs = 0  # the most blobs any buffered point has
        self.doubles = 0


class AnalyticsService(Service):
    """Workers Analytics Engine: `writeDataPoint` bindings and the SQL API over what they wrote.

    Points are buffered in memory and inserted in batches (one INSERT per dataset): when
    `FLUSH_POINTS` are waiting, `FLUSH_DELAY` seconds (on the runtime's clock) after the first
    waiting point, before every query, and on `close()`.  Batches are inserted by one writer
    thread, in order, so a large insert neither blocks the event loop nor the worker writing the
    next points; queries and `close()` wait for the batches handed over before them.

    As in production, a point becomes durable some time after `writeDataPoint` returns, not when it
    returns: `abandon()` (a crash) loses the points still in the buffer; a batch already handed to
    the writer thread is let finish (it may or may not have committed when a real crash strikes).
    Data older than three months (by the clock) is deleted at start, after inserts and before queries.
    """

    kind = "analytics"
    FLUSH_POINTS = 10_000
    FLUSH_DELAY = 1.0

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.store: AnalyticsStore | None = None
        self._buffers: dict[str, _Buffer] = {}
        self._pending = 0
        self._timer: Timer | None = None
        self._invocations = InvocationCounter()
        self._writer: ThreadPoolExecutor | None = None
        self._batches: list[Future] = []
        self._queries: set[asyncio.Future] = set()
        self._bindings = {
            cfg.binding: AnalyticsEngineDataset(self, cfg.dataset) for cfg in host.config.analytics_engine_datasets
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.store = AnalyticsStore(self.host.state_dir / "analytics")
        self.store.drop_expired(self.host.clock.now())
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cfemu-analytics")

    def bindings(self) -> dict[str, Any]:
        return dict(self._bindings)

    async def close(self) -> None:
        if self._queries:
            await asyncio.gather(*self._queries, return_exceptions=True)
        self.flush()
        self._stop(wait_for_batches=True)

    def abandon(self) -> None:
        self._buffers.clear()
        self._pending = 0
        self._stop(wait_for_batches=True)

    def _stop(self, *, wait_for_batches: bool) -> None:
        self._cancel_timer()
        if wait_for_batches:
            self.wait_for_batches(raise_errors=False)
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self.store is not None:
            self.store.close()

    # -- writes ---------------------------------------------------------------------------------

    def count_invocation(self, invocation: Any) -> int:
        """How many points this invocation has written so far, this one included."""
        return self._invocations.add(invocation)

    def append(self, dataset: str, index1: str, blobs: list[str], doubles: list[float]) -> None:
        """Buffer one validated point, stamped with the clock's time (whole seconds, as DateTime)."""
        if self._writer is None:
            raise RuntimeError("the Analytics Engine service is not running")
        row = (int(self.host.clock.now() // 1), index1, *blobs, *_NO_BLOBS[len(blobs):],
               *doubles, *_NO_DOUBLES[len(doubles):])
        buffer = self._buffers.get(dataset)
        if buffer is None:
            buffer = self._buffers[dataset] = _Buffer()
        buffer.rows.append(row)
        # remember how many columns are in use, so the flush sends only those
        if len(blobs) > buffer.blobs:
            buffer.blobs = len(blobs)
        if len(doubles) > buffer.doubles:
            buffer.doubles = len(doubles)
        self._pending += 1
        if self._pending >= self.FLUSH_POINTS:
            self.flush()
        elif self._timer is None:
            self._timer = self.host.clock.call_later(self.FLUSH_DELAY, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def flush(self) -> int:
        """Hand every buffered point to the writer thread as one batch; returns how many."""
        self._cancel_timer()
        if self._writer is None or not self._buffers:
            return 0
        buffers, self._buffers, self._pending = self._buffers, {}, 0
        now = self.host.clock.now()
        self._batches = [f for f in self._batches if not f.done() or f.exception() is not None]
        self._batches.append(self._writer.submit(self._insert, buffers, now))
        return sum(len(b.rows) for b in buffers.values())

    def _insert(self, buffers: dict[str, _Buffer], now: float) -> None:
        store = self.store
        for dataset, buffer in buffers.items():
            store.ensure_table(dataset)
            store.insert(dataset, buffer.rows, blobs=buffer.blobs, doubles=buffer.doubles)
        store.drop_expired(now)

    def wait_for_batches(self, *, raise_errors: bool = True) -> None:
        """Block until every batch handed to the writer thread is in the store."""
        batches, self._batches = self._batches, []
        for batch in batches:
            error = batch.exception()
            if error is not None:
                if raise_errors:
                    raise error
                log.error("writing Analytics Engine data points failed", exc_info=error)

    def sync(self) -> None:
        """Flush and wait: afterwards the store holds every point written so far."""
        self.flush()
        self.wait_for_batches()

    # -- the SQL API ----------------------------------------------------------------------------

    def query(self, sql: str, *, format: str | None = None) -> dict | str:
        """Answer `sql` as the Analytics Engine SQL API would (dict for JSON, str for the text formats)."""
        self.sync()
        if self.store is not None:
            self.store.drop_expired(self.host.clock.now())
        return run_query(self.store, sql, now=self.host.clock.now(), fmt=format)

    async def aquery(self, sql: str, *, format: str | None = None) -> dict | str:
        """`query()` with the waiting and the DuckDB work on threads, so the event loop keeps serving."""
        self.flush()
        batches = list(self._batches)
        if batches:
            await asyncio.gather(*(asyncio.wrap_future(b) for b in batches))
        now = self.host.clock.now()

        def run() -> dict | str:
            if self.store is not None:
                self.store.drop_expired(now)
            return run_query(self.store, sql, now=now, fmt=format)

        future = asyncio.ensure_future(asyncio.to_thread(run))
        self._queries.add(future)
        try:
            return await future
        finally:
            self._queries.discard(future)
