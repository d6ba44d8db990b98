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

import builtins
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import WorkerLoadError

__all__ = ["WorkerCode", "load_worker", "fingerprint", "install_sdk_modules"]

_lock = threading.RLock()
_cache: dict[tuple[Path, Path], WorkerCode] = {}
_real_import = builtins.__import__
# (a virtual environment beside worker.py would otherwise be walked on every runtime start)
_SKIP_DIRS = {"__pycache__", "node_modules", ".git", ".venv", "venv", "site-packages", "__pypackages__", "static",
              "public", ".cfemu", ".wrangler"}


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


class _WorkerSourceLoader(importlib.machinery.SourceFileLoader):
    """Executes a worker module with builtins whose `__import__` knows the worker's directory."""

    worker_builtins: dict[str, Any] = {}

    def exec_module(self, module: ModuleType) -> None:
        # Functions keep their module's builtins, so an `import rooms` inside a handler, run long
        # after loading, still resolves against the worker's directory.
        module.__dict__["__builtins__"] = self.worker_builtins
        super().exec_module(module)


class _WorkerImports:
    """The worker's own top-level names, its loaded modules, and how to import more of them later."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_str = str(root)
        self.local = _local_names(root)
        self.modules: dict[str, ModuleType] = {}
        self.active = False
        self.finder = _WorkerFinder(self)
        self.builtins = dict(builtins.__dict__)
        self.builtins["__import__"] = self._import

    def owns(self, name: str, globals_: Any, level: int) -> bool:
        if level == 0:
            return name.partition(".")[0] in self.local
        package = (globals_ or {}).get("__package__") or ""
        return package.partition(".")[0] in self.local

    def _import(self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if self.active or not self.owns(name, globals, level):
            return _real_import(name, globals, locals, fromlist, level)
        with self.activated():
            return _real_import(name, globals, locals, fromlist, level)

    @contextmanager
    def activated(self):
        """While inside: the worker's modules are in `sys.modules` and its finder comes first."""
        with _lock:
            if self.active:
                yield
                return
            # Hide anything of the same name already imported (an installed package, another worker's module).
            shadowed = {}
            for name in list(sys.modules):
                if name.split(".", 1)[0] in self.local:
                    shadowed[name] = sys.modules.pop(name)
            sys.modules.update(self.modules)
            sys.meta_path.insert(0, self.finder)
            self.active = True
            try:
                yield
            finally:
                self.active = False
                sys.meta_path.remove(self.finder)
                mine = [n for n, m in sys.modules.items() if isinstance(m, ModuleType) and _under(m, self.root_str)]
                for name in mine:
                    self.modules[name] = sys.modules.pop(name)
                for name in [n for n in sys.modules if n.split(".", 1)[0] in self.local]:
                    del sys.modules[name]
                sys.modules.update(shadowed)


class _WorkerFinder(importlib.abc.MetaPathFinder):
    """Finds the worker's own modules before anything installed."""

    def __init__(self, imports: _WorkerImports) -> None:
        self.imports = imports

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        top = fullname.split(".", 1)[0]
        if top not in self.imports.local:
            return None
        search = [self.imports.root_str] if "." not in fullname else path
        spec = importlib.machinery.PathFinder.find_spec(fullname, search)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            loader = _WorkerSourceLoader(spec.loader.name, spec.loader.path)
            loader.worker_builtins = self.imports.builtins
            spec.loader = loader
        return spec


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
    imports = _WorkerImports(root)
    with imports.activated():
        try:
            module = importlib.import_module(main.stem)
        except BaseException as e:  # noqa: BLE001 - any failure to import is reported the same way
            raise _load_error(e, root) from e
    return WorkerCode(root=root, main=main, module=module, modules=imports.modules)


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
    "pyodide.http": "cfemu.sdk.pyodide_http",
    "asgi": "cfemu.sdk.asgi",
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
