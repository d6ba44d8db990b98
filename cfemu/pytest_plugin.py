"""The cfemu pytest plugin: the `cfemu_runtime` fixture and the `cfemu_config` marker.

Async tests run with pytest-asyncio.  Imports stay lazy so that installing cfemu costs other
projects' test runs nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["cfemu_runtime", "pytest_configure"]

try:
    import pytest_asyncio

    _fixture = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - cfemu installed without its test extras
    _fixture = pytest.fixture


def pytest_configure(config: pytest.Config) -> None:
    """pytest hook: registers the `cfemu_config(path)` marker."""
    config.addinivalue_line("markers", "cfemu_config(path): run the cfemu_runtime fixture on this wrangler config")


def _config_path(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("cfemu_config")
    root = Path(request.config.rootpath)
    if marker is not None:
        path = Path(marker.args[0])
        if not path.is_absolute():
            # relative to the test file first, then to the rootdir
            beside = Path(request.node.path).parent / path
            path = beside if beside.exists() else root / path
        return path
    return root / "wrangler.toml"


@_fixture
async def cfemu_runtime(request: pytest.FixtureRequest, tmp_path: Path):
    """A started `cfemu.testing.Runtime` on a virtual clock, with state under the test's tmp_path."""
    from .testing import Runtime

    marker = request.node.get_closest_marker("cfemu_config")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    runtime = Runtime.from_config(_config_path(request), persist_to=kwargs.pop("persist_to", tmp_path / "state"), **kwargs)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()
