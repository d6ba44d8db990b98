"""`ctx.storage`: the Durable Object Storage API (async KV, transactions, alarms, sync KV, SQL).

Every method is `async def` but never suspends (except `sync()`), so `await storage.get(k)`
returns without yielding to the event loop: that is the input gate.  Writes go through the
engine's implicit transaction and are committed once per turn by the instance (output gate).

Values are structured-cloned through `cfemu.values` (msgpack with extension types); every read
deserializes afresh, so the caller can never mutate what is stored through a returned object.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import apsw
import msgpack

from ..errors import JsException, JsRangeError, JsTypeError
from ..objects import JsObject, to_js_object
from ..values import _default as _pack_default  # the extension types serialize() uses
from ..values import deserialize, serialize
from . import errors as E
from .engine import StorageEngine, sqlite_error
from .sql import SqlStorage

__all__ = ["DurableObjectStorage", "DurableObjectTransaction", "SyncKvStorage"]

_MISSING: Any = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_OPEN, _COMMITTED, _ROLLED_BACK = range(3)
# Leave room for SQLite's record header so an accepted pair never trips SQLITE_TOOBIG mid-batch.
_SQLITE_PAIR_LIMIT = E.MAX_SQLITE_ROW_BYTES - 64


def _js_string(value: Any, what: str) -> str:
    """Coerce a key like jsg's kj::String parameter would (numbers, booleans); refuse the rest."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise JsTypeError(f"{what} must be a string, got {type(value).__name__}.")


def _usv(key: str) -> str:
    """Lone surrogates become U+FFFD, as when a JS string crosses into workerd."""
    try:
        key.encode()
        return key
    except UnicodeEncodeError:
        return key.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_PLAIN = frozenset({str, int, float, bool, type(None), bytes})


def _plain(value: Any, depth: int = 0) -> bool:
    """True if `value` is built only of exact dict/list/str/int/float/bool/None/bytes (str keys).

    A cheap pre-check: such a value certainly clones, so it is packed directly.  Anything else
    (datetimes, subclasses, deep nesting, and everything invalid) takes `serialize()`, whose
    slower walk also produces the precise error message.
    """
    kind = type(value)
    if kind in _PLAIN:
        return True
    if depth > 64:
        return False
    if kind is dict or kind is JsObject:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _PLAIN and not _plain(item, depth + 1)):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) not in _PLAIN and not _plain(item, depth + 1):
                return False
        return True
    return False


def _serialize(value: Any) -> bytes:
    if _plain(value):
        return msgpack.packb(value, default=_pack_default, use_bin_type=True, datetime=False, strict_types=False)
    return serialize(value)


def _decode(data: bytes) -> Any:
    value = deserialize(data)
    if type(value) is dict or type(value) is list:
        return to_js_object(value)
    return value


def _key_after_prefix(prefix: str) -> str | None:
    """The first string after every string starting with `prefix` (code point = UTF-8 byte order)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code > 0x10FFFF:
            chars.pop()
            continue
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        chars[-1] = chr(code)
        return "".join(chars)
    return None


def _options(options: dict | None, kwargs: dict) -> dict:
    if options is None:
        return kwargs
    if not isinstance(options, dict):
        raise JsTypeError("Options must be passed as keyword arguments or a dict.")
    return {**options, **kwargs}


class _Kv:
    """The KV operations shared by storage, transactions and `storage.kv` (synchronous)."""

    __slots__ = ("engine", "sqlite_backed")

    def __init__(self, engine: StorageEngine, sqlite_backed: bool) -> None:
        self.engine = engine
        self.sqlite_backed = sqlite_backed

    def key(self, key: Any) -> tuple[str, int]:
        if type(key) is not str:
            key = _js_string(key, "Key")
        if key.isascii():
            size = len(key)
        else:
            key = _usv(key)
            size = len(key.encode())
        if size > E.MAX_KEY_BYTES and not self.sqlite_backed:
            raise JsRangeError(E.KEY_TOO_LARGE.format(size=size))
        return key, size

    def encode(self, key_size: int, value: Any) -> bytes:
        data = _serialize(value)
        if self.sqlite_backed:
            if key_size + len(data) > _SQLITE_PAIR_LIMIT:
                raise JsException(E.SQL_TOO_BIG)
        elif len(data) > E.ENFORCED_MAX_VALUE_BYTES:
            raise JsRangeError(E.VALUE_TOO_LARGE.format(size=len(data)))
        return data

    def count(self, n: int) -> None:
        if n > E.MAX_KEYS_PER_CALL and not self.sqlite_backed:
            raise JsRangeError(E.TOO_MANY_PAIRS.format(count=n))

    def get(self, keys: Any) -> Any:
        if type(keys) is str and len(keys) <= 512 and keys.isascii():
            data = self.engine.kv_get(keys)
            return None if data is None else _decode(data)
        if isinstance(keys, list):
            self.count(len(keys))
            wanted = sorted({self.key(k)[0] for k in keys})
            found = {}
            for key in wanted:
                data = self.engine.kv_get(key)
                if data is not None:
                    found[key] = _decode(data)
            return found
        data = self.engine.kv_get(self.key(keys)[0])
        return None if data is None else _decode(data)

    def put_one(self, key: Any, value: Any) -> None:
        key, size = self.key(key)
        data = self.encode(size, value)
        try:
            self.engine.kv_put(key, data)
        except apsw.Error as exc:
            raise sqlite_error(exc) from None

    def put_many(self, entries: dict) -> None:
        self.count(len(entries))
        pairs = []
        for key, value in entries.items():
            key, size = self.key(key)
            pairs.append((key, self.encode(size, value)))
        # Everything is validated before anything is written: bad input never half-applies.
        if not pairs:
            return
        if len(pairs) == 1:
            try:
                self.engine.kv_put(*pairs[0])
            except apsw.Error as exc:
                raise sqlite_error(exc) from None
            return
        # A savepoint keeps the call atomic even if SQLite refuses an entry half-way through.
        engine = self.engine
        name = engine.savepoint()
        try:
            engine.kv_put_many(pairs)
        except apsw.Error as exc:
            engine.rollback_to(name)
            raise sqlite_error(exc) from None
        except BaseException:
            engine.rollback_to(name)
            raise
        engine.release(name)

    def delete(self, keys: Any) -> bool | int:
        if isinstance(keys, list):
            self.count(len(keys))
            checked = [self.key(k)[0] for k in keys]
            return sum(self.engine.kv_delete(k) for k in checked)
        return self.engine.kv_delete(self.key(keys)[0])

    def list(self, opts: dict) -> list[tuple[str, bytes]]:
        start = opts.get("start")
        start_after = opts.get("startAfter")
        end = opts.get("end")
        prefix = opts.get("prefix")
        limit = opts.get("limit")
        reverse = bool(opts.get("reverse", False))
        if start is not None and start_after is not None:
            raise JsTypeError(E.LIST_START_AND_START_AFTER)
        first = ""
        if start is not None:
            first = _usv(_js_string(start, "start"))
        elif start_after is not None:
            # The smallest key after `startAfter` is `startAfter + "\0"` (workerd does the same).
            first = _usv(_js_string(start_after, "startAfter")) + "\x00"
        last = None if end is None else _usv(_js_string(end, "end"))
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or math.isnan(limit):
                raise JsTypeError(E.LIST_LIMIT_NOT_POSITIVE)
            if limit < 1:
                raise JsTypeError(E.LIST_LIMIT_NOT_POSITIVE)
            limit = int(limit) if not math.isinf(limit) else None
        if prefix is not None:
            prefix = _usv(_js_string(prefix, "prefix"))
            if prefix:
                if first < prefix:
                    first = prefix
                elif not first.startswith(prefix):
                    return []
                after = _key_after_prefix(prefix)
                if after is not None:
                    if last is None or not last.startswith(prefix):
                        if last is not None and last <= prefix:
                            return []
                        last = after
        if last is not None and last <= first:
            return []
        return self.engine.kv_list(first, last, limit, reverse)


def _alarm_ms(when: Any) -> int:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise JsTypeError("setAlarm() needs an aware datetime (e.g. tzinfo=timezone.utc), got a naive one.")
        ms = (when - _EPOCH) // _MS
    elif isinstance(when, bool) or not isinstance(when, (int, float)):
        raise JsTypeError(f"setAlarm() expects a time in ms since the epoch or a datetime, got {type(when).__name__}.")
    elif isinstance(when, float) and not math.isfinite(when):
        raise JsTypeError("setAlarm() was given an invalid time (NaN or infinity).")
    else:
        ms = math.floor(when)
    if ms <= 0:
        raise JsTypeError(E.SET_ALARM_NOT_POSITIVE)
    return ms



class _AlarmOps:
    """getAlarm/setAlarm/deleteAlarm, shared by storage and transactions."""

    def __init__(self, engine: StorageEngine, on_change: Callable[[int | None], None] | None,
                 now_ms: Callable[[], int] | None) -> None:
        self.engine = engine
        self.on_change = on_change
        self.now_ms = now_ms

    def get(self) -> int | None:
        value = self.engine.get_alarm()
        # While the alarm handler runs, the alarm that woke it reads as consumed (None); it stays
        # stored until the handler succeeds so that a crash mid-handler runs it again.
        if value is not None and value == getattr(self.engine, "running_alarm", None):
            return None
        return value

    def set(self, when: Any) -> None:
        ms = _alarm_ms(when)
        if self.now_ms is not None:
            # workerd moves times in the past up to "now" (alarm times must be unique and sane).
            ms = max(ms, int(self.now_ms()))
        self.engine.set_alarm(ms)
        if self.on_change is not None:
            self.on_change(ms)

    def delete(self) -> None:
        if self.get() is None:
            return
        self.engine.set_alarm(None)
        if self.on_change is not None:
            self.on_change(None)


class DurableObjectStorage:
    """`ctx.storage`: mirrors Cloudflare's DurableObjectStorage (KV-backed or SQLite-backed class).

    Differences from production: value sizes are measured on cfemu's msgpack encoding, not V8's;
    `allowConcurrency`, `allowUnconfirmed` and `noCache` are accepted and ignored here (gating is
    the instance's job).
    """

    def __init__(self, engine: StorageEngine, *, sqlite_backed: bool,
                 on_alarm_change: Callable[[int | None], None] | None = None,
                 on_sync: Callable[[], Awaitable[None]] | None = None,
                 now_ms: Callable[[], int] | None = None,
                 delete_alarm_on_delete_all: bool = True,
                 block_concurrency_while: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]] | None = None,
                 ) -> None:
        self._engine = engine
        self._sqlite_backed = sqlite_backed
        self._kv = _Kv(engine, sqlite_backed)
        self._alarm = _AlarmOps(engine, on_alarm_change, now_ms)
        self._on_sync = on_sync
        # Compatibility date 2026-02-24 and later: deleteAll() deletes the alarm too.
        self._delete_alarm_on_delete_all = delete_alarm_on_delete_all
        # workerd runs transaction() inside blockConcurrencyWhile so no other event's writes land
        # in the transaction while its closure awaits other I/O; the instance supplies that gate.
        self._block_concurrency_while = block_concurrency_while
        self._sql = SqlStorage(engine, enabled=sqlite_backed)
        self._sync_kv = SyncKvStorage(self._kv)

    @property
    def engine(self) -> StorageEngine:
        return self._engine

    # --- KV ------------------------------------------------------------------------------------

    async def get(self, keys: str | list[str], options: dict | None = None, /, **kwargs: Any) -> Any:
        """`storage.get(key)` -> value or None; `storage.get([keys])` -> dict of the keys present, in key order."""
        return self._kv.get(keys)

    async def put(self, key_or_entries: Any, value: Any = _MISSING, options: Any = None, /, **kwargs: Any) -> None:
        """`storage.put(key, value)` or `storage.put({key: value, ...})` (atomic)."""
        _put(self._kv, key_or_entries, value, options)

    async def delete(self, keys: str | list[str], options: dict | None = None, /, **kwargs: Any) -> bool | int:
        """`storage.delete(key)` -> whether it existed; `storage.delete([keys])` -> how many existed."""
        return self._kv.delete(keys)

    async def list(self, options: dict | None = None, /, **kwargs: Any) -> dict:
        """`storage.list(start=, startAfter=, end=, prefix=, reverse=, limit=)` -> dict in UTF-8 key order."""
        return {k: _decode(v) for k, v in self._kv.list(_options(options, kwargs))}

    async def deleteAll(self, options: dict | None = None, /, **kwargs: Any) -> None:
        """Delete all stored data (SQLite-backed: every table too) and, as of 2026-02-24, the alarm."""
        if self._engine.savepoint_depth:
            raise JsException(E.DELETE_ALL_IN_TRANSACTION)
        had_alarm = self._delete_alarm_on_delete_all and self._engine.get_alarm() is not None
        self._engine.delete_all(drop_sql=self._sqlite_backed, delete_alarm=self._delete_alarm_on_delete_all)
        if had_alarm and self._alarm.on_change is not None:
            self._alarm.on_change(None)

    async def sync(self) -> None:
        """Resolve once every write made so far is durable."""
        if self._on_sync is not None:
            await self._on_sync()

    # --- transactions --------------------------------------------------------------------------

    async def transaction(self, closure: Callable[[DurableObjectTransaction], Any], options: dict | None = None,
                          /, **kwargs: Any) -> Any:
        """Run `closure(txn)` atomically; an exception (or `txn.rollback()`) discards its writes."""
        if self._block_concurrency_while is None:
            return await self._transaction(closure)

        async def outcome() -> tuple[bool, Any]:
            # The closure's error leaves the block as a value, as workerd's TxnResult.isError does:
            # its writes roll back and the caller gets it, but the object is not reset (an error
            # raised out of blockConcurrencyWhile would reset it).
            try:
                return True, await self._transaction(closure)
            except Exception as error:  # noqa: BLE001 - re-raised below, outside the block
                return False, error

        ok, value = await self._block_concurrency_while(outcome)
        if not ok:
            raise value
        return value

    async def _transaction(self, closure: Callable[[DurableObjectTransaction], Any]) -> Any:
        name = self._engine.savepoint()
        txn = DurableObjectTransaction(self, name)
        try:
            result = closure(txn)
            if inspect.isawaitable(result):
                result = await result
        except BaseException:
            if txn._state == _OPEN:
                txn._state = _ROLLED_BACK
                self._undo(name)
            raise
        if txn._state == _OPEN:
            txn._state = _COMMITTED
            self._engine.release(name)
        return result

    def transactionSync(self, closure: Callable[[], Any]) -> Any:
        """Run a synchronous `closure()` atomically (SQLite-backed classes only)."""
        if not self._sqlite_backed:
            raise JsException(E.NOT_BACKED_BY_SQL)
        name = self._engine.savepoint()
        try:
            result = closure()
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise JsTypeError("transactionSync() needs a synchronous function; use transaction() for async code.")
        except BaseException:
            self._undo(name)
            raise
        self._engine.release(name)
        return result

    def _undo(self, name: str) -> None:
        engine = self._engine
        if engine.closed:
            return
        before = engine.get_alarm()
        engine.rollback_to(name)
        after = engine.get_alarm()
        if before != after and self._alarm.on_change is not None:
            self._alarm.on_change(after)

    # --- alarms --------------------------------------------------------------------------------

    async def getAlarm(self, options: dict | None = None, /, **kwargs: Any) -> int | None:
        """The scheduled alarm time in ms since the epoch, or None."""
        return self._alarm.get()

    async def setAlarm(self, scheduled_time: int | float | datetime, options: dict | None = None, /,
                       **kwargs: Any) -> None:
        """Schedule the object's one alarm (ms since the epoch or an aware datetime)."""
        self._alarm.set(scheduled_time)

    async def deleteAlarm(self, options: dict | None = None, /, **kwargs: Any) -> None:
        """Cancel the alarm, if any."""
        self._alarm.delete()

    # --- sync KV and SQL -----------------------------------------------------------------------

    @property
    def kv(self) -> SyncKvStorage:
        """`ctx.storage.kv`: the synchronous KV API of SQLite-backed classes."""
        if not self._sqlite_backed:
            raise JsException(E.NOT_BACKED_BY_SQL)
        return self._sync_kv

    @property
    def sql(self) -> SqlStorage:
        """`ctx.storage.sql`; on a KV-backed class its methods raise Cloudflare's "SQL is not enabled" error."""
        return self._sql


def _put(kv: _Kv, key_or_entries: Any, value: Any, options: Any) -> None:
    if isinstance(key_or_entries, dict):
        # put(entries, options): the second argument, if any, must be an options object.
        if value is not _MISSING and value is not None and not isinstance(value, dict):
            raise JsTypeError(E.PUT_OVERLOAD)
        kv.put_many(key_or_entries)
        return
    if value is _MISSING:
        raise JsTypeError(E.PUT_UNDEFINED_VALUE)
    kv.put_one(key_or_entries, value)


class DurableObjectTransaction:
    """The `txn` passed to `storage.transaction(closure)`: the KV and alarm API plus `rollback()`."""

    def __init__(self, storage: DurableObjectStorage, name: str) -> None:
        self._storage = storage
        self._name = name
        self._state = _OPEN

    def _check(self, op: str) -> None:
        if self._state == _ROLLED_BACK:
            raise JsException(E.TXN_ROLLED_BACK.format(op=op))
        if self._state == _COMMITTED:
            raise JsException(E.TXN_COMMITTED.format(op=op))

    async def get(self, keys: Any, options: dict | None = None, /, **kwargs: Any) -> Any:
        self._check("get()")
        return self._storage._kv.get(keys)

    async def put(self, key_or_entries: Any, value: Any = _MISSING, options: Any = None, /, **kwargs: Any) -> None:
        self._check("put()")
        _put(self._storage._kv, key_or_entries, value, options)

    async def delete(self, keys: Any, options: dict | None = None, /, **kwargs: Any) -> bool | int:
        self._check("delete()")
        return self._storage._kv.delete(keys)

    async def list(self, options: dict | None = None, /, **kwargs: Any) -> dict:
        self._check("list()")
        return {k: _decode(v) for k, v in self._storage._kv.list(_options(options, kwargs))}

    async def deleteAll(self, options: dict | None = None, /, **kwargs: Any) -> None:
        raise JsException(E.DELETE_ALL_IN_TRANSACTION)

    async def getAlarm(self, options: dict | None = None, /, **kwargs: Any) -> int | None:
        self._check("getAlarm()")
        return self._storage._alarm.get()

    async def setAlarm(self, scheduled_time: Any, options: dict | None = None, /, **kwargs: Any) -> None:
        self._check("setAlarm()")
        self._storage._alarm.set(scheduled_time)

    async def deleteAlarm(self, options: dict | None = None, /, **kwargs: Any) -> None:
        self._check("deleteAlarm()")
        self._storage._alarm.delete()

    def rollback(self) -> None:
        """Discard this transaction's writes now; later calls on `txn` raise."""
        if self._state == _ROLLED_BACK:
            return
        self._check("rollback()")
        self._state = _ROLLED_BACK
        self._storage._undo(self._name)

    @property
    def sql(self) -> SqlStorage:
        """The object's SqlStorage (statements run inside this transaction)."""
        return self._storage.sql


class SyncKvStorage:
    """`ctx.storage.kv`: Cloudflare's synchronous KV API of SQLite-backed Durable Objects."""

    def __init__(self, kv: _Kv) -> None:
        self._kv = kv

    def get(self, key: str) -> Any:
        """The value, or None."""
        if isinstance(key, list):
            raise JsTypeError("storage.kv.get() takes a single key.")
        return self._kv.get(key)

    def put(self, key: str, value: Any = _MISSING) -> None:
        if value is _MISSING:
            raise JsTypeError(E.PUT_UNDEFINED_VALUE)
        self._kv.put_one(key, value)

    def delete(self, key: str) -> bool:
        """Whether the key existed."""
        if isinstance(key, list):
            raise JsTypeError("storage.kv.delete() takes a single key.")
        return self._kv.delete(key)

    def list(self, options: dict | None = None, /, **kwargs: Any) -> Iterator[list]:
        """An iterator of `[key, value]` entries in UTF-8 key order (same options as `storage.list`)."""
        rows = self._kv.list(_options(options, kwargs))
        return iter([[k, _decode(v)] for k, v in rows])
