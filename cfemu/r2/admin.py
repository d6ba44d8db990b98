"""What `cfemu r2 object ...` does to a bucket, and `cfemu dev`'s internal R2 endpoints that do it.

The CLI runs these operations on the bucket's files itself when no `cfemu dev` serves the state
directory, and asks the server otherwise; the server runs them on the bucket its worker uses (the
same metadata connection), so both paths give the same answers and the same errors.

Endpoints, under `/cdn-cgi/cfemu/r2/<bucket name or binding>/`:
    POST put?key=&contentType=&cacheControl=   body: the object's bytes  -> the object, described
    GET  get?key=     -> the object's bytes (404 {"error"} when there is none)
    POST delete?key=  -> {}
    GET  list?prefix= -> {"objects": [described...]} (every page)
A bucket the server's config does not name answers 404 "not served": the CLI opens the files.
"""

from __future__ import annotations

from typing import Any

import apsw

from ..devinfo import NOT_SERVED

__all__ = ["METADATA_UNUSABLE", "NO_SUCH_KEY", "describe", "put_object", "get_object", "delete_object",
           "list_objects", "handle"]

METADATA_UNUSABLE = "the R2 bucket's metadata file could not be used: {error}"
NO_SUCH_KEY = "The specified key does not exist: {bucket}/{key}"


def describe(obj: Any) -> dict[str, Any]:
    """An R2 object's metadata as JSON: key, size, etag, version, uploaded, http and custom metadata."""
    http = dict(obj.httpMetadata or {})
    if "cacheExpiry" in http:
        http["cacheExpiry"] = http["cacheExpiry"].isoformat()
    return {"key": obj.key, "size": obj.size, "etag": obj.etag, "version": obj.version,
            "uploaded": obj.uploaded.isoformat(), "httpMetadata": http, "customMetadata": dict(obj.customMetadata or {})}


async def put_object(bucket: Any, key: str, data: bytes, http: dict[str, str]) -> dict[str, Any]:
    """`wrangler r2 object put`: `R2Bucket.put` with the given HTTP metadata."""
    return describe(await bucket.put(key, data, httpMetadata=http))


async def get_object(bucket: Any, key: str) -> bytes | None:
    """`wrangler r2 object get`: the object's body, or None when there is no such object."""
    obj = await bucket.get(key)
    return None if obj is None else await obj.bytes()


async def delete_object(bucket: Any, key: str) -> None:
    """`wrangler r2 object delete`: `R2Bucket.delete`."""
    await bucket.delete(key)


async def list_objects(bucket: Any, prefix: str) -> list[dict[str, Any]]:
    """Every object under `prefix` (all pages), described."""
    objects: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await bucket.list(prefix=prefix, cursor=cursor, include=["httpMetadata", "customMetadata"])
        objects += [describe(o) for o in page["objects"]]
        if not page["truncated"]:
            return objects
        cursor = page["cursor"]


def _bucket(runtime: Any, name: str) -> Any | None:
    service = runtime.service("r2")
    if service is None:
        return None
    for cfg in runtime.config.r2_buckets:
        if name in (cfg.bucket_name, cfg.binding):
            return service.bindings()[cfg.binding]
    return None


async def handle(request: Any, runtime: Any, segments: list[str]) -> Any:
    """Answer `/cdn-cgi/cfemu/r2/<bucket>/<verb>` on the runtime's bucket."""
    from aiohttp import web

    if len(segments) != 2:
        return None
    name, verb = segments
    if (request.method, verb) not in {("POST", "put"), ("GET", "get"), ("POST", "delete"), ("GET", "list")}:
        return None
    bucket = _bucket(runtime, name)
    if bucket is None:
        return web.json_response({"error": f"no R2 bucket {name!r} in the config", NOT_SERVED: True}, status=404)
    key = request.query.get("key", "")
    try:
        if verb == "put":
            http = {k: request.query[k] for k in ("contentType", "cacheControl") if request.query.get(k)}
            # Read the stream itself: an object may be larger than the server's request body cap.
            return web.json_response(await put_object(bucket, key, await request.content.read(), http))
        if verb == "get":
            data = await get_object(bucket, key)
            if data is None:
                return web.json_response({"error": NO_SUCH_KEY.format(bucket=bucket.name, key=key)}, status=404)
            return web.Response(body=data, content_type="application/octet-stream")
        if verb == "delete":
            await delete_object(bucket, key)
            return web.json_response({})
        return web.json_response({"objects": await list_objects(bucket, request.query.get("prefix", ""))})
    except apsw.Error as e:
        return web.json_response({"error": METADATA_UNUSABLE.format(error=e)}, status=500)
