"""Loading worker code: siblings import as top-level modules, nothing collides, unchanged code is reused."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from pathlib import Path

import pytest

from cfemu.errors import WorkerLoadError
from cfemu.loader import load_worker
from cfemu.testing import Runtime

ENTRY = '''
from workers import Response, WorkerEntrypoint
from helpers import NAME, describe

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(describe())
'''


def _worker(root: Path, files: dict[str, str], main: str = "worker.py") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root / main


def test_sibling_modules_import_as_top_level_and_leave_no_trace(tmp_path):
    main = _worker(tmp_path, {"worker.py": ENTRY, "helpers.py": "NAME = 'one'\ndef describe():\n    return NAME\n"})
    code = load_worker(main)
    assert code.get("NAME") == "one"
    assert set(code.modules) == {"worker", "helpers"}
    assert "helpers" not in sys.modules and "worker" not in sys.modules
    assert not any(type(f).__name__ == "_WorkerFinder" for f in sys.meta_path)


def test_two_workers_with_the_same_module_name_do_not_collide(tmp_path):
    a = load_worker(_worker(tmp_path / "a", {"worker.py": ENTRY, "helpers.py": "NAME = 'a'\ndef describe():\n    return NAME\n"}))
    b = load_worker(_worker(tmp_path / "b", {"worker.py": ENTRY, "helpers.py": "NAME = 'b'\ndef describe():\n    return NAME\n"}))
    assert (a.get("NAME"), b.get("NAME")) == ("a", "b")
    assert a.modules["helpers"] is not b.modules["helpers"]
    assert a.get("describe")() == "a" and b.get("describe")() == "b"


@pytest.mark.parametrize("package", ["click", "json5", "msgpack"])
def test_a_worker_module_named_like_an_installed_package(tmp_path, package):
    was_imported = package in sys.modules
    before = sys.modules.get(package)
    main = _worker(tmp_path, {
        "worker.py": f"import {package}\nWHICH = {package}.WHICH\n",
        f"{package}.py": "WHICH = 'the worker module'\n",
    })
    code = load_worker(main)
    assert code.get("WHICH") == "the worker module"
    # the installed package is untouched for the rest of the process
    assert sys.modules.get(package) is before
    real = importlib.import_module(package)
    assert "site-packages" in (real.__file__ or "")
    assert not hasattr(real, "WHICH")
    if not was_imported:
        del sys.modules[package]


def test_a_worker_can_still_use_an_installed_package_it_does_not_shadow(tmp_path):
    main = _worker(tmp_path, {"worker.py": "import croniter\nOK = hasattr(croniter, 'croniter')\n"})
    assert load_worker(main).get("OK") is True


def test_packages_and_relative_imports_inside_the_worker(tmp_path):
    main = _worker(tmp_path, {
        "worker.py": "from lib.util import value\nVALUE = value()\n",
        "lib/__init__.py": "",
        "lib/util.py": "from . import consts\ndef value():\n    return consts.X\n",
        "lib/consts.py": "X = 42\n",
    })
    code = load_worker(main)
    assert code.get("VALUE") == 42
    assert {"lib", "lib.util", "lib.consts"} <= set(code.modules)
    assert "lib" not in sys.modules


async def test_imports_inside_handlers_resolve_against_the_worker(tmp_path):
    (tmp_path / "lib").mkdir()
    main = _worker(tmp_path, {
        "worker.py": '''
            from workers import Response, WorkerEntrypoint

            class Default(WorkerEntrypoint):
                async def fetch(self, request):
                    import lazy                       # first imported at request time
                    from lib import util
                    return Response(lazy.X + util.later())
        ''',
        "lazy.py": "X = 'lazy+'\n",
        "lib/__init__.py": "",
        "lib/util.py": "def later():\n    from .deep import Y\n    return Y\n",
        "lib/deep.py": "Y = 'deep'\n",
    })
    (tmp_path / "wrangler.toml").write_text(f'name = "lazy"\nmain = "{main.name}"\n')
    async with Runtime.from_config(tmp_path) as rt:
        resp = await rt.fetch("/")
        assert (resp.status, await resp.text()) == (200, "lazy+deep")
        assert "lazy" in rt.core.code.modules and "lib.deep" in rt.core.code.modules
        assert "lazy" not in sys.modules
        assert await (await rt.fetch("/")).text() == "lazy+deep"


def test_unchanged_code_is_reused_and_changed_code_is_fresh(tmp_path):
    files = {"worker.py": ENTRY, "helpers.py": "NAME = 'v1'\ndef describe():\n    return NAME\n"}
    main = _worker(tmp_path, files)
    first = load_worker(main)
    again = load_worker(main)
    assert again.module is first.module and again.modules["helpers"] is first.modules["helpers"]
    # a change in a sibling module (same size, new mtime) gives fresh module objects for all of them
    helpers = tmp_path / "helpers.py"
    helpers.write_text("NAME = 'v2'\ndef describe():\n    return NAME\n")
    st = helpers.stat()
    os.utime(helpers, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    changed = load_worker(main)
    assert changed.module is not first.module and changed.modules["helpers"] is not first.modules["helpers"]
    assert changed.get("NAME") == "v2" and first.get("NAME") == "v1"
    # fresh=True reloads even when nothing changed (a redeploy)
    assert load_worker(main, fresh=True).module is not changed.module


async def test_runtimes_share_unchanged_code(tmp_path, write_worker):
    config = write_worker(tmp_path, "from workers import Response\nasync def on_fetch(request):\n    return Response('x')\n")
    async with Runtime.from_config(config) as one, Runtime.from_config(config) as two:
        assert one.worker_module("worker") is two.worker_module("worker")


def test_syntax_error_names_file_and_line(tmp_path):
    main = _worker(tmp_path, {"worker.py": "import helpers\n", "helpers.py": "x = 1\ndef broken(:\n    pass\n"})
    with pytest.raises(WorkerLoadError) as info:
        load_worker(main)
    error = info.value
    assert str(error).startswith(f"{tmp_path / 'helpers.py'}:2: SyntaxError: ")
    assert (error.filename, error.lineno) == (str(tmp_path / "helpers.py"), 2)
    assert "helpers" not in sys.modules and "worker" not in sys.modules


def test_raise_at_import_time_names_file_and_line(tmp_path):
    main = _worker(tmp_path, {
        "worker.py": "import helpers\n",
        "helpers.py": "import os\n\nraise ValueError('bad setting')\n",
    })
    with pytest.raises(WorkerLoadError) as info:
        load_worker(main)
    assert str(info.value) == f"{tmp_path / 'helpers.py'}:3: ValueError: bad setting"


def test_missing_module_names_the_importing_line(tmp_path):
    main = _worker(tmp_path, {"worker.py": "import os\nimport does_not_exist_anywhere\n"})
    with pytest.raises(WorkerLoadError) as info:
        load_worker(main)
    assert str(info.value) == (f"{tmp_path / 'worker.py'}:2: ModuleNotFoundError: "
                               "No module named 'does_not_exist_anywhere'")


def test_a_failed_load_then_a_fix(tmp_path):
    main = _worker(tmp_path, {"worker.py": "X = (\n"})
    with pytest.raises(WorkerLoadError):
        load_worker(main)
    main.write_text("X = 'fixed'\n")
    assert load_worker(main).get("X") == "fixed"


def test_the_fingerprint_skips_environments_and_state(tmp_path):
    from cfemu.loader import fingerprint

    _worker(tmp_path, {"worker.py": "X = 1\n", "lib/mod.py": ""})
    for skipped in ("venv/lib/site-packages/pkg", ".venv/lib", ".cfemu/state", "node_modules/x", "__pycache__"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "big.py").write_text("")
    assert [Path(p).relative_to(tmp_path).as_posix() for p, _, _ in fingerprint(tmp_path)] == ["worker.py", "lib/mod.py"]
