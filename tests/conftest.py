"""Shared helpers for cfemu's own tests: tiny worker directories and real `cfemu dev` processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).resolve().parent / "workers"
CFEMU = [sys.executable, "-m", "cfemu.cli"] if not (Path(sys.executable).parent / "cfemu").exists() else [
    str(Path(sys.executable).parent / "cfemu")]
READY = re.compile(r"Ready on (http://127\.0\.0\.1:\d+)")


def _write_worker(directory: Path, code: str, toml: str = "", *, name: str = "w", main: str = "worker.py",
                 files: dict[str, str] | None = None) -> Path:
    """Write worker.py + wrangler.toml (and any sibling files) into `directory`; returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / main).parent.mkdir(parents=True, exist_ok=True)
    (directory / main).write_text(textwrap.dedent(code))
    for rel, text in (files or {}).items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(textwrap.dedent(text))
    config = directory / "wrangler.toml"
    config.write_text(f'name = "{name}"\nmain = "{main}"\ncompatibility_date = "2026-11-01"\n'
                      'compatibility_flags = ["python_workers"]\n' + textwrap.dedent(toml))
    return config


class DevProcess:
    """A `cfemu dev --port 0` subprocess: its URL, its log lines, and a clean stop."""

    command = CFEMU

    def __init__(self, config: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.config = Path(config)
        command = [*CFEMU, "dev", "--port", "0", "--config", str(config), *args]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            command, cwd=cwd or (self.config.parent if self.config.is_file() else self.config),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_ready()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        """The first log line (from index `start`) matching `pattern`; fails after `timeout` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matching {pattern!r}; output so far:\n" + "\n".join(self.lines))
                self._cond.wait(remaining)

    def _wait_ready(self) -> str:
        return self.wait_for(READY.pattern, timeout=20).group(1)

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """An index into the log: `wait_for(..., start=mark)` looks only at later lines."""
        with self._cond:
            return len(self.lines)

    def interrupt(self, timeout: float = 10.0) -> int:
        """Ctrl-C: SIGINT, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("cfemu dev did not exit within %ss of SIGINT:\n%s" % (timeout, self.output)) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def write_worker():
    """`write_worker(dir, code, toml="", files={...})` writes a tiny worker and returns its wrangler.toml."""
    return _write_worker


@pytest.fixture(scope="session")
def dev_process_class():
    """The `DevProcess` class, for module-scoped servers shared by several tests."""
    return DevProcess


@pytest.fixture
def dev_server() -> Iterator:
    """`dev_server(config, *args)` starts `cfemu dev --port 0` and kills it when the test ends."""
    procs: list[DevProcess] = []

    def start(config: Path, *args: str, **kwargs) -> DevProcess:
        proc = DevProcess(config, *args, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
