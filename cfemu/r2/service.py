"""`R2Service`: one directory per bucket under `<state>/r2/<bucket_name>/`."""

from __future__ import annotations

from typing import Any

from ..services import StoreService
from .bucket import R2Bucket
from .storage import R2Storage

__all__ = ["R2Service"]


class R2Service(StoreService):
    """Provides `env.<binding>` R2 buckets; opening a bucket cleans what a crash left behind."""

    kind = "r2"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._buckets: dict[str, R2Bucket] = {}

    async def start(self) -> None:
        for bucket in self.host.config.r2_buckets:
            storage = self._stores.get(bucket.bucket_name)
            if storage is None:
                storage = R2Storage(self.host.state_dir / "r2" / bucket.bucket_name)
                self._stores[bucket.bucket_name] = storage
            self._buckets[bucket.binding] = R2Bucket(storage, self.host.clock, name=bucket.bucket_name)

    def bindings(self) -> dict[str, Any]:
        return dict(self._buckets)

    def storage(self, name: str) -> R2Storage:
        """A bucket's storage by binding or bucket name (for tests and the CLI)."""
        for bucket in self.host.config.r2_buckets:
            if name in (bucket.binding, bucket.bucket_name):
                return self._stores[bucket.bucket_name]
        raise KeyError(name)


