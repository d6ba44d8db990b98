"""A worker whose code waits with plain `asyncio.sleep`, as Python Workers code does."""

import asyncio
from asyncio import sleep  # bound at import time: must follow the clock too

from js import Date
from workers import DurableObject, Response, WorkerEntrypoint

events = []  # what happened, with the runtime clock's time in ms


async def write_later(env, seconds):
    await asyncio.sleep(seconds)
    await env.KV.put("done", str(Date.now()))


async def guarded_sleep(seconds, limit, how):
    try:
        if how == "wait_for":
            await asyncio.wait_for(sleep(seconds), limit)
        else:
            async with asyncio.timeout(limit):
                await sleep(seconds)
    except TimeoutError:
        events.append((how, "timeout", Date.now()))
    else:
        events.append((how, "finished", Date.now()))


async def cancellable(seconds):
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        events.append(("cancelled", Date.now()))
        raise
    events.append(("woke", Date.now()))


tasks = {}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("://", 1)[1].split("/", 1)[1]
        route, _, arg = path.partition("?s=")
        seconds = float(arg or 0)
        if route == "later":
            self.ctx.waitUntil(write_later(self.env, seconds))
            return Response("later")
        if route == "nap":
            await sleep(seconds)
            return Response(str(Date.now()))
        if route in ("wait_for", "timeout"):
            await guarded_sleep(seconds, 5, route)
            return Response(route)
        if route == "start":
            tasks["t"] = asyncio.ensure_future(cancellable(seconds))
            self.ctx.waitUntil(tasks["t"])
            return Response("started")
        if route == "cancel":
            tasks.pop("t").cancel()
            return Response("cancelled")
        if route == "alarm":
            stub = self.env.NAPPER.getByName("a")
            await stub.arm(seconds)
            return Response("armed")
        return Response("no route", status=404)


class Napper(DurableObject):
    async def arm(self, seconds):
        await self.ctx.storage.setAlarm(Date.now() + int(seconds * 1000))

    async def alarm(self, alarm_info=None):
        await self.ctx.storage.put("began", Date.now())
        await asyncio.sleep(5)
        await self.ctx.storage.put("woke", Date.now())
