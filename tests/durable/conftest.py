"""Shared fixtures of the Durable Object tests."""

import pytest


@pytest.fixture
def mod(cfemu_runtime):
    """The review worker's module (tests/durable/workers/review), its gates and log cleared."""
    module = cfemu_runtime.worker_module("worker")
    module.GATES.clear()
    module.LOG.clear()
    return module
