"""Fixtures for queue tests: a runtime on a virtual clock over a wrangler.toml written per test."""

from __future__ import annotations

import pytest
from queue_harness import Harness


@pytest.fixture
async def make_runtime(tmp_path):
    """`await make_runtime(toml)` -> Harness with a started runtime; closed at the end of the test."""
    harnesses: list[Harness] = []

    async def make(toml: str) -> Harness:
        harness = Harness(tmp_path / f"h{len(harnesses)}", toml)
        harnesses.append(harness)
        await harness.start()
        return harness

    yield make
    for harness in harnesses:
        await harness.close()
