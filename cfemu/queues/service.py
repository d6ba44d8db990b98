"""`[[queues.producers]]` and `[[queues.consumers]]` of a worker: the broker wired to a runtime."""

from __future__ import annotations

from typing import Any

from ..objects import JsObject
from ..services import Service
from .broker import QueueBroker
from .errors import EXPOSE_ERROR_CODES_FLAG
from .producer import Queue
from .storage import QueueCounts

__all__ = ["QueueService", "STORE_NAME"]

STORE_NAME = "queues.sqlite3"  # under <state_dir>/queues/


class QueueService(Service):
    """Producer bindings in `env`, delivery to the worker's `queue()` handler, and an inspection API.

    Inspection (tests, the CLI): `pending(queue)`, `in_flight(queue)`, `messages(queue)`,
    `stats()`, `purge(queue)`, `producer(queue)` and `await idle()`.
    """

    kind = "queues"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.broker: QueueBroker | None = None
        self._bindings: dict[str, Queue] = {}

    async def start(self) -> None:
        host = self.host
        config = host.config
        self.broker = QueueBroker(
            host.state_dir / "queues" / STORE_NAME,
            clock=host.clock,
            dispatch=host.dispatch_queue,
            # pull consumers are not emulated: their messages are stored and never pushed to the worker
            consumers=[c for c in config.queue_consumers if c.type == "worker"],
            spawn=lambda work: host.spawn(work, name="queue batch"),
            logger=host.log.getChild("queues"),
        )
        # A queue with no consumer here only stores its messages (the broker says so once, at the first send).
        codes = EXPOSE_ERROR_CODES_FLAG in (getattr(config, "compatibility_flags", None) or ())
        for producer in config.queue_producers:
            self._bindings[producer.binding] = self.broker.producer(
                producer.queue, producer.delivery_delay, expose_error_codes=codes)
        await self.broker.start()

    def bindings(self) -> dict[str, Any]:
        return dict(self._bindings)

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.close()

    def abandon(self) -> None:
        if self.broker is not None:
            self.broker.abandon()

    # -- inspection ------------------------------------------------------------------------------

    def producer(self, queue: str, delivery_delay: int = 0) -> Queue:
        """A producer for any queue name, bound or not (what `env.X` would be)."""
        return self._broker().producer(queue, delivery_delay)

    def pending(self, queue: str) -> int:
        """Stored, not yet acked messages of `queue` (delayed and in flight included)."""
        return self._broker().pending(queue)

    def in_flight(self, queue: str) -> int:
        return self._broker().in_flight(queue)

    def messages(self, queue: str) -> list[JsObject]:
        """The stored messages of `queue`, decoded: id, body, contentType, attempts, visible_at, in_flight."""
        return self._broker().messages(queue)

    def stats(self) -> list[QueueCounts]:
        """Per queue: depth, delayed, acked, retried, dead_lettered, dropped."""
        return self._broker().stats()

    def purge(self, queue: str) -> int:
        return self._broker().purge(queue)

    async def idle(self) -> None:
        """Wait until no batch is being handled."""
        await self._broker().idle()

    def _broker(self) -> QueueBroker:
        if self.broker is None:
            raise RuntimeError("the queue service has not started")
        return self.broker
