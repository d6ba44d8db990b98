from js import Date, WebSocketPair
from workers import Response, WorkerEntrypoint

from version import VERSION

crons = []
closes = []


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.path.split("?")[0]
        if path == "/ws" and request.headers.get("upgrade") == "websocket":
            return self.websocket()
        if path == "/":
            return Response(f"{self.env.GREETING} from {VERSION}")
        if path == "/echo":
            return Response.json({
                "method": request.method,
                "url": request.url,
                "body": await request.text(),
                "x-test": request.headers.get("X-Test"),
                "colo": request.cf.colo,
                "ip": request.headers.get("cf-connecting-ip"),
            }, status=201, headers={"x-worker": "yes"})
        if path == "/var":
            return Response(self.env.EXTRA)
        if path == "/kv":
            if request.method == "PUT":
                await self.env.KV.put("k", await request.text())
                return Response("stored")
            return Response(await self.env.KV.get("k") or "<none>")
        if path == "/crons":
            return Response.json(crons)
        if path == "/stream":
            async def chunks():
                for i in range(3):
                    yield f"chunk{i};"
            return Response(chunks(), headers={"content-type": "text/plain"})
        if path == "/size":
            return Response(str(len(await request.bytes())))
        if path == "/closes":
            return Response.json(closes)
        if path == "/boom":
            raise RuntimeError("boom")
        return Response("worker 404", status=404)

    def websocket(self):
        client, server = WebSocketPair.new().object_values()
        server.accept()

        def on_message(event):
            if event.data == "close-me":
                server.close(4000, "as asked")
            elif isinstance(event.data, bytes):
                server.send(event.data[::-1])
            else:
                server.send(f"echo: {event.data}")

        server.addEventListener("message", on_message)
        server.addEventListener("close", lambda event: closes.append([event.code, event.reason, event.wasClean]))
        server.send("welcome")  # before the response: the client must still get it first
        return Response(None, status=101, web_socket=client)

    async def scheduled(self, controller, env, ctx):
        crons.append([controller.cron, controller.scheduledTime, Date.now()])
