"""How CLI commands find a `cfemu dev` that is serving the same state directory.

`cfemu dev` writes `<state>/dev.json` (pid and URL) while it serves and removes it on exit.  The
`cfemu kv|d1|r2|queues|analytics` commands ask `running_server(state_dir)` and, when there is a
server, act through it (`cfemu.devclient`) on the very objects its worker uses, so nothing races
the server's open files or its in-memory state; when there is none they open the files directly.
The internal endpoints live under `INTERNAL_PREFIX` and answer loopback clients only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["INTERNAL_PREFIX", "NOT_SERVED", "write_dev_info", "remove_dev_info", "running_server"]

_FILE = "dev.json"

INTERNAL_PREFIX = "/cdn-cgi/cfemu/"
# An internal endpoint's error body `{"error": ..., NOT_SERVED: true}` says the server has no such
# binding (its config differs): the CLI then opens the files itself, as with no server at all.
NOT_SERVED = "not_served"


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
