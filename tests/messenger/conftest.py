"""Fixtures for the messenger's tests: the real wrangler.toml on a virtual clock."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from messenger_support import ROOT, test_config


@pytest_asyncio.fixture
async def rt(tmp_path: Path):
    """The messenger on a virtual clock, state under tmp_path."""
    from cfemu.testing import Runtime

    runtime = Runtime.from_config(test_config(tmp_path), persist_to=tmp_path / "state")
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture(scope="session")
def modules():
    """The worker's modules (loaded the way the runtime loads them), for unit tests."""
    from cfemu.loader import load_worker

    return load_worker(ROOT / "messenger" / "entry.py").modules
