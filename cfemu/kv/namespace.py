"""`KVNamespace`: the binding object worker code sees as `env.MY_KV`."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import Clock, RealClock
from ..errors import JsException, JsTypeError
from ..objects import JsBuffer, JsObject, to_js_object
from . import errors as E
from . import jsjson
from .storage import Entry, KVStore, ListedKey

if TYPE_CHECKING:
    from .locations import Propagation

__all__ = ["KVNamespace", "LocalKVNamespace", "KVValueStream"]

_TYPES = ("text", "json", "arrayBuffer", "stream")
_STREAM_CHUNK = 64 * 1024
_PURGE_EVERY = 256  # writes between sweeps of expired rows


class KVValueStream:
    """What `get(key, type="stream")` returns: a ReadableStream stand-in.  Iterate it with
    `async for chunk in stream`, read it with `stream.getReader()` / `await reader.read()` (giving
    `{done, value}`), or hand it to `Response(stream)`; it can be consumed once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0
        self.locked = False

    def _lock(self) -> None:
        if self.locked:
            raise JsTypeError("This ReadableStream is currently locked to a reader.")
        self.locked = True

    def _next_chunk(self) -> bytes | None:
        if self._offset >= len(self._data):
            return None
        chunk = self._data[self._offset:self._offset + _STREAM_CHUNK]
        self._offset += len(chunk)
        return chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._lock()
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := self._next_chunk()) is not None:
            yield chunk

    def getReader(self) -> _KVStreamReader:
        """`ReadableStream.getReader()`: a default reader over the value's bytes."""
        self._lock()
        return _KVStreamReader(self)

    async def cancel(self, reason: Any = None) -> None:
        """`ReadableStream.cancel()`: drop what was not read."""
        self._offset = len(self._data)

    async def bytes(self) -> bytes:
        """Read the whole stream (a convenience; JS code would use a reader or `new Response(s)`)."""
        return b"".join([chunk async for chunk in self])


class _KVStreamReader:
    """`ReadableStreamDefaultReader` over a `KVValueStream`."""

    def __init__(self, stream: KVValueStream) -> None:
        self._stream: KVValueStream | None = stream

    async def read(self) -> JsObject:
        if self._stream is None:
            raise JsTypeError("This ReadableStreamDefaultReader has been released.")
        chunk = self._stream._next_chunk()
        return JsObject(done=True, value=None) if chunk is None else JsObject(done=False, value=chunk)

    def releaseLock(self) -> None:
        if self._stream is not None:
            self._stream.locked = False
            self._stream = None

    async def cancel(self, reason: Any = None) -> None:
        if self._stream is not None:
            await self._stream.cancel(reason)


def _options(options: Any, given: dict[str, Any], method: str, *, type_string: bool = False) -> dict[str, Any]:
    """Merge the JS-style options argument (a dict, or a type string for get) with keyword arguments."""
    if options is None:
        merged: dict[str, Any] = {}
    elif isinstance(options, str) and type_string:
        merged = {"type": options}
    elif isinstance(options, dict):
        merged = dict(options)
    else:
        raise JsTypeError(f"KV {method}(): options must be an object (a dict) or keyword arguments.")
    merged.update({k: v for k, v in given.items() if v is not None})
    return merged


def _to_int(value: Any, name: str) -> int:
    """JS number -> C++ int the way workerd converts option fields (truncation toward zero)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JsTypeError(f"Failed to execute KV operation: option '{name}' must be a number.")
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise JsTypeError(f"Failed to execute KV operation: option '{name}' must be a finite number.")
        return int(value)
    return value


def _decode(data: bytes, type_: str, method: str) -> Any:
    if type_ == "text":
        return data.decode("utf-8", errors="replace")
    if type_ == "json":
        return to_js_object(jsjson.parse(data.decode("utf-8", errors="replace")))
    if type_ == "arrayBuffer":
        return JsBuffer(data)  # `.to_bytes()` works as on the ArrayBuffer proxy Pyodide hands out
    if type_ == "stream":
        return KVValueStream(data)
    raise JsTypeError(E.UNKNOWN_TYPE)


def _key_name(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class _KVNamespaceType(type):
    """Puts `open()` on the class only: worker code holding a binding cannot reach it."""

    def open(cls, path: str | Path | None, *, clock: Clock | None = None,
             synchronous: str = "NORMAL") -> LocalKVNamespace:
        """A namespace over one SQLite file (None: in memory), on a real clock unless one is given."""
        store = KVStore(None if path is None else Path(path), synchronous=synchronous)
        return LocalKVNamespace(store, clock or RealClock())


class KVNamespace(metaclass=_KVNamespaceType):
    """Mirrors the Workers KV binding (`get`, `getWithMetadata`, `put`, `delete`, `list`).

    Options are keyword arguments with Cloudflare's camelCase names or one options dict, as the Python
    Workers SDK allows.  Time comes from `clock` only.  The binding a worker sees offers the KV API and
    nothing else (no `close()` a worker could break the namespace with); `KVNamespace.open(path)` gives
    a `LocalKVNamespace` for use without a worker, which adds `close()` and `location()`.
    """

    def __init__(self, store: KVStore, clock: Clock, *, location: str = "primary",
                 propagation: Propagation | None = None, binding: str = "KV") -> None:
        self._store = store
        self._clock = clock
        self._location = location
        self._propagation = propagation
        self._binding = binding
        self._writes = 0

    def _view(self, name: str, delay: float) -> KVNamespace:
        # Another location's view of the same store (see `LocalKVNamespace.location`).
        from .locations import Propagation

        if self._propagation is None:
            self._propagation = Propagation(self._store)
            self._propagation.add(self._location, delay)
        self._propagation.add(name, delay)
        return KVNamespace(self._store, self._clock, location=name, propagation=self._propagation,
                           binding=self._binding)

    def __repr__(self) -> str:
        where = "" if self._location == "primary" else f" @{self._location}"
        return f"<KVNamespace {self._binding}{where}>"

    # -- reading -------------------------------------------------------------------------------

    def _read(self, key: bytes, cache_ttl: int | None) -> Entry | None:
        now = self._clock.now()
        if self._propagation is not None:
            entry = self._propagation.read(self._location, key, now, cache_ttl)
        else:
            entry = self._store.get(key)
        if entry is None or not entry.live(now):
            return None
        return entry

    def _get_options(self, options: Any, type_: str | None, cache_ttl: Any, method: str) -> tuple[str, int | None]:
        if options is None and cache_ttl is None and type_ is None:
            return "text", None  # the common call, kept cheap
        opts = _options(options, {"type": type_, "cacheTtl": cache_ttl}, method, type_string=True)
        type_ = opts.get("type") or "text"
        if not isinstance(type_, str):
            raise JsTypeError(E.UNKNOWN_TYPE)
        ttl = opts.get("cacheTtl")
        return type_, None if ttl is None else _to_int(ttl, "cacheTtl")

    @staticmethod
    def _check_cache_ttl(method: str, ttl: int | None) -> None:
        if ttl is not None and ttl < E.MIN_CACHE_TTL:
            raise E.kv_failed(method, 400, E.CACHE_TTL.format(value=ttl, limit=E.MIN_CACHE_TTL))

    async def get(self, key: str | list[str], options: Any = None, *, type: str | None = None,
                  cacheTtl: int | None = None) -> Any:
        """`KVNamespace.get`: a value (str, JSON value, bytes or stream) or None; a list of keys gives
        a dict of key -> value (None when missing), as the JS Map of bulk get."""
        type_, ttl = self._get_options(options, type, cacheTtl, "get")
        if isinstance(key, (list, tuple)):
            return self._get_bulk(list(key), type_, ttl, with_metadata=False)
        raw = E.check_key_name("GET", key)
        self._check_cache_ttl("GET", ttl)
        entry = self._read(raw, ttl)
        if entry is None:
            return None
        return _decode(entry.value, type_, "GET")

    async def getWithMetadata(self, key: str | list[str], options: Any = None, *, type: str | None = None,
                              cacheTtl: int | None = None) -> Any:
        """`KVNamespace.getWithMetadata`: `{value, metadata, cacheStatus}` (bulk: dict of those or None)."""
        type_, ttl = self._get_options(options, type, cacheTtl, "getWithMetadata")
        if isinstance(key, (list, tuple)):
            return self._get_bulk(list(key), type_, ttl, with_metadata=True)
        raw = E.check_key_name("GET", key)
        self._check_cache_ttl("GET", ttl)
        entry = self._read(raw, ttl)
        if entry is None:
            return JsObject(value=None, metadata=None, cacheStatus=None)
        return JsObject(value=_decode(entry.value, type_, "GET"),
                        metadata=None if entry.metadata is None else to_js_object(json.loads(entry.metadata)),
                        cacheStatus=None)

    def _get_bulk(self, keys: list[Any], type_: str, ttl: int | None, *, with_metadata: bool) -> dict[str, Any]:
        # Everything here is checked by the KV service, so every failure is "KV GET_BULK failed".
        if type_ not in ("text", "json"):
            raise E.kv_failed("GET_BULK", 400, E.BULK_TYPE.format(type=type_))
        if len(keys) > E.MAX_BULK_KEYS:
            raise E.kv_failed("GET_BULK", 400, E.BULK_MAX.format(limit=E.MAX_BULK_KEYS))
        if not keys:
            raise E.kv_failed("GET_BULK", 400, E.BULK_MIN)
        result: dict[str, Any] = {}
        total = 0
        for key in keys:
            if not isinstance(key, str):
                raise JsTypeError(f"KV get(): every key must be a string, not {type(key).__name__}.")
            if key == "":
                raise E.kv_failed("GET_BULK", 400, E.BULK_KEY_EMPTY)
            if key in (".", ".."):
                raise E.kv_failed("GET_BULK", 400, E.BULK_KEY_ILLEGAL.format(key=key))
            raw = E.encode_key(key)
            if len(raw) > E.MAX_KEY_SIZE:
                raise E.key_too_long("GET_BULK", len(raw))
            self._check_cache_ttl("GET_BULK", ttl)
            entry = self._read(raw, ttl)
            if entry is None:
                result[key] = None
                continue
            text = entry.value.decode("utf-8", errors="replace")
            total += len(entry.value)
            if type_ == "json":
                try:
                    value = to_js_object(jsjson.parse(text))
                except JsException:
                    raise E.kv_failed("GET_BULK", 400, E.BULK_NOT_TYPE.format(type="json")) from None
            else:
                value = text
            if with_metadata:
                meta = None if entry.metadata is None else to_js_object(json.loads(entry.metadata))
                value = JsObject(value=value, metadata=meta)
            result[key] = value
        if total > E.MAX_BULK_SIZE:
            raise E.kv_failed("GET_BULK", 413, E.BULK_TOO_LARGE.format(mb=E.MAX_BULK_SIZE // 1024 // 1024))
        return result

    # -- writing -------------------------------------------------------------------------------

    async def put(self, key: str, value: Any, options: Any = None, *, expiration: int | None = None,
                  expirationTtl: int | None = None, metadata: Any = None) -> None:
        """`KVNamespace.put`: value is str, bytes-like or an async iterable of bytes (a stream)."""
        raw_key = E.check_key_name("PUT", key)
        if not isinstance(value, (str, bytes, bytearray, memoryview, AsyncIterable)):
            raise JsTypeError(E.PUT_VALUE_TYPE)
        opts = _options(options, {"expiration": expiration, "expirationTtl": expirationTtl, "metadata": metadata}, "put")
        # The service checks, in this order: expiration options, metadata size, then the value's size.
        now = int(self._clock.now())
        expires: int | None = None
        if opts.get("expirationTtl") is not None:
            ttl = _to_int(opts["expirationTtl"], "expirationTtl")
            if ttl <= 0:
                raise E.kv_failed("PUT", 400, E.EXPIRATION_TTL_POSITIVE.format(value=ttl))
            if ttl < E.MIN_EXPIRATION_TTL:
                raise E.kv_failed("PUT", 400, E.EXPIRATION_TTL_MIN.format(value=ttl, limit=E.MIN_EXPIRATION_TTL))
            expires = now + ttl
        elif opts.get("expiration") is not None:
            at = _to_int(opts["expiration"], "expiration")
            if at <= now:
                raise E.kv_failed("PUT", 400, E.EXPIRATION_PAST.format(value=at))
            if at < now + E.MIN_EXPIRATION_TTL:
                raise E.kv_failed("PUT", 400, E.EXPIRATION_MIN.format(value=at, limit=E.MIN_EXPIRATION_TTL))
            expires = at
        meta_json: str | None = None
        if opts.get("metadata") is not None:
            meta_json = jsjson.stringify(opts["metadata"])
            size = len(meta_json.encode())
            if size > E.MAX_METADATA_SIZE:
                raise E.kv_failed("PUT", 413, E.METADATA_LENGTH.format(length=size, limit=E.MAX_METADATA_SIZE))
        data, size = await _value_bytes(value)
        if size > E.MAX_VALUE_SIZE:
            raise E.kv_failed("PUT", 413, E.VALUE_LENGTH.format(length=size, limit=E.MAX_VALUE_SIZE))
        self._write(raw_key, Entry(data, expires, meta_json))

    async def delete(self, key: str) -> None:
        """`KVNamespace.delete`: removing a missing key is not an error."""
        raw = E.check_key_name("DELETE", key)
        self._write(raw, None)

    def _write(self, key: bytes, entry: Entry | None) -> None:
        now = self._clock.now()
        if self._propagation is not None:
            self._propagation.record(self._location, key, entry, now)
        if entry is None:
            self._store.delete(key)
        else:
            self._store.put(key, entry)
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0 and self._propagation is None:
            self._store.purge_expired(now)

    # -- listing -------------------------------------------------------------------------------

    async def list(self, options: Any = None, *, prefix: str | None = None, limit: int | None = None,
                   cursor: str | None = None) -> JsObject:
        """`KVNamespace.list`: `{keys, list_complete, cursor?, cacheStatus}` in UTF-8 byte order."""
        opts = _options(options, {"prefix": prefix, "limit": limit, "cursor": cursor}, "list")
        count = E.MAX_LIST_KEYS
        if opts.get("limit") is not None:
            asked = _to_int(opts["limit"], "limit")
            # workerd sends the limit only when it is positive; the service caps it at 1000.
            if asked > 0:
                if asked > E.MAX_LIST_KEYS:
                    raise E.kv_failed("GET", 400, E.LIST_LIMIT_MAX.format(value=asked, limit=E.MAX_LIST_KEYS))
                count = asked
        raw_prefix = b""
        if opts.get("prefix") is not None:
            if not isinstance(opts["prefix"], str):
                raise JsTypeError("KV list(): prefix must be a string.")
            raw_prefix = E.encode_key(opts["prefix"])
            if len(raw_prefix) > E.MAX_KEY_SIZE:
                raise E.key_too_long("GET", len(raw_prefix))
        after = _decode_cursor(opts.get("cursor"))
        now = self._clock.now()
        if self._propagation is not None:
            rows = self._propagation.list(self._location, prefix=raw_prefix, after=after, limit=count + 1, now=now)
        else:
            rows = self._store.list(prefix=raw_prefix, after=after, limit=count + 1, now=now)
        more = len(rows) > count
        rows = rows[:count]
        result = JsObject(keys=[_listed(row) for row in rows], list_complete=not more)
        if more:
            result["cursor"] = _encode_cursor(rows[-1].key)
        result["cacheStatus"] = None
        return result


def _listed(row: ListedKey) -> JsObject:
    item = JsObject(name=_key_name(row.key))
    if row.expiration is not None:
        item["expiration"] = row.expiration
    if row.metadata is not None:
        item["metadata"] = to_js_object(json.loads(row.metadata))
    return item


def _encode_cursor(key: bytes) -> str:
    # The cursor names the last key returned, so keys expiring between pages do not shift later pages.
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> bytes | None:
    if cursor is None or cursor == "":
        return None
    if not isinstance(cursor, str):
        raise JsTypeError("KV list(): cursor must be a string.")
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise E.kv_failed("GET", 400, E.LIST_CURSOR) from None


async def _value_bytes(value: Any) -> tuple[bytes, int]:
    """The value's bytes and its length (a stream past the limit is counted to the end, not kept)."""
    if isinstance(value, str):
        data = E.encode_key(value)
        return data, len(data)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)  # a memoryview's len() counts items, not bytes
        return data, len(data)
    chunks: list[bytes] = []
    size = 0
    async for chunk in value:
        if isinstance(chunk, str):
            chunk = E.encode_key(chunk)
        elif not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise JsTypeError(E.PUT_VALUE_TYPE)
        chunk = bytes(chunk)
        size += len(chunk)
        if size <= E.MAX_VALUE_SIZE:
            chunks.append(chunk)
    return b"".join(chunks), size


class LocalKVNamespace(KVNamespace):
    """A namespace opened with `KVNamespace.open()` for use without a worker: the KV API plus
    `close()` (also as a context manager) and `location()` views."""

    def close(self) -> None:
        """Close the file; later calls fail with a clear error.  Closing twice is fine."""
        self._store.close()

    def __enter__(self) -> LocalKVNamespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def location(self, name: str, *, delay: float = 60.0) -> KVNamespace:
        """Another view of this namespace, as a worker in another Cloudflare location would see it.

        Writes made through one view reach another only `delay` seconds later (Cloudflare: up to 60 s),
        and a view serves what it read for the read's `cacheTtl` (default 60 s) before looking again.
        """
        return self._view(name, delay)
