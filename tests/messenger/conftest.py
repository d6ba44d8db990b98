"""Fixtures for the messenger's tests: the real wrangler.toml, minus bindings cfemu cannot run yet.

The platform is built in parallel with the messenger; a binding kind whose service class is not
importable yet is dropped from the test config (and the tests that need it are skipped with a
reason naming it), so the suite stays green while pieces land.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "wrangler.toml"

# wrangler.toml section -> the cfemu service that runs it (cfemu.services.SERVICES)
_SECTIONS = {
    "durable_objects": "cfemu.durable.service:DurableObjectsService",
    "kv_namespaces": "cfemu.kv:KVService",
    "queues": "cfemu.queues:QueueService",
    "d1_databases": "cfemu.d1:D1Service",
    "r2_buckets": "cfemu.r2:R2Service",
    "ai": "cfemu.ai:AIService",
    "analytics_engine_datasets": "cfemu.analytics:AnalyticsService",
}


def available(section: str) -> bool:
    """True when cfemu can run this binding kind (its service class imports)."""
    module_name, class_name = _SECTIONS[section].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return hasattr(module, class_name)


def missing(*sections: str) -> str | None:
    gone = [s for s in sections if not available(s)]
    return None if not gone else "cfemu cannot run " + ", ".join(gone) + " yet"


def needs(*sections: str):
    """Skip a test until cfemu runs every named binding kind."""
    reason = missing(*sections)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def _toml_value(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


def test_config(tmp_path: Path, extra_vars: dict | None = None) -> Path:
    """A copy of the root wrangler.toml with absolute paths and only the runnable bindings."""
    raw = tomllib.loads(CONFIG.read_text())
    for section in _SECTIONS:
        if section in raw and not available(section):
            del raw[section]
    if "durable_objects" not in raw:
        raw.pop("migrations", None)
    raw["main"] = str(ROOT / raw["main"])
    raw["assets"]["directory"] = str(ROOT / raw["assets"]["directory"])
    for db in raw.get("d1_databases", []):
        db["migrations_dir"] = str(ROOT / db["migrations_dir"])
    raw.setdefault("vars", {}).update(extra_vars or {})
    path = tmp_path / "wrangler.json"
    path.write_text(json.dumps(raw, indent=2))
    return path


test_config.__test__ = False


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
