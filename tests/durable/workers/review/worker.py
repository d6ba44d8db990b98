"""Durable Objects used by the review tests (tests/durable/test_review_*.py).

Module-level state lets a test hold an event open (GATES) and see what ran (LOG).
"""

import asyncio

from js import Date, WebSocketPair, WebSocketRequestResponsePair, clearInterval, setInterval, setTimeout
from workers import DurableObject, Response, WorkerEntrypoint

GATES = {}
LOG = []
CONSTRUCTED = {"Probe": 0, "SlowInit": 0}


def gate(name):
    """An asyncio.Event the test opens with `GATES[name].set()`."""
    if name not in GATES:
        GATES[name] = asyncio.Event()
    return GATES[name]


async def vsleep(ms):
    """Sleep on the runtime clock (virtual in tests)."""
    future = asyncio.get_running_loop().create_future()
    setTimeout(lambda: future.done() or future.set_result(None), ms)
    await future


class Probe(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        CONSTRUCTED["Probe"] += 1
        self.memory = 0

    # -- plain storage -------------------------------------------------------------------------

    async def read(self, key):
        return await self.ctx.storage.get(key)

    async def write(self, key, value):
        await self.ctx.storage.put(key, value)

    async def append(self, item):
        items = await self.ctx.storage.get("log") or []
        items.append(item)
        await self.ctx.storage.put("log", items)
        return len(items)

    async def put_then_raise(self, key):
        await self.ctx.storage.put(key, "written")
        raise ValueError("raised after a write")

    def bump(self):
        self.memory += 1
        return self.memory

    # -- sync vs coroutine RPC -------------------------------------------------------------------

    def sync_value(self, x):
        return {"sync": x}

    async def async_value(self, x):
        await asyncio.sleep(0)
        return {"async": x}

    def returns_coroutine(self, x):
        return self.async_value(x)

    # -- gates -----------------------------------------------------------------------------------

    async def hold(self, name):
        """blockConcurrencyWhile around a wait the test controls; then records `phase`."""

        async def body():
            await gate(name).wait()
            await self.ctx.storage.put("phase", name)
            return name

        return await self.ctx.blockConcurrencyWhile(body)

    async def wait_for(self, name):
        """An event that stays in flight until the test opens GATES[name]."""
        LOG.append(("started", name))
        await gate(name).wait()
        LOG.append(("finished", name))
        return name

    async def via_other(self, other, name):
        """Await another object's call (non-storage I/O), then report what this object holds."""
        LOG.append(("waiting on other", name))
        await self.env.PROBE.getByName(other).wait_for(name)
        LOG.append(("resumed", name))
        return await self.ctx.storage.get("phase")

    def background_via_other(self, other, name):
        """ctx.waitUntil() of work that awaits another object, then records what this object holds."""

        async def work():
            await self.env.PROBE.getByName(other).wait_for(name)
            LOG.append(("background resumed", name, self.ctx.storage.kv.get("phase")))

        self.ctx.waitUntil(work())

    async def delete_alarm_then_wait(self, name):
        await self.ctx.storage.deleteAlarm()
        await gate(name).wait()

    async def txn_wait(self, name):
        """A transaction whose closure waits (non-storage) until the test opens GATES[name]."""

        async def closure(txn):
            await txn.put("t", 1)
            await gate(name).wait()

        await self.ctx.storage.transaction(closure)

    def abort_then_continue(self):
        self.ctx.abort("stop here")
        LOG.append(("after abort",))

    async def bcw_forever(self):
        async def body():
            await vsleep(10 * 60 * 1000)

        await self.ctx.blockConcurrencyWhile(body)
        return "done"

    async def bcw_for(self, ms):
        """blockConcurrencyWhile around a sleep of `ms` on the runtime clock."""

        async def body():
            await vsleep(ms)
            return "done"

        return await self.ctx.blockConcurrencyWhile(body)

    async def bcw_not_a_function(self):
        """The common slip: passing the coroutine (self.body()) instead of the function."""

        async def body():
            return 1

        try:
            await self.ctx.blockConcurrencyWhile(body())
        except Exception as error:  # noqa: BLE001 - reported to the test
            self.memory += 10
            return [getattr(error, "name", type(error).__name__), str(error)]

    async def txn_for(self, ms):
        """A transaction() whose closure sleeps `ms` on the runtime clock after a write."""

        async def closure(txn):
            await txn.put("slow-txn", True)
            await vsleep(ms)

        await self.ctx.storage.transaction(closure)
        return "done"

    async def txn_raise(self):
        """A transaction() whose closure raises after a write."""

        async def closure(txn):
            await txn.put("raised-txn", True)
            raise ValueError("closure failed")

        self.memory += 100
        await self.ctx.storage.transaction(closure)

    # -- alarms ----------------------------------------------------------------------------------

    async def set_alarm(self, when_ms, mode="record"):
        await self.ctx.storage.put("mode", mode)
        await self.ctx.storage.setAlarm(when_ms)

    async def get_alarm(self):
        return await self.ctx.storage.getAlarm()

    async def delete_alarm(self):
        await self.ctx.storage.deleteAlarm()

    async def alarm(self, info=None):
        mode = await self.ctx.storage.get("mode") or "record"
        runs = await self.ctx.storage.get("runs") or []
        runs.append({"at": Date.now(), "retryCount": info["retryCount"] if info else None})
        await self.ctx.storage.put("runs", runs)
        LOG.append(("alarm", mode, len(runs)))
        if mode == "rearm" and len(runs) == 1:
            # a new alarm set inside the handler, which then keeps running for 2 s
            await self.ctx.storage.setAlarm(Date.now() + 1000)
            await vsleep(2000)
        elif mode == "rearm_now" and len(runs) == 1:
            await self.ctx.storage.setAlarm(Date.now())
        elif mode == "slow" and len(runs) == 1:
            await vsleep(20 * 60 * 1000)  # 20 minutes on the runtime clock
            LOG.append(("alarm slept", len(runs)))
        elif mode == "hang" and len(runs) == 1:
            await gate("alarm-hang").wait()

    # -- fetch / WebSockets ----------------------------------------------------------------------

    async def fetch(self, request):
        url = request.url
        if request.headers.get("upgrade") == "websocket":
            client, server = WebSocketPair.new().object_values()
            if "std" in url:
                server.accept()

                async def on_message(event):
                    server.send(f"phase={await self.ctx.storage.get('phase')}")

                server.addEventListener("message", on_message)
            else:
                tags = url.split("tags=", 1)[1].split(",") if "tags=" in url else []
                self.ctx.acceptWebSocket(server, tags)
                server.serializeAttachment({"tags": tags})
            return Response(None, status=101, web_socket=client)
        body = await request.text() if request.method not in ("GET", "HEAD") else ""
        return Response(f"{request.method} {url} {request.headers.get('x-probe')} {body}")

    async def webSocketMessage(self, ws, message):
        if message == "tags":
            ws.send(",".join(self.ctx.getTags(ws)))
        elif message.startswith("count:"):
            tag = message[len("count:"):]
            ws.send(str(len(self.ctx.getWebSockets(tag))))
        elif message == "attachment":
            ws.send(repr(ws.deserializeAttachment()))
        elif message == "constructed":
            ws.send(str(CONSTRUCTED["Probe"]))
        elif message == "big-attachment":
            try:
                ws.serializeAttachment("x" * 17000)
                ws.send("accepted")
            except Exception as error:  # noqa: BLE001
                ws.send(f"{type(error).__name__}")
        elif message == "write-then-ack":
            await self.ctx.storage.put("acked", True)
            await asyncio.sleep(0)  # a real suspension: the write commits (or fails) here
            ws.send("ack")
        elif message == "timer":
            setTimeout(lambda: ws.send("tick"), 30_000)
            ws.send("armed")
        elif message == "interval":
            self.interval = setInterval(lambda: ws.send("tick"), 5_000)
            ws.send("armed")
        elif message == "stop-interval":
            clearInterval(self.interval)
            ws.send("stopped")
        elif message.startswith("slow:"):
            self.memory += 1
            await vsleep(int(message[len("slow:"):]))
            ws.send(f"slow done {self.memory}")
        elif message.startswith("event-timeout:"):
            ms = int(message[len("event-timeout:"):])
            self.ctx.setHibernatableWebSocketEventTimeout(ms or None)
            ws.send(str(self.ctx.getHibernatableWebSocketEventTimeout()))
        elif message == "close-me":
            ws.close(4001, "bye")

    async def webSocketError(self, ws, error):
        await self.ctx.storage.put("ws_error", str(error))

    async def webSocketClose(self, ws, code, reason, was_clean):
        await self.ctx.storage.put("ws_closed", [code, reason, was_clean])
        try:
            tags = self.ctx.getTags(ws)
        except Exception as error:  # noqa: BLE001 - recorded for the test
            tags = f"{type(error).__name__}: {error}"
        await self.ctx.storage.put("ws_closed_tags", tags)

    async def accept_many_tags(self, tags):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server, tags)
        return self.ctx.getTags(server)


    def tags_error(self, how):
        """getTags() on a socket that is not hibernatable: `how` is "accept" or "none"."""
        client, server = WebSocketPair.new().object_values()
        if how == "accept":
            server.accept()
        try:
            self.ctx.getTags(server)
        except Exception as error:  # noqa: BLE001 - reported to the test
            return [getattr(error, "name", type(error).__name__), str(error)]
        return None

    def accept_after_accept(self):
        client, server = WebSocketPair.new().object_values()
        server.accept()
        self.ctx.acceptWebSocket(server)

    def set_auto_response(self, request_len, response_len):
        pair = WebSocketRequestResponsePair.new("q" * request_len, "r" * response_len)
        self.ctx.setWebSocketAutoResponse(pair)

    def set_event_timeout(self, ms):
        self.ctx.setHibernatableWebSocketEventTimeout(ms)
        return self.ctx.getHibernatableWebSocketEventTimeout()


class KvProbe(DurableObject):
    async def write(self, key, value):
        await self.ctx.storage.put(key, value)

    async def clear(self):
        await self.ctx.storage.deleteAll()


class SlowInit(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        CONSTRUCTED["SlowInit"] += 1
        self.ready = False
        ctx.blockConcurrencyWhile(self._load)

    async def _load(self):
        await gate("slow-init").wait()
        self.loaded = await self.ctx.storage.get("loaded") or 0
        await self.ctx.storage.put("loaded", self.loaded + 1)
        self.ready = True

    def is_ready(self):
        return self.ready


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("/", 3)[3]
        name, _, _rest = path.partition("/")
        return await self.env.PROBE.getByName(name).fetch(request)
