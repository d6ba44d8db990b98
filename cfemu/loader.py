"""Loading worker code the way Cloudflare does, without disturbing the rest of the process.

The modules beside `main` import each other as top-level modules (`from rooms import ChatRoom`).
While a worker loads, a finder at the front of `sys.meta_path` resolves top-level names that exist
in the worker's directory; afterwards the worker's modules are taken out of `sys.modules` (and any
installed module they shadowed is put back), so two workers with a `rooms.py` each, or a worker
with a module named like an installed package, never collide.  Loaded code is cached by the
fingerprint of the directory's Python files: an unchanged worker is not imported again, a changed
one gets fresh module objects.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import WorkerLoadError

__all__ = ["WorkerCode", "load_worker", "fingerprint", "install_sdk_modules"]

_lock = threading.RLock()
_cache: dict[tuple[Path, Path], WorkerCode] = {}
_SKIP_DIRS = {"__pycache__", "node_modules", ".git", ".venv", "static", "public", ".cfemu", ".wrangler"}


@dataclass
class WorkerCode:
    """A loaded worker: its main module and every sibling module it imported."""

    root: Path
    main: Path
    module: ModuleType
    modules: dict[str, ModuleType] = field(default_factory=dict)
    stamp: tuple = ()

    def get(self, name: str) -> Any:
        return getattr(self.module, name, None)


def fingerprint(root: Path) -> tuple:
    """(path, mtime_ns, size) of every .py file under `root`: changes when code changes."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out.append((path, st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_worker(main: Path, *, fresh: bool = False) -> WorkerCode:
    """Import the worker whose entry module is `main`, reusing the cached modules when unchanged."""
    main = Path(main).resolve()
    root = main.parent
    key = (root, main)
    with _lock:
        stamp = fingerprint(root)
        cached = _cache.get(key)
        if cached is not None and cached.stamp == stamp and not fresh:
            return cached
        code = _import(root, main)
        code.stamp = stamp
        _cache[key] = code
        return code


class _WorkerFinder(importlib.abc.MetaPathFinder):
    """Finds top-level modules in the worker's directory before anything installed."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if "." in fullname:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [self.root])


def _local_names(root: Path) -> set[str]:
    names = set()
    for entry in root.iterdir():
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").exists():
            names.add(entry.name)
    return names


def _under(module: ModuleType, root: str) -> bool:
    path = getattr(module, "__file__", None)
    return bool(path) and os.path.abspath(path).startswith(root + os.sep)


def _import(root: Path, main: Path) -> WorkerCode:
    install_sdk_modules()
    root_str = str(root)
    local = _local_names(root)
    # Hide anything of the same name already imported (an installed package, another worker's module).
    shadowed = {}
    for name in list(sys.modules):
        top = name.split(".", 1)[0]
        if top in local:
            shadowed[name] = sys.modules.pop(name)
    finder = _WorkerFinder(root)
    sys.meta_path.insert(0, finder)
    main_name = main.stem
    try:
        try:
            module = importlib.import_module(main_name)
        except BaseException as e:  # noqa: BLE001 - any failure to import is reported the same way
            raise _load_error(e, root) from e
        modules = {name: mod for name, mod in sys.modules.items() if isinstance(mod, ModuleType) and _under(mod, root_str)}
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n, m in sys.modules.items() if isinstance(m, ModuleType) and _under(m, root_str)]:
            del sys.modules[name]
        for name in [n for n in sys.modules if n.split(".", 1)[0] in local]:
            del sys.modules[name]
        sys.modules.update(shadowed)
    return WorkerCode(root=root, main=main, module=module, modules=modules)


def _load_error(error: BaseException, root: Path) -> WorkerLoadError:
    """A message that names the worker's file and line where the import failed."""
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{error.filename}:{error.lineno}"
        return WorkerLoadError(f"{where}: SyntaxError: {error.msg}", filename=error.filename, lineno=error.lineno)
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if f.filename.startswith(str(root) + os.sep)]
    frame = mine[-1] if mine else (frames[-1] if frames else None)
    detail = f"{type(error).__name__}: {error}"
    if frame is None:
        return WorkerLoadError(f"worker failed to load: {detail}")
    return WorkerLoadError(f"{frame.filename}:{frame.lineno}: {detail}", filename=frame.filename, lineno=frame.lineno)


_SDK_NAMES = {
    "workers": "cfemu.sdk.workers",
    "js": "cfemu.sdk.js",
    "pyodide": "cfemu.sdk.pyodide",
    "pyodide.ffi": "cfemu.sdk.pyodide_ffi",
}


def install_sdk_modules() -> None:
    """Register cfemu's `workers`, `js` and `pyodide.ffi` in `sys.modules`.

    They stay registered after loading so that imports inside handlers keep working; a real module
    already registered under one of these names (it would be an unrelated package) is left alone
    outside worker loading.
    """
    for name, target in _SDK_NAMES.items():
        existing = sys.modules.get(name)
        if existing is not None and getattr(existing, "__cfemu__", False):
            continue
        sys.modules[name] = importlib.import_module(target)
