"""A Durable Object counter with an alarm and a hibernating WebSocket.

GET /<name>            current count of counter <name>
POST /<name>/increment add one (the response waits until the write is durable)
GET /<name>/ws         WebSocket: receives the count after every change; "ping" gets "pong"
                       without waking the object
Every counter resets itself to zero an hour after its last increment (alarm).
"""

from js import WebSocketPair, WebSocketRequestResponsePair
from workers import DurableObject, Response, WorkerEntrypoint

RESET_AFTER_MS = 3600 * 1000


class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair.new("ping", "pong"))

    async def value(self):
        return await self.ctx.storage.get("count") or 0

    async def increment(self, by=1):
        count = await self.value() + by
        await self.ctx.storage.put("count", count)
        from js import Date

        await self.ctx.storage.setAlarm(Date.now() + RESET_AFTER_MS)
        for ws in self.ctx.getWebSockets():
            ws.send(str(count))
        return count

    async def alarm(self, alarm_info=None):
        await self.ctx.storage.put("count", 0)
        for ws in self.ctx.getWebSockets():
            ws.send("0")

    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        server.send(str(await self.value()))
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if message == "increment":
            await self.increment()

    async def webSocketClose(self, ws, code, reason, was_clean):
        pass  # the runtime answers the client's close frame itself


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = [p for p in request.url.split("?")[0].split("/")[3:] if p]
        if not parts:
            return Response("Try /<name>, POST /<name>/increment or /<name>/ws\n")
        stub = self.env.COUNTER.getByName(parts[0])
        action = parts[1] if len(parts) > 1 else ""
        if action == "ws":
            if request.headers.get("upgrade") != "websocket":
                return Response("Expected a WebSocket upgrade", status=426)
            return await stub.fetch(request)
        if action == "increment" and request.method == "POST":
            return Response.json({"count": await stub.increment()})
        if action == "":
            return Response.json({"count": await stub.value()})
        return Response("Not found", status=404)
