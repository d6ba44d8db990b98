"""How a binding plugs into a runtime.

Each kind of binding is a `Service`: the runtime creates it when the config declares that kind,
starts it, asks it for the env entries it provides, and closes it (clean shutdown) or abandons it
(a crash: nothing that was not yet durable survives).  A service reaches the runtime only through
the `Host` surface below, so the model of a binding never depends on the dev server.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Protocol

if TYPE_CHECKING:
    from .clock import Clock
    from .config import WorkerConfig

__all__ = ["Host", "Service", "StoreService", "SERVICES", "create_services"]


class Host(Protocol):
    """What a service may use of its runtime."""

    config: WorkerConfig
    clock: Clock
    state_dir: Path  # persisted state of this runtime; each service keeps to its own subdirectory
    log: logging.Logger

    def spawn(self, awaitable: Awaitable[Any], *, name: str | None = None) -> Any:
        """Run background work that `advance()` and shutdown wait for; errors are logged."""

    def service(self, kind: str) -> Service | None:
        """Another service of the same runtime (e.g. queues for the consumer's producer)."""

    async def dispatch_queue(self, batch: Any) -> None:
        """Deliver a `MessageBatch` to the worker's `queue()` handler; raises if the handler raised."""

    async def dispatch_scheduled(self, cron: str, scheduled_time_ms: int) -> bool:
        """Run the worker's `scheduled()` handler; True when it returned without raising."""


class Service:
    """Base class: override what the binding needs."""

    kind = ""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def start(self) -> None:
        """Open files, schedule timers (e.g. due deliveries) — called once before the first event."""

    def bindings(self) -> dict[str, Any]:
        """The env entries this service provides, by binding name."""
        return {}

    async def reload(self) -> None:
        """New worker code was loaded (a redeploy); reset whatever holds instances of old classes."""

    async def close(self) -> None:
        """Clean shutdown: flush what is buffered, close files."""

    def abandon(self) -> None:
        """A crash: drop what is not durable yet and close files without flushing."""


class StoreService(Service):
    """A service whose bindings share stores that commit before each call returns (D1, R2).

    Subclasses open their stores in `start()` into `self._stores`; closing and a crash are the same
    here, since nothing is ever held back: both just close the files.
    """

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._stores: dict[str, Any] = {}

    async def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()

    def abandon(self) -> None:
        for store in self._stores.values():
            try:
                store.close()
            except Exception:  # noqa: BLE001 - a crash closes what it can
                pass
        self._stores.clear()


# (config attribute that enables the service, "module:Class"); modules are imported only when used.
SERVICES: list[tuple[str, str]] = [
    ("durable_objects", "cfemu.durable.service:DurableObjectsService"),
    ("kv_namespaces", "cfemu.kv:KVService"),
    ("queues", "cfemu.queues:QueueService"),
    ("d1_databases", "cfemu.d1:D1Service"),
    ("r2_buckets", "cfemu.r2:R2Service"),
    ("ratelimits", "cfemu.ratelimit:RateLimitService"),
    ("ai", "cfemu.ai:AIService"),
    ("analytics_engine_datasets", "cfemu.analytics:AnalyticsService"),
]


def _enabled(config: WorkerConfig, attribute: str) -> bool:
    if attribute == "queues":
        return bool(config.queue_producers or config.queue_consumers)
    if attribute == "durable_objects":
        return bool(config.durable_objects or config.migrations)  # deletions apply with no binding left
    return bool(getattr(config, attribute))


def create_services(host: Host) -> list[Service]:
    """One service per binding kind the config uses, in `SERVICES` order (not started yet)."""
    services = []
    for attribute, target in SERVICES:
        if not _enabled(host.config, attribute):
            continue
        module_name, class_name = target.split(":")
        module = importlib.import_module(module_name)
        services.append(getattr(module, class_name)(host))
    return services
