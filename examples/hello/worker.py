"""Hello world: a worker with a var, JSON, a WebSocket echo and a cron trigger."""

from js import Date, WebSocketPair
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("/", 3)[-1] if request.url.count("/") >= 3 else ""
        if request.headers.get("upgrade") == "websocket":
            client, server = WebSocketPair.new().object_values()
            server.accept()
            server.addEventListener("message", lambda event: server.send(f"echo: {event.data}"))
            return Response(None, status=101, web_socket=client)
        if path == "time":
            return Response.json({"now": Date.now()})
        return Response(f"Hello from {self.env.GREETING}!")

    async def scheduled(self, controller, env, ctx):
        print(f"cron {controller.cron} fired at {controller.scheduledTime}")
