import asyncio

from js import Date, WebSocketPair, WebSocketRequestResponsePair
from workers import DurableObject, Response, WorkerEntrypoint

CONSTRUCTED = {"count": 0}


async def other_io():
    """A suspension that is not a timer (like a subrequest): a few event-loop turns.

    (asyncio.sleep(n) would wait on the runtime's clock, which is virtual in these tests.)
    """
    for _ in range(3):
        await asyncio.sleep(0)


class CustomError(Exception):
    pass


class Store(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        CONSTRUCTED["count"] += 1
        self.memory = 0

    async def incr(self, key="n"):
        value = await self.ctx.storage.get(key) or 0
        await self.ctx.storage.put(key, value + 1)
        return value + 1

    async def incr_with_io(self, key="n"):
        # A real suspension between read and write: not protected by the input gate.
        value = await self.ctx.storage.get(key) or 0
        await other_io()
        await self.ctx.storage.put(key, value + 1)
        return value + 1

    async def get(self, key):
        return await self.ctx.storage.get(key)

    async def put(self, key, value):
        await self.ctx.storage.put(key, value)

    def bump_memory(self):
        self.memory += 1
        return self.memory

    def echo(self, *args, **kwargs):
        return {"args": args and list(args), "kwargs": kwargs}

    def mutate(self, value):
        value["mutated"] = True
        return value

    def give_tuple(self):
        return (1, 2)

    def fail_value(self):
        raise ValueError("bad value")

    def fail_custom(self):
        raise CustomError("custom failure")

    def _private(self):
        return "secret"

    async def blocked(self):
        async def slow():
            await other_io()
            await self.ctx.storage.put("blocked", "done")
            return "result"

        return await self.ctx.blockConcurrencyWhile(slow)

    async def block_and_fail(self):
        async def bad():
            raise RuntimeError("init failed")

        await self.ctx.blockConcurrencyWhile(bad)

    def abort_me(self):
        self.ctx.abort("aborted on purpose")

    async def sql_count(self):
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (1)")
        return self.ctx.storage.sql.exec("SELECT count(*) AS n FROM t").one()["n"]

    async def set_alarm_in(self, seconds, fail_times=0):
        await self.ctx.storage.put("fail_times", fail_times)
        await self.ctx.storage.put("runs", [])
        await self.ctx.storage.setAlarm(Date.now() + int(seconds * 1000))

    async def get_alarm(self):
        return await self.ctx.storage.getAlarm()

    async def alarm(self, alarm_info=None):
        runs = await self.ctx.storage.get("runs") or []
        runs.append({"at": Date.now(), "retryCount": alarm_info["retryCount"], "isRetry": alarm_info["isRetry"]})
        await self.ctx.storage.put("runs", runs)
        fail_times = await self.ctx.storage.get("fail_times") or 0
        if len(runs) <= fail_times:
            raise RuntimeError("alarm failure")

    async def fetch(self, request):
        if request.headers.get("upgrade") == "websocket" and "std" in request.url:
            # The standard API: the object stays in memory while the socket is open.
            client, server = WebSocketPair.new().object_values()
            server.accept()

            async def on_message(event):
                n = await self.incr("std")
                server.send(f"{event.data}#{n}")

            server.addEventListener("message", on_message)
            return Response(None, status=101, web_socket=client)
        if request.headers.get("upgrade") == "websocket":
            client, server = WebSocketPair.new().object_values()
            tag = request.url.rsplit("tag=", 1)[-1] if "tag=" in request.url else "all"
            self.ctx.acceptWebSocket(server, [tag])
            self.ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair.new("ping", "pong"))
            server.serializeAttachment({"tag": tag})
            return Response(None, status=101, web_socket=client)
        n = await self.incr("fetches")
        return Response(f"fetch {n} {request.method} {request.url}")

    async def webSocketMessage(self, ws, message):
        count = await self.incr("messages")
        tag = ws.deserializeAttachment()["tag"]
        for other in self.ctx.getWebSockets(tag):
            other.send(f"{message}#{count}#{CONSTRUCTED['count']}")

    async def webSocketClose(self, ws, code, reason, was_clean):
        await self.ctx.storage.put("closed", [code, reason, was_clean])


class Legacy(DurableObject):
    async def try_sql(self):
        return self.ctx.storage.sql.exec("SELECT 1").toArray()

    async def put(self, key, value):
        await self.ctx.storage.put(key, value)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("/", 3)[3]
        name, _, rest = path.partition("/")
        stub = self.env.STORE.getByName(name)
        if rest == "incr":
            return Response(str(await stub.incr()))
        return await stub.fetch(request)
