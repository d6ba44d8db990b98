"""A tiny worker with an Analytics Engine binding, run through cfemu.testing."""

from __future__ import annotations

import pytest

from cfemu.testing import Runtime

# 2026-01-15 10:00:00 UTC: a fixed instant so hand-computed buckets are stable.
T0 = 1768471200.0

WORKER = """
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = request.url
        n = int(url.split("n=")[1]) if "n=" in url else 1
        try:
            for i in range(n):
                self.env.AE.writeDataPoint({"blobs": ["req", str(i)], "doubles": [float(i)], "indexes": ["k"]})
        except Exception as e:
            return Response(f"{type(e).__name__}: {e}", status=500)
        return Response("ok")
"""

TOML = """
[[analytics_engine_datasets]]
binding = "AE"
dataset = "events"

[[analytics_engine_datasets]]
binding = "OTHER"
dataset = "other_ds"
"""


@pytest.fixture
def worker_config(tmp_path, write_worker):
    return write_worker(tmp_path / "w", WORKER, TOML)


@pytest.fixture
async def rt(worker_config, tmp_path):
    runtime = Runtime.from_config(worker_config, persist_to=tmp_path / "state", start=T0)
    await runtime.start()
    yield runtime
    await runtime.close()
