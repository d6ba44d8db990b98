"""`cfemu dev`'s internal queue endpoints, for `cfemu queues` (see `cfemu.devclient`).

GET  queues          -> {"queues": [counts...]}   (the running broker knows what is in flight)
POST queues/purge?queue=<name> -> {"purged": n}   (also drops the broker's in-memory schedule)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

__all__ = ["handle"]


async def handle(request: web.Request, runtime: Any, segments: list[str]) -> web.Response | None:
    """Answer `/cdn-cgi/cfemu/queues/...` from the runtime's queue broker."""
    queues = runtime.service("queues")
    if segments == [] and request.method == "GET":
        return web.json_response({"queues": [] if queues is None else [asdict(c) for c in queues.stats()]})
    if segments == ["purge"] and request.method == "POST":
        queue = request.query.get("queue", "")
        if not queue:
            return web.json_response({"error": "purge needs ?queue=<name>"}, status=400)
        return web.json_response({"purged": 0 if queues is None else queues.purge(queue)})
    return None
