"""What `cfemu kv key ...` does to a namespace, and `cfemu dev`'s internal KV endpoints that do it.

The CLI runs these operations on the namespace file itself when no `cfemu dev` serves the state
directory, and asks the server otherwise; the server runs the same operations on the namespace its
worker uses (`env.<binding>`), so both paths give the same answers and the same errors.

Endpoints, under `/cdn-cgi/cfemu/kv/<namespace id>/` (all JSON unless said otherwise):
    POST put?key=&ttl=&expiration=&metadata=<json>   body: the value's bytes   -> {}
    GET  get?key=&expiration=1   -> the value's bytes; header `cfemu-kv-entry`: {found, metadata, expiration}
    POST delete?key=             -> {}
    GET  list?prefix=            -> {"keys": [{name, expiration?, metadata?}...]} (every page)
    GET  count                   -> {"keys": n}  (rows stored, expired ones not yet purged included)
A namespace id the server's config does not bind answers 404 "not served": the CLI opens the file.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..devinfo import NOT_SERVED

__all__ = ["FILE_UNUSABLE", "ENTRY_HEADER", "put_value", "get_value", "delete_key", "list_keys", "handle"]

FILE_UNUSABLE = "the KV namespace file could not be used: {error}"
ENTRY_HEADER = "cfemu-kv-entry"


async def put_value(ns: Any, name: str, data: str | bytes, *, ttl: int | None, expiration: int | None,
                    metadata: Any) -> None:
    """`cfemu kv key put`: `KVNamespace.put` with the CLI's options."""
    await ns.put(name, data, expirationTtl=ttl, expiration=expiration, metadata=metadata)


async def get_value(ns: Any, name: str, *, with_expiration: bool) -> dict[str, Any]:
    """`cfemu kv key get`: {value (bytes or None), metadata, expiration (only when asked)}."""
    result = await ns.getWithMetadata(name, type="arrayBuffer")
    expiration = None
    if with_expiration and result["value"] is not None:
        # getWithMetadata does not say when the key expires; a one-key list does.
        listed = await ns.list(prefix=name, limit=1)
        if listed["keys"] and listed["keys"][0]["name"] == name:
            expiration = listed["keys"][0].get("expiration")
    return {"value": result["value"], "metadata": result["metadata"], "expiration": expiration}


async def delete_key(ns: Any, name: str) -> None:
    """`cfemu kv key delete`: `KVNamespace.delete`."""
    await ns.delete(name)


async def list_keys(ns: Any, prefix: str | None) -> list[dict[str, Any]]:
    """`cfemu kv key list`: every key (all pages) as {name, expiration?, metadata?}."""
    keys: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await ns.list(prefix=prefix, cursor=cursor)
        keys.extend(dict(k) for k in page["keys"])
        if page["list_complete"]:
            return keys
        cursor = page["cursor"]


def _namespace(runtime: Any, namespace_id: str) -> Any | None:
    service = runtime.service("kv")
    if service is None:
        return None
    for cfg in runtime.config.kv_namespaces:
        if cfg.id == namespace_id:
            return service.namespace(cfg.binding)
    return None


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


async def handle(request: Any, runtime: Any, segments: list[str]) -> Any:
    """Answer `/cdn-cgi/cfemu/kv/<id>/<verb>` on the runtime's namespace."""
    from aiohttp import web

    if len(segments) != 2:
        return None
    namespace_id, verb = segments
    route = {("POST", "put"), ("GET", "get"), ("POST", "delete"), ("GET", "list"), ("GET", "count")}
    if (request.method, verb) not in route:
        return None
    ns = _namespace(runtime, namespace_id)
    if ns is None:
        return web.json_response({"error": f"no KV namespace with id {namespace_id!r} is bound", NOT_SERVED: True},
                                 status=404)
    query = request.query
    try:
        if verb == "put":
            try:
                ttl, expiration = _int(query.get("ttl")), _int(query.get("expiration"))
                metadata = json.loads(query["metadata"]) if "metadata" in query else None
            except ValueError as e:
                return web.json_response({"error": f"bad put options: {e}"}, status=400)
            # Read the stream itself: the value may be larger than the server's request body cap.
            data = await request.content.read()
            await put_value(ns, query.get("key", ""), data, ttl=ttl, expiration=expiration, metadata=metadata)
            return web.json_response({})
        if verb == "get":
            got = await get_value(ns, query.get("key", ""), with_expiration=query.get("expiration") == "1")
            entry = {"found": got["value"] is not None, "metadata": got["metadata"], "expiration": got["expiration"]}
            return web.Response(body=got["value"] or b"", content_type="application/octet-stream",
                                headers={ENTRY_HEADER: json.dumps(entry)})
        if verb == "delete":
            await delete_key(ns, query.get("key", ""))
            return web.json_response({})
        if verb == "count":
            return web.json_response({"keys": ns._store.count()})
        return web.json_response({"keys": await list_keys(ns, query.get("prefix"))})
    except sqlite3.Error as e:
        return web.json_response({"error": FILE_UNUSABLE.format(error=e)}, status=500)
