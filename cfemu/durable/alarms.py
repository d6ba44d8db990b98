"""Durable Object alarms: one per object, persisted, fired by the runtime clock, retried on failure.

The object's own file holds its alarm (what `getAlarm()` reads); a central index in
`<state>/do/alarms.sqlite` lists every pending alarm so start-up schedules them without opening
every object's file.  The object's file wins when the two disagree (a crash between the index
write and the object's commit).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import JsException
from ..objects import JsObject
from ..sqlite import open_sqlite3
from .instance import time_limited

if TYPE_CHECKING:
    from .instance import ObjectHandle
    from .service import DurableObjectsService

__all__ = ["AlarmIndex", "MAX_RETRIES", "retry_delay"]

log = logging.getLogger("cfemu.durable.alarms")

MAX_RETRIES = 6
# workerd api/global-scope.c++ runAlarm(): the handler's wall time is limited to 15 minutes; past
# it the event is aborted (the object reset) and the alarm retried, counting against MAX_RETRIES.
HANDLER_LIMIT_S = 15 * 60.0
HANDLER_TIMED_OUT = "Alarm exceeded its allowed execution time"


def retry_delay(retry_count: int) -> float:
    """Seconds before retry number `retry_count` (1-based): 2, 4, 8, 16, 32, 64."""
    return float(2 ** retry_count)


class AlarmIndex:
    """Every pending alarm of the runtime, and the timers that fire them."""

    def __init__(self, path: Path, service: DurableObjectsService) -> None:
        self.service = service
        self.db = open_sqlite3(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS alarms (key_name TEXT, id TEXT, at_ms INTEGER, "
                        "retry INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key_name, id))")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(alarms)")}
        if "retry" not in columns:  # an index written before retries were recorded
            self.db.execute("ALTER TABLE alarms ADD COLUMN retry INTEGER NOT NULL DEFAULT 0")

    def start(self) -> None:
        """Schedule every indexed alarm (those that came due while stopped fire at once)."""
        rows = self.db.execute("SELECT key_name, id, at_ms, retry FROM alarms").fetchall()
        for key_name, hex_id, at_ms, retry in rows:
            handle = self.service.handle_for_key(key_name, hex_id)
            if handle is None:
                self.db.execute("DELETE FROM alarms WHERE key_name = ? AND id = ?", (key_name, hex_id))
                continue
            handle.alarm_retry = retry  # a retry pending at the crash keeps its count and backoff
            self._schedule(handle, at_ms)

    def close(self) -> None:
        for handle in self.service.handles.values():
            if handle.alarm_timer is not None:
                handle.alarm_timer.cancel()
                handle.alarm_timer = None
        self.db.close()

    def set(self, handle: ObjectHandle, when_ms: int | None) -> None:
        """The object set or deleted its alarm."""
        handle.__dict__["alarm_touched"] = True
        key = (handle.namespace.info.key_name, handle.id.toString())
        if when_ms is None:
            self.db.execute("DELETE FROM alarms WHERE key_name = ? AND id = ?", key)
            if handle.alarm_timer is not None:
                handle.alarm_timer.cancel()
                handle.alarm_timer = None
            return
        self.db.execute("INSERT OR REPLACE INTO alarms VALUES (?, ?, ?, ?)", (*key, int(when_ms), handle.alarm_retry))
        self._schedule(handle, when_ms)

    def _schedule(self, handle: ObjectHandle, when_ms: int) -> None:
        if handle.alarm_timer is not None:
            handle.alarm_timer.cancel()
        handle.alarm_timer = self.service.host.clock.call_at(when_ms / 1000, lambda: self.run(handle))

    async def run(self, handle: ObjectHandle, *, forced: bool = False) -> None:
        """Deliver the alarm event (if it is still set and due), retrying with backoff on failure.

        The alarm stays stored until the handler succeeds (at-least-once across crashes); while
        the handler runs, `getAlarm()` reads it as consumed.
        """
        if handle.alarm_running:
            return
        clock = self.service.host.clock
        handle.alarm_timer = None
        instance = handle.get_instance()
        stored = instance.engine.get_alarm()
        if stored is None:
            self.set_index_only(handle, None)
            return
        if not forced and stored > clock.now_ms():
            self._schedule(handle, stored)
            return
        handler = getattr(instance.obj, "alarm", None)
        retry = handle.alarm_retry
        if handler is None:
            log.warning("%s has an alarm set but no alarm() handler", type(instance.obj).__name__)
            instance.engine.set_alarm(None)
            self.set_index_only(handle, None)
            return
        handle.alarm_running = True
        handle.__dict__["alarm_touched"] = False
        instance.engine.running_alarm = stored
        info = JsObject(retryCount=retry, isRetry=retry > 0)
        takes_info = _takes_argument(handler)
        limited = time_limited(instance, handler, HANDLER_LIMIT_S,
                               lambda: JsException(HANDLER_TIMED_OUT, overloaded=True))
        try:
            await instance.run(limited, *([info] if takes_info else []))
        except Exception as error:  # noqa: BLE001 - the handler's failure is retried
            self._after_failure(handle, instance, stored, retry, error)
        else:
            self._after_success(handle, instance, stored)
        finally:
            handle.alarm_running = False
            if not instance.closed:
                instance.engine.running_alarm = None

    def _after_success(self, handle: ObjectHandle, instance: Any, stored: int) -> None:
        handle.alarm_retry = 0
        live = handle.instance if handle.instance is not None and not handle.instance.closed else None
        if live is not None:
            current = live.engine.get_alarm()
            if current == stored and not handle.__dict__.get("alarm_touched"):
                live.engine.running_alarm = None
                live.engine.set_alarm(None)  # consumed: committed with the turn
                self.set_index_only(handle, None)
                return
            if current is not None:
                # set (again) by the handler, possibly already due: make sure it fires
                self._schedule(handle, current)
                return
        self.set_index_only(handle, None)

    def _after_failure(self, handle: ObjectHandle, instance: Any, stored: int, retry: int, error: Exception) -> None:
        clock = self.service.host.clock
        live = handle.instance if handle.instance is not None and not handle.instance.closed else None
        if handle.__dict__.get("alarm_touched"):
            current = live.engine.get_alarm() if live is not None else None
            if current is not None:
                self._schedule(handle, current)
            return  # a new setAlarm() (or deleteAlarm()) replaces the retry
        if retry >= MAX_RETRIES:
            log.error("Durable Object %s: alarm failed %d times; giving up", handle.id, retry + 1, exc_info=error)
            if live is not None:
                live.engine.running_alarm = None
                live.engine.set_alarm(None)
            self.set_index_only(handle, None)
            return
        log.warning("Durable Object %s: alarm raised (%s: %s); retry %d in %gs", handle.id,
                    type(error).__name__, error, retry + 1, retry_delay(retry + 1))
        when = clock.now_ms() + int(retry_delay(retry + 1) * 1000)
        if live is not None:
            live.engine.running_alarm = None
            live.engine.set_alarm(when)
        handle.alarm_retry = retry + 1  # recorded in the index with the retry time
        self.set_index_only(handle, when)

    def resync(self, handle: ObjectHandle, when_ms: int | None) -> None:
        """After a failed commit: the index and timer follow what is really stored."""
        self.set_index_only(handle, when_ms)

    def set_index_only(self, handle: ObjectHandle, when_ms: int | None) -> None:
        touched = handle.__dict__.get("alarm_touched")
        self.set(handle, when_ms)
        handle.__dict__["alarm_touched"] = touched


def _takes_argument(func) -> bool:
    try:
        params = [p for p in inspect.signature(func).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return True
    return bool(params)
