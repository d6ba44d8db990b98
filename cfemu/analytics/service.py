"""`AnalyticsService`: the Analytics Engine of one runtime — bindings, write buffer, store, queries."""

from __future__ import annotations

import asyncio
from typing import Any

from ..clock import Timer
from ..services import Service
from .dataset import AnalyticsEngineDataset, InvocationCounter
from .engine import run_query
from .storage import AnalyticsStore

__all__ = ["AnalyticsService"]

_NO_BLOBS = ("",) * 20
_NO_DOUBLES = (0.0,) * 20


class AnalyticsService(Service):
    """Workers Analytics Engine: `writeDataPoint` bindings and the SQL API over what they wrote.

    Points are buffered in memory and inserted in batches: when `FLUSH_POINTS` are waiting,
    `FLUSH_DELAY` seconds (on the runtime's clock) after the first waiting point, before every
    query, and on `close()`.  As in production, a point is durable some time after the call
    returns, not when it returns: `abandon()` (a crash) loses the points still buffered.
    Data older than three months (by the clock) is deleted at start, on flush and before queries.
    """

    kind = "analytics"
    FLUSH_POINTS = 10_000
    FLUSH_DELAY = 1.0

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.store: AnalyticsStore | None = None
        self._buffers: dict[str, list[tuple]] = {}
        self._pending = 0
        self._timer: Timer | None = None
        self._invocations = InvocationCounter()
        self._queries: set[asyncio.Future] = set()
        self._bindings = {
            cfg.binding: AnalyticsEngineDataset(self, cfg.dataset) for cfg in host.config.analytics_engine_datasets
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.store = AnalyticsStore(self.host.state_dir / "analytics")
        self.store.drop_expired(self.host.clock.now())

    def bindings(self) -> dict[str, Any]:
        return dict(self._bindings)

    async def close(self) -> None:
        if self._queries:
            await asyncio.gather(*self._queries, return_exceptions=True)
        self.flush()
        self._cancel_timer()
        if self.store is not None:
            self.store.close()

    def abandon(self) -> None:
        self._buffers.clear()
        self._pending = 0
        self._cancel_timer()
        if self.store is not None:
            self.store.close()

    # -- writes ---------------------------------------------------------------------------------

    def count_invocation(self, invocation: Any) -> int:
        """How many points this invocation has written so far, this one included."""
        return self._invocations.add(invocation)

    def append(self, dataset: str, index1: str, blobs: list[str], doubles: list[float]) -> None:
        """Buffer one validated point, stamped with the clock's time (whole seconds, as DateTime)."""
        if self.store is None or self.store.closed:
            raise RuntimeError("the Analytics Engine service is not running")
        row = (int(self.host.clock.now() // 1), index1, *blobs, *_NO_BLOBS[len(blobs):],
               *doubles, *_NO_DOUBLES[len(doubles):])
        buffer = self._buffers.get(dataset)
        if buffer is None:
            buffer = self._buffers[dataset] = []
        buffer.append(row)
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
        """Insert every buffered point (one INSERT per dataset); returns how many were written."""
        self._cancel_timer()
        if self.store is None or self.store.closed:
            return 0
        written = 0
        buffers, self._buffers, self._pending = self._buffers, {}, 0
        for dataset, rows in buffers.items():
            self.store.ensure_table(dataset)
            self.store.insert(dataset, rows)
            written += len(rows)
        if written:
            self.store.drop_expired(self.host.clock.now())
        return written

    # -- the SQL API ----------------------------------------------------------------------------

    def query(self, sql: str, *, format: str | None = None) -> dict | str:
        """Answer `sql` as the Analytics Engine SQL API would (dict for JSON, str for the text formats)."""
        self.flush()
        if self.store is not None:
            self.store.drop_expired(self.host.clock.now())
        return run_query(self.store, sql, now=self.host.clock.now(), fmt=format)

    async def aquery(self, sql: str, *, format: str | None = None) -> dict | str:
        """`query()` with the DuckDB work on a thread, so a long query does not stall the event loop."""
        self.flush()
        if self.store is not None:
            self.store.drop_expired(self.host.clock.now())
        now = self.host.clock.now()
        future = asyncio.ensure_future(asyncio.to_thread(run_query, self.store, sql, now=now, fmt=format))
        self._queries.add(future)
        try:
            return await future
        finally:
            self._queries.discard(future)
