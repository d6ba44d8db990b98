"""One live Durable Object: its user object, storage, input and output gates, and lifecycle.

Gates.  Storage calls run synchronously on the event-loop thread, so an `await` on them never
suspends: no other event can run between `v = await get(k)` and `await put(k, v + 1)` — that is the
input gate.  `blockConcurrencyWhile` closes the gate explicitly: to new events, and (each event's
coroutine is driven by `_GatedCoroutine`) to the I/O completions of events already running; what
runs inside the block (its callback, timers it sets) carries its token and passes.  Every write opens
an implicit SQLite transaction which commits once per loop turn (all writes made without a real
suspension commit together); responses, RPC results and WebSocket sends wait for that commit —
the output gate.  If the commit fails, what was held back is discarded and the object resets.

An `ObjectHandle` outlives instances: it holds what survives eviction (hibernated WebSockets, the
alarm timer) and builds a new instance when an event arrives for an evicted object.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import context
from ..errors import JsException
from ..websocket import WebSocket, current_object
from .ids import DurableObjectId

if TYPE_CHECKING:
    from .namespace import Namespace
    from .service import DurableObjectsService

__all__ = ["ObjectHandle", "ObjectInstance", "CODE_UPDATED", "HIBERNATION_IDLE", "IDLE_EVICTION", "time_limited"]

log = logging.getLogger("cfemu.durable")

CODE_UPDATED = "Durable Object reset because its code was updated."
ABORTED = "Application called abort() to reset Durable Object."
MOVED = "Durable Object was moved to another location; the request may be retried."
EVICTED_DURING_CALL = "Durable Object was evicted while the call was in flight."
# workerd api/global-scope.c++ eventTimeoutPromise(): a hibernation-API handler ran past
# setHibernatableWebSocketEventTimeout(); the actor is shut down (DISCONNECTED).
EVENT_TIMED_OUT = "Actor exceeded event execution time and was disconnected."
HIBERNATION_IDLE = 10.0  # seconds idle before a hibernatable object leaves memory
IDLE_EVICTION = 70.0  # seconds idle before any other object leaves memory
_HANDLERS = {"fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError"}

# The blockConcurrencyWhile() block the running code belongs to (set inside the block's own task and
# inherited by what it starts).  A timer set inside a block fires inside it, as on Cloudflare.
current_block: ContextVar[object | None] = ContextVar("cfemu_durable_block", default=None)


class _GatedCoroutine:
    """Drives an event's coroutine so that each resumption passes the input gate.

    Every suspension of the event (an `await` on fetch, another object, a timer...) yields a
    future up to the task; when the task is woken, the coroutine is resumed only once no other
    event's blockConcurrencyWhile() block is open, as production's input gate delivers an I/O
    completion only when the object is not inside someone else's critical section.  A
    cancellation (reset) is passed on at once.
    """

    __slots__ = ("_coro", "_instance", "_block")

    def __init__(self, coro: Any, instance: ObjectInstance, block: object | None) -> None:
        self._coro, self._instance, self._block = coro, instance, block

    def __await__(self) -> Any:
        coro, instance, block = self._coro, self._instance, self._block
        error: BaseException | None = None
        while True:
            try:
                yielded = coro.send(None) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - a cancellation goes on into the event
                error = exc
                continue
            while not instance.may_pass(block) and instance.broken is None:
                try:
                    yield from instance._gate.wait().__await__()
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:  # noqa: BLE001
                    error = exc
                    break


class ObjectInstance:
    """The in-memory life of one object, from construction to eviction or reset."""

    def __init__(self, handle: ObjectHandle) -> None:
        from .state import DurableObjectState
        from .storage import DurableObjectStorage
        from .engine import StorageEngine

        self.handle = handle
        self.loop = asyncio.get_running_loop()
        self.broken: BaseException | None = None
        self.closed = False
        self._commit_scheduled = False
        self._held: list[Callable[[], None]] = []
        self._waiters: list[asyncio.Future] = []  # output gates waiting for a deferred commit
        self._event_tasks: list[asyncio.Task | None] = []  # tasks inside run(): a reset interrupts them
        self._timers: set[int] = set()  # pending js.setTimeout timers set by this object
        self._blocks: list[object] = []  # open blockConcurrencyWhile() blocks, outermost first
        self._block_tasks: set[asyncio.Task] = set()  # their callbacks: a reset cancels them
        self._timer_blocks: dict[int, object] = {}  # timers set inside a block that is still open
        self._gate = asyncio.Event()
        self._gate.set()
        self.in_flight = 0
        self.standard_sockets: set[WebSocket] = set()
        self._idle_timer: Any = None
        self.engine = StorageEngine(handle.path, on_dirty=self._schedule_commit)
        if handle.fail_next_commit:
            handle.fail_next_commit = False
            self.engine.fail_next_commit()
        clock = handle.service.host.clock
        self.storage = DurableObjectStorage(self.engine, sqlite_backed=handle.namespace.info.sqlite,
                                            on_alarm_change=handle.alarm_changed, on_sync=self.output_gate,
                                            now_ms=clock.now_ms,
                                            block_concurrency_while=lambda fn: self.state.blockConcurrencyWhile(fn))
        self.state = DurableObjectState(self)
        cls = handle.namespace.resolve_class()
        token = current_object.set(self)
        rt_token = context.use_runtime(handle.service.host)  # type: ignore[arg-type]
        try:
            obj = cls.__new__(cls)
            obj.ctx, obj.env = self.state, handle.service.host.env
            obj.__init__(self.state, handle.service.host.env)
        except BaseException:
            self.engine.close()
            raise
        finally:
            current_object.reset(token)
            context.reset_runtime(rt_token)
        self.obj = obj

    # -- gates ----------------------------------------------------------------------------------

    def _schedule_commit(self) -> None:
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self.loop.call_soon(self._commit)

    def _commit(self) -> None:
        self._commit_scheduled = False
        if self.closed or not self.engine.in_transaction:
            return
        try:
            committed = self.engine.commit()
        except Exception as error:  # noqa: BLE001 - any failed commit resets the object
            log.error("Durable Object %s: storage commit failed; resetting it", self.handle.id, exc_info=error)
            self.reset(error if isinstance(error, JsException) else JsException(str(error)))
            return
        if committed is False:
            return  # a transaction() is still open: the engine calls on_dirty again when it closes
        held, self._held = self._held, []
        for deliver in held:
            deliver()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def output_gate(self) -> None:
        """Wait until every write made so far is durable (commit now if one is pending)."""
        if not self.closed and self.engine.in_transaction:
            self._commit()
            if not self.closed and self.engine.in_transaction:
                waiter = self.loop.create_future()
                self._waiters.append(waiter)
                await waiter
        if self.broken is not None:
            raise self.broken

    def gate_send(self, deliver: Callable[[], None]) -> None:
        """A WebSocket send: out now if nothing is uncommitted, else after the commit."""
        if self.closed and self.broken is not None:
            return  # output of a reset object is discarded
        if not self.closed and self.engine.in_transaction:
            self._held.append(deliver)
        else:
            self.loop.call_soon(deliver)

    def adopt_socket(self, ws: WebSocket) -> None:
        """A socket accepted with the standard API inside this object's event."""
        ws._send_gate = self.gate_send
        # its events are object events: they wait at the input gate like any other
        ws._dispatch_hook = lambda listener, event: self.handle.service.host.spawn(self.run(listener, event))
        self.standard_sockets.add(ws)
        ws.addEventListener("close", lambda _ev: self.standard_sockets.discard(ws))

    @property
    def _blockers(self) -> int:
        return len(self._blocks)

    def block(self) -> object:
        """Open a blockConcurrencyWhile() block; returns its token (what runs inside it carries it)."""
        token = object()
        self._blocks.append(token)
        self._gate.clear()
        return token

    def unblock(self, token: object) -> None:
        if token in self._blocks:
            self._blocks.remove(token)
        if self._timer_blocks:
            self._timer_blocks = {t: b for t, b in self._timer_blocks.items() if b is not token}
        if not self._blocks:
            self._gate.set()

    def gated(self, coro: Any, block: object | None = None) -> Any:
        """`coro` driven so that each of its resumptions passes this object's input gate."""
        return _GatedCoroutine(coro, self, block)

    def may_pass(self, block: object | None) -> bool:
        """May code of `block` (None: an ordinary event) run now?  Not while another block is open."""
        return not self._blocks or block in self._blocks

    # -- events ---------------------------------------------------------------------------------

    async def run(self, func: Callable[..., Any], *args: Any, block: object | None = None) -> Any:
        """Deliver one event: wait at the input gate, run, then hold the result at the output gate.

        An error leaves through the output gate too.  If the object is reset meanwhile (reroute,
        code update, abort, failed commit), the event is interrupted at once and fails with the
        reset's error.  `block` is set for a timer that was set inside a still-open block: it
        runs inside that block instead of waiting for it.
        """
        if self.broken is not None:
            raise self.broken
        while not self.may_pass(block) and self.broken is None:
            await self._gate.wait()  # re-check: a woken event may find a new block already started
        if self.broken is not None:
            raise self.broken
        self.in_flight += 1
        self._cancel_idle()
        task = asyncio.current_task()
        self._event_tasks.append(task)
        token = current_object.set(self)
        block_token = current_block.set(block)
        rt_token = context.use_runtime(self.handle.service.host)  # type: ignore[arg-type]
        invocation = context.begin_invocation()  # an event of the object is an invocation of its own
        try:
            try:
                result = func(*args)
                if inspect.iscoroutine(result):
                    result = await _GatedCoroutine(result, self, block)
                elif inspect.isawaitable(result):
                    result = await result
            finally:
                current_object.reset(token)
                current_block.reset(block_token)
                context.end_invocation(invocation)
                context.reset_runtime(rt_token)
                self._event_tasks.remove(task)
                self.in_flight -= 1
                if self.in_flight == 0 and not self.closed:
                    self._schedule_idle()
        except BaseException as error:
            if self.broken is not None and error is not self.broken:
                if isinstance(error, asyncio.CancelledError) and task is not None:
                    task.uncancel()
                raise self.broken from None
            if isinstance(error, asyncio.CancelledError):
                raise
            await self.output_gate()  # even an error waits until earlier writes are durable
            if isinstance(error, JsException):
                error.remote = True
            raise
        await self.output_gate()
        return result

    def method(self, name: str) -> Callable[..., Any]:
        """A public method for RPC, or Cloudflare's error for one that is not there."""
        from ..errors import JsTypeError

        if name.startswith("_") or name in _HANDLERS or name == "constructor":
            raise JsTypeError(f'The RPC receiver does not implement the method "{name}".')
        func = getattr(self.obj, name, None)
        if func is None or not callable(func):
            raise JsTypeError(f'The RPC receiver does not implement the method "{name}".')
        return func

    # -- lifecycle ------------------------------------------------------------------------------

    def hibernatable(self) -> bool:
        return not self.standard_sockets and self._blockers == 0 and not self._timers

    # -- timers (js.setTimeout inside the object) ---------------------------------------------------

    def timer_started(self, timer_id: int) -> None:
        self._timers.add(timer_id)
        block = current_block.get()
        if block is not None and block in self._blocks:
            # an interval re-armed outside the block keeps the block it was set in
            self._timer_blocks.setdefault(timer_id, block)
        self._cancel_idle()

    def timer_cleared(self, timer_id: int) -> None:
        self._timers.discard(timer_id)
        self._timer_blocks.pop(timer_id, None)
        if not self._timers and self.in_flight == 0 and not self.closed:
            self._schedule_idle()

    def timer_fired(self, timer_id: int, fn: Callable[..., Any], args: tuple) -> Any:
        self._timers.discard(timer_id)
        if self.closed or self.broken is not None:
            return None  # the object this timer belonged to is gone
        return self.run(fn, *args, block=self._timer_blocks.get(timer_id))

    def _schedule_idle(self) -> None:
        self._cancel_idle()
        if self._timers:
            return  # a pending timer keeps the object in memory
        clock = self.handle.service.host.clock
        delay = HIBERNATION_IDLE if (self.handle.sockets and self.hibernatable()) else IDLE_EVICTION
        if self.standard_sockets:
            return  # an object with standard-API sockets stays in memory while they are open
        self._idle_timer = clock.call_later(delay, self._idle_evict)

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_evict(self) -> None:
        self._idle_timer = None
        if self.in_flight == 0 and not self.closed and not self.standard_sockets and self._blockers == 0:
            self.handle.evict_instance(self)

    def close(self, *, commit: bool = True) -> None:
        """Leave memory: commit what is pending (unless crashing) and close the file."""
        if self.closed:
            return
        self._cancel_idle()
        if commit and self.broken is None and self.engine.in_transaction:
            self._commit()
        self.closed = True
        self.engine.close()
        if commit and self.broken is None:
            held, self._held = self._held, []
            for deliver in held:
                deliver()
        else:
            self._held.clear()

    def reset(self, error: BaseException) -> None:
        """Break the object: uncommitted writes and held output are discarded, memory is dropped."""
        if self.broken is not None:
            return
        self.broken = error
        self._held.clear()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self.close(commit=False)
        for ws in list(self.standard_sockets):
            ws._disconnect(1011, "")
        self.standard_sockets.clear()
        self._gate.set()
        if self.handle.instance is self:
            self.handle.instance = None
        current = asyncio.current_task()
        for task in set(self._event_tasks) | self._block_tasks:
            if task is not None and task is not current and not task.done():
                task.cancel()
        self.handle.resync_alarm()


class ObjectHandle:
    """An object id's lasting presence in the runtime (survives eviction; not a crash)."""

    def __init__(self, service: DurableObjectsService, namespace: Namespace, object_id: DurableObjectId) -> None:
        self.service = service
        self.namespace = namespace
        self.id = object_id
        self.instance: ObjectInstance | None = None
        self.sockets: list[WebSocket] = []  # hibernatable sockets (acceptWebSocket)
        self.auto_response: Any = None
        self.fail_next_commit = False
        self.alarm_timer: Any = None
        self.alarm_retry = 0
        self.alarm_running = False

    @property
    def path(self) -> Path:
        return self.namespace.directory / f"{self.id.toString()}.sqlite"

    def get_instance(self) -> ObjectInstance:
        if self.instance is None or self.instance.closed:
            self.instance = ObjectInstance(self)
        return self.instance

    async def call(self, func_name: str | None, build: Callable[[ObjectInstance], tuple[Callable[..., Any], tuple]]) -> Any:
        """Run an event on the live instance (constructing it if needed)."""
        instance = self.get_instance()
        func, args = build(instance)
        return await instance.run(func, *args)

    def evict_instance(self, instance: ObjectInstance | None = None) -> None:
        instance = instance or self.instance
        if instance is None:
            return
        if instance.in_flight:
            instance.reset(JsException(EVICTED_DURING_CALL, retryable=True))
        else:
            instance.close(commit=True)
        if self.instance is instance:
            self.instance = None

    # -- alarms ---------------------------------------------------------------------------------

    def resync_alarm(self) -> None:
        """After a reset: uncommitted alarm changes are gone; the index follows what is stored."""
        alarms = self.service.alarms
        if alarms is None or self.alarm_running:
            return
        from .service import StorageInspector

        try:
            stored = StorageInspector(self.path, sqlite_backed=self.namespace.info.sqlite).alarm()
        except Exception:  # noqa: BLE001 - an unreadable file has no alarm to keep
            stored = None
        alarms.resync(self, stored)

    def alarm_changed(self, when_ms: int | None) -> None:
        self.alarm_retry = 0
        self.service.alarms.set(self, when_ms)

    # -- hibernatable WebSockets ----------------------------------------------------------------

    def ws_message(self, ws: WebSocket, data: str | bytes) -> None:
        pair = self.auto_response
        if pair is not None and isinstance(data, str) and data == pair.request:
            # Answered without waking the object.
            ws._do_meta["auto_response_at"] = self.service.host.clock.now_ms()
            asyncio.get_running_loop().call_soon(lambda: ws._peer and ws._peer._receive("message", pair.response))
            return
        self._spawn_ws_event("webSocketMessage", ws, data)

    def ws_close(self, ws: WebSocket, code: int, reason: str, was_clean: bool) -> None:
        if ws in self.sockets:
            self.sockets.remove(ws)
        self._spawn_ws_event("webSocketClose", ws, code, reason, was_clean)

    def ws_error(self, ws: WebSocket, error: BaseException) -> None:
        if ws in self.sockets:
            self.sockets.remove(ws)
        self._spawn_ws_event("webSocketError", ws, error)

    def _spawn_ws_event(self, handler: str, *args: Any) -> None:
        timeout_ms = self.__dict__.get("event_timeout_ms") or 0  # as set when the event is sent

        async def deliver() -> None:
            instance = self.get_instance()
            func = getattr(instance.obj, handler, None)
            if func is None:
                if handler == "webSocketMessage":
                    log.warning("%s has no webSocketMessage handler; message dropped", type(instance.obj).__name__)
                return
            if timeout_ms > 0:
                func = time_limited(instance, func, timeout_ms / 1000,
                                    lambda: JsException(EVENT_TIMED_OUT, retryable=True))
            try:
                await instance.run(func, *args)
            except Exception:
                log.exception("Durable Object %s: %s raised", self.id, handler)

        # Tasks start in creation order and run up to their first real suspension, so events of
        # one socket reach the handler in order; a handler awaiting I/O lets the next one in, as
        # on Cloudflare.
        self.service.host.spawn(deliver(), name=handler)


def time_limited(instance: ObjectInstance, func: Callable[..., Any], seconds: float,
                 error: Callable[[], BaseException]) -> Callable[..., Any]:
    """`func` raced against a limit on the runtime clock, started when the handler starts (as
    workerd's afterLimitTimeout); past it the object is reset with `error()`, canceling the handler."""
    clock = instance.handle.service.host.clock

    async def limited(*args: Any) -> Any:
        timer = clock.call_later(seconds, lambda: instance.reset(error()))
        try:
            result = func(*args)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            timer.cancel()

    return limited
