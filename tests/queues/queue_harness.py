"""The queue tests' harness (a uniquely named module: `conftest` names collide across folders)."""

from __future__ import annotations

import textwrap
from pathlib import Path


from cfemu.clock import VirtualClock
from cfemu.config import load_config
from cfemu.runtime import Runtime

WORKER = Path(__file__).resolve().parent / "workers" / "consumer" / "worker.py"
T0 = 1_800_000_000.0  # a fixed instant, so timestamps are predictable


def write_config(directory: Path, toml: str) -> Path:
    """A wrangler.toml in `directory` whose main is the shared consumer worker."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "wrangler.toml"
    path.write_text(f'name = "q"\nmain = "{WORKER}"\ncompatibility_date = "2026-11-01"\n' + textwrap.dedent(toml))
    return path


class Harness:
    """Starts, crashes and restarts a runtime on one state directory, keeping one virtual clock."""

    def __init__(self, tmp: Path, toml: str) -> None:
        self.config = load_config(write_config(tmp / "worker", toml))
        self.state_dir = tmp / "state"
        self.t0 = T0
        self.clock = VirtualClock(T0)
        self.rt: Runtime | None = None

    async def start(self, *, reset: bool = True) -> Runtime:
        self.rt = Runtime(self.config, state_dir=self.state_dir, clock=self.clock)
        await self.rt.start()
        worker = self.rt.worker_class("Default")
        if reset:
            worker.behaviour = None
            worker.deliveries = []
        return self.rt

    @property
    def worker(self):
        return self.rt.worker_class("Default")

    @property
    def service(self):
        return self.rt.service("queues")

    async def restart_after_crash(self) -> Runtime:
        self.rt.abandon()
        return await self.start(reset=False)

    async def close(self) -> None:
        if self.rt is not None:
            await self.rt.close()
