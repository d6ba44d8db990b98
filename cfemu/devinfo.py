"""How CLI commands find a `cfemu dev` that is serving the same state directory.

`cfemu dev` writes `<state>/dev.json` (pid and URL) while it serves and removes it on exit.  The
commands whose state lives partly in the server's memory (`cfemu queues`: what is in flight;
`cfemu analytics`: the DuckDB file it holds) ask `running_server(state_dir)` and talk to the server
when there is one, or open the files directly when there is none.  The KV, D1 and R2 commands always
open their SQLite files directly (WAL lets them share the files with a running server).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["write_dev_info", "remove_dev_info", "running_server"]

_FILE = "dev.json"


def write_dev_info(state_dir: Path, url: str) -> None:
    """Record (atomically) that this process serves `state_dir` at `url`, for CLI commands to find."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url}))
    os.replace(tmp, state_dir / _FILE)


def remove_dev_info(state_dir: Path) -> None:
    """Forget the record `write_dev_info` made, if this process made it."""
    path = state_dir / _FILE
    try:
        info = json.loads(path.read_text())
        if info.get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_server(state_dir: Path) -> str | None:
    """The URL of a live `cfemu dev` on this state directory, or None."""
    try:
        info = json.loads((Path(state_dir) / _FILE).read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return url
