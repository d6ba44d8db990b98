"""One running worker: its code, its env of bindings, its clock, and event dispatch.

`Runtime` loads the module named by `main`, finds `class Default(WorkerEntrypoint)` (or the older
module-level `on_fetch`/`on_scheduled`/`on_queue`), builds `env` from the config's bindings, and
dispatches `fetch`, `scheduled` and `queue` events the way Cloudflare calls them.  The dev server
and the test fixture are two ways of feeding it events.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from . import context
from .assets import Assets
from .clock import Clock, RealClock, Timer, VirtualClock, real_sleep
from .config import WorkerConfig
from .errors import JsException, WorkerLoadError
from .http import Request, Response
from .loader import WorkerCode, load_worker
from .objects import JsObject
from .services import Service, create_services

__all__ = ["Runtime", "ExecutionContext", "ScheduledController"]

log = logging.getLogger("cfemu")

WORKER_THREW = "Worker threw exception"
NO_QUEUE_HANDLER = "Handler does not export a queue() function."
# A timer that re-arms itself with no delay would keep advance() at one instant for ever.
MAX_TIMERS_PER_INSTANT = 100_000
# settle(): loop turns with work ready but no tracked task finishing before the loop counts as busy
# for ever (a spinner); short waits for tracked work blocked on I/O, and how many idle ones end it.
SETTLE_BUSY_TURNS = 1000
SETTLE_UNTRACKED_TURNS = 10
SETTLE_IO_WAIT = 0.002
SETTLE_IDLE_WAITS = 3
SETTLE_MAX_TURNS = 100_000
# How long close() lets background work (waitUntil, deliveries) finish before cancelling it.
CLOSE_GRACE = 5.0
TIMER_LOOP = ("advance(): {count} timers fired at t={at} without the clock moving; "
              "a timer keeps rescheduling itself with no delay")


class ExecutionContext:
    """`ctx` of a worker event: `waitUntil`, `passThroughOnException`, `props`."""

    __slots__ = ("_runtime", "pass_through", "_props")

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.pass_through = False
        self._props: JsObject | None = None

    @property
    def props(self) -> JsObject:
        if self._props is None:
            self._props = JsObject()
        return self._props

    def waitUntil(self, awaitable: Awaitable[Any]) -> None:
        if not inspect.isawaitable(awaitable):
            from .errors import JsTypeError

            raise JsTypeError("waitUntil() takes a promise (an awaitable).")
        self._runtime.spawn(awaitable, name="waitUntil")

    def passThroughOnException(self) -> None:
        self.pass_through = True


class ScheduledController:
    """The `controller` of a `scheduled` event."""

    type = "scheduled"

    def __init__(self, cron: str, scheduled_time_ms: int) -> None:
        self.cron = cron
        self.scheduledTime = scheduled_time_ms
        self.retry = True

    def noRetry(self) -> None:
        self.retry = False


_ARITY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _arity(func: Any) -> int:
    """How many positional arguments a handler takes (the relaxed signatures Cloudflare allows)."""
    # inspect.signature costs tens of microseconds: cache per function (reloaded code = new functions).
    target = getattr(func, "__func__", None)
    if target is None:
        return _arity_uncached(func)
    try:
        return _ARITY[target]
    except (KeyError, TypeError):
        pass
    arity = _arity_uncached(func)
    try:
        _ARITY[target] = arity
    except TypeError:
        pass
    return arity


def _arity_uncached(func: Any) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 3
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 3
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


class Runtime:
    """A worker with its bindings, driven by one clock."""

    def __init__(self, config: WorkerConfig, *, state_dir: str | Path, clock: Clock | None = None,
                 fresh_code: bool = False) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.clock = clock or RealClock()
        self.clock.spawn = self.spawn
        self.log = log
        self.code: WorkerCode | None = None
        self.env = JsObject()
        self.services: list[Service] = []
        self.assets = Assets(config.assets) if config.assets else None
        self._fresh_code = fresh_code
        self._tasks: set[asyncio.Task] = set()
        self._finished = 0  # tracked tasks done so far: settle() counts them as progress
        self._cron_timers: list[Timer] = []
        self._started = False
        self._closed = False
        self.http_session: Any = None  # outbound fetch(); made on first use, closed with the runtime
        self._warned_no_queue_handler = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the worker and start its bindings; raises `WorkerLoadError` if the code does not import."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.code = self._load(fresh=self._fresh_code)
        token = context.use_runtime(self)
        try:
            self.services = create_services(self)
            for service in self.services:
                await service.start()
            self.env = self._build_env()
        finally:
            context.reset_runtime(token)
        self._schedule_crons()
        self._started = True

    def _load(self, *, fresh: bool) -> WorkerCode:
        code = load_worker(self.config.main, fresh=fresh)
        default = code.get("Default")
        if default is None and not any(code.get(n) for n in ("on_fetch", "on_scheduled", "on_queue")):
            raise WorkerLoadError(
                f"{self.config.main}: no `class Default(WorkerEntrypoint)` (or `on_fetch`) found in the main module",
                filename=str(self.config.main),
            )
        return code

    def _build_env(self) -> JsObject:
        env = JsObject()
        from .objects import to_js_object

        for key, value in self.config.vars.items():
            env[key] = to_js_object(value)
        env.update(self.config.secrets)
        if self.assets is not None and self.config.assets and self.config.assets.binding:
            env[self.config.assets.binding] = self.assets
        for service in self.services:
            env.update(service.bindings())
        return env

    async def reload(self) -> None:
        """Load changed worker code (fresh modules) and reset what holds old classes; state stays."""
        self.code = self._load(fresh=True)
        for service in self.services:
            await service.reload()

    async def close(self) -> None:
        """Clean shutdown: let background work finish (briefly), then close every binding."""
        if self._closed:
            return
        self._closed = True
        for timer in self._cron_timers:
            timer.cancel()
        await self._finish_background_work(CLOSE_GRACE)
        for service in reversed(self.services):
            try:
                await service.close()
            except Exception:
                log.exception("closing %s failed", service.kind or type(service).__name__)
        if self.http_session is not None:
            await self.http_session.close()

    async def _finish_background_work(self, grace: float) -> None:
        """Give tracked work up to `grace` seconds to finish, then cancel what is left.

        Work asleep on a virtual clock cannot finish (nothing will advance the clock again), so it is
        cancelled at once instead of holding the close for the whole grace period.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        sleepers = getattr(self.clock, "sleepers", ())
        while True:
            pending = [t for t in self._tasks if not t.done()]
            awake = [t for t in pending if t not in sleepers]
            remaining = deadline - loop.time()
            if not awake or remaining <= 0:
                break
            await asyncio.wait(awake, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    def abandon(self) -> None:
        """A crash: stop everything now; nothing that was not durable survives."""
        self._closed = True
        for timer in self._cron_timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for service in reversed(self.services):
            try:
                service.abandon()
            except Exception:
                log.exception("abandoning %s failed", service.kind or type(service).__name__)
        if self.http_session is not None and not self.http_session.closed:
            # Only connections to drop (nothing to flush); a crash comes from sync code, so in a task.
            try:
                self._closing_session = asyncio.get_running_loop().create_task(self.http_session.close())
            except RuntimeError:  # no loop any more: the process is going away with its sockets
                pass

    def service(self, kind: str) -> Service | None:
        for service in self.services:
            if service.kind == kind:
                return service
        return None

    def worker_class(self, name: str) -> Any:
        """A class exported by the worker's main module (Durable Object classes, entrypoints)."""
        return None if self.code is None else self.code.get(name)

    # -- background work ------------------------------------------------------------------------

    def spawn(self, awaitable: Awaitable[Any], *, name: str | None = None) -> asyncio.Task:
        token = context.use_runtime(self)
        try:
            task = asyncio.ensure_future(awaitable)
        finally:
            context.reset_runtime(token)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._finished += 1
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("Uncaught error in background work (waitUntil, timer or event)", exc_info=error)

    async def settle(self) -> None:
        """Wait until the work started so far has finished or waits on the clock (or on outside I/O).

        It turns the event loop until nothing is ready to run; tracked work (waitUntil, events,
        deliveries) that is neither done nor asleep on the virtual clock gets a few short waits for
        I/O.  A loop kept busy by something that never finishes (a task spinning on
        `asyncio.sleep(0)`) is given SETTLE_BUSY_TURNS turns without a tracked task finishing, and only
        SETTLE_UNTRACKED_TURNS once no tracked work is awake, then left to itself.
        """
        loop = asyncio.get_running_loop()
        sleepers = getattr(self.clock, "sleepers", ())
        finished = self._finished
        busy = idle = 0
        for _ in range(SETTLE_MAX_TURNS):
            await real_sleep(0)
            if self._finished != finished:
                finished, busy, idle = self._finished, 0, 0
            awake = [t for t in self._tasks if not t.done() and t not in sleepers]
            if getattr(loop, "_ready", None):
                # Something can run: turn again, a few times for work the runtime does not track
                # (a task the test started), many while its own work is still awake.
                busy += 1
                if busy >= (SETTLE_BUSY_TURNS if awake else SETTLE_UNTRACKED_TURNS):
                    return
                continue
            busy = 0
            if not awake:
                return  # all done, or asleep until the clock moves
            done, _ = await asyncio.wait(awake, timeout=SETTLE_IO_WAIT)
            if done:
                idle = 0
                continue
            idle += 1
            if idle >= SETTLE_IDLE_WAITS:
                return  # what is left waits on outside I/O or on a clock timer

    async def advance(self, seconds: float) -> None:
        """Move a virtual clock forward, running every timer that comes due, in order."""
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            raise RuntimeError("advance() needs a runtime with a virtual clock")
        if seconds < 0:
            raise ValueError("cannot move the clock backwards")
        target = clock.now() + seconds
        await self.settle()
        instant, same_instant = None, 0
        while True:
            timer = clock.pop_due(target)
            if timer is None:
                break
            if clock.now() == instant:
                same_instant += 1
                if same_instant >= MAX_TIMERS_PER_INSTANT:
                    raise RuntimeError(TIMER_LOOP.format(count=same_instant, at=instant))
            else:
                instant, same_instant = clock.now(), 0
            token = context.use_runtime(self)
            try:
                clock.fire(timer)
            finally:
                context.reset_runtime(token)
            await self.settle()
        clock.set(target)
        await self.settle()

    # -- events ---------------------------------------------------------------------------------

    def _entrypoint(self) -> tuple[Any, ExecutionContext]:
        ctx = ExecutionContext(self)
        cls = self.code.get("Default") if self.code else None
        return (cls(ctx, self.env) if cls is not None else None), ctx

    async def fetch(self, request: Request) -> Response:
        """Dispatch a `fetch` event (static assets first, unless `run_worker_first`)."""
        token, invocation = context.use_runtime(self), context.begin_invocation()
        try:
            return await self._fetch(request)
        finally:
            context.end_invocation(invocation)
            context.reset_runtime(token)

    async def _fetch(self, request: Request) -> Response:
        assets = self.assets
        if assets is not None and request.method in ("GET", "HEAD") and not assets.worker_first(request):
            served = assets.match(request)
            if served is not None:
                return served
        instance, ctx = self._entrypoint()
        handler = getattr(instance, "fetch", None) if instance is not None else self.code.get("on_fetch")
        if handler is None:
            if assets is not None:
                return assets.serve(request)
            return Response("No fetch handler is defined for this worker.", status=500)
        args = [request, self.env, ctx][: _arity(handler)]
        try:
            response = await handler(*args)
        except Exception as error:
            log.error("Uncaught exception in fetch handler for %s %s", request.method, request.url, exc_info=error)
            if ctx.pass_through and assets is not None:
                return assets.serve(request)
            return Response(WORKER_THREW, status=500, headers={"cf-worker-error": type(error).__name__})
        if not isinstance(response, Response):
            log.error("fetch handler for %s returned %r, not a Response", request.url, type(response).__name__)
            return Response("The worker's fetch handler did not return a Response.", status=500)
        return response

    async def dispatch_scheduled(self, cron: str, scheduled_time_ms: int | None = None) -> bool:
        """Run `scheduled(controller, env, ctx)` (env and ctx are None, as on Cloudflare)."""
        token, invocation = context.use_runtime(self), context.begin_invocation()
        try:
            controller = ScheduledController(cron, self.clock.now_ms() if scheduled_time_ms is None else scheduled_time_ms)
            instance, ctx = self._entrypoint()
            handler = getattr(instance, "scheduled", None) if instance is not None else self.code.get("on_scheduled")
            if handler is None:
                log.warning("cron %r fired but the worker has no scheduled handler", cron)
                return False
            args = [controller, None, None] if instance is not None else [controller, self.env, ctx]
            try:
                await handler(*args[: _arity(handler)])
            except Exception as error:
                log.error("Uncaught exception in scheduled handler (cron %r)", cron, exc_info=error)
                return False
            return True
        finally:
            context.end_invocation(invocation)
            context.reset_runtime(token)

    async def dispatch_queue(self, batch: Any) -> None:
        """Run `queue(batch, env, ctx)` (env and ctx are None); raises what the handler raised."""
        token, invocation = context.use_runtime(self), context.begin_invocation()
        try:
            instance, ctx = self._entrypoint()
            handler = getattr(instance, "queue", None) if instance is not None else self.code.get("on_queue")
            if handler is None:
                if not self._warned_no_queue_handler:
                    self._warned_no_queue_handler = True
                    log.warning("a queue delivers to this worker, but it has no queue() handler")
                raise JsException(NO_QUEUE_HANDLER)
            args = [batch, None, None] if instance is not None else [batch, self.env, ctx]
            await handler(*args[: _arity(handler)])
        finally:
            context.end_invocation(invocation)
            context.reset_runtime(token)

    async def route_subrequest(self, request: Request) -> Response | None:
        """A hook for outbound `fetch()` to targets served in-process; none yet, so it goes out."""
        return None

    # -- cron -----------------------------------------------------------------------------------

    def _schedule_crons(self) -> None:
        for cron in self.config.crons:
            self._schedule_cron(cron, self.clock.now())

    def _schedule_cron(self, cron: str, after: float) -> None:
        from datetime import datetime, timezone

        from croniter import croniter

        base = datetime.fromtimestamp(after, tz=timezone.utc)
        when = croniter(cron, base).get_next(float)

        async def fire() -> None:
            if self._closed:
                return
            self._schedule_cron(cron, when)
            await self.dispatch_scheduled(cron, int(when * 1000))

        self._cron_timers = [t for t in self._cron_timers if not t.cancelled]
        self._cron_timers.append(self.clock.call_at(when, fire))


def make_clock(kind: str | Clock, start: float | None = None) -> Clock:
    if isinstance(kind, Clock):
        return kind
    if kind == "virtual":
        return VirtualClock(start)
    if kind == "real":
        return RealClock()
    raise ValueError(f"clock must be 'virtual' or 'real', not {kind!r}")

