"""A tiny R2-backed file server (for cfemu's R2 tests), written as one would for Cloudflare."""

from workers import Headers, Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        key = request.url.split("/", 3)[3].split("?")[0]
        bucket = self.env.BUCKET
        if request.method == "PUT":
            obj = await bucket.put(key, await request.bytes(), httpMetadata=request.headers,
                                   customMetadata={"by": "worker"})
            return Response.json({"key": obj.key, "etag": obj.etag, "size": obj.size})
        if request.method == "DELETE":
            await bucket.delete(key)
            return Response(None, status=204)
        if key == "":
            listed = await bucket.list(delimiter="/", include=["customMetadata"])
            return Response.json({
                "keys": [o.key for o in listed["objects"]],
                "prefixes": listed["delimitedPrefixes"],
                "meta": [o.customMetadata for o in listed["objects"]],
            })
        obj = await bucket.get(key, onlyIf=request.headers, range=request.headers)
        if obj is None:
            return Response("Not found", status=404)
        headers = Headers()
        obj.writeHttpMetadata(headers)
        headers.set("etag", obj.httpEtag)
        if not hasattr(obj, "body"):
            return Response(None, status=304 if request.headers.get("if-none-match") else 412, headers=headers)
        status = 206 if request.headers.get("range") else 200
        return Response(obj.body, status=status, headers=headers)
