"""Cloudflare Queues: durable producers and consumers with batching, retries and dead-letter queues.

`QueueService` plugs the queues of a wrangler config into a runtime; `QueueBroker` is the same
machinery usable on its own (a SQLite file, a clock and a consumer callback).
"""

from __future__ import annotations

from .batch import Message, MessageBatch
from .broker import QueueBroker
from .producer import Queue
from .service import QueueService
from .storage import QueueCounts, QueueStore

__all__ = ["QueueService", "QueueBroker", "Queue", "Message", "MessageBatch", "QueueStore", "QueueCounts"]
