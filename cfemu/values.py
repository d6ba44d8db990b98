"""Values crossing a boundary (RPC, Durable Object storage, WebSocket attachments).

Structured-clone rules: dict with str keys, list, str, bytes, int, float, bool, None and aware
datetime.  Anything else (tuples, sets, custom objects, cycles) is a clear `TypeError`, never
silent pickling.  Storage encodes with msgpack; datetimes and integers beyond 64 bits use
extension types so every accepted value round-trips exactly.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import msgpack

from .errors import JsTypeError

__all__ = ["check", "clone", "serialize", "deserialize", "DataCloneError"]

_EXT_DATETIME = 1
_EXT_BIGINT = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NESTED_TOO_DEEP = "value: nested too deeply to be cloned."


class DataCloneError(JsTypeError):
    """A value that cannot cross the boundary (mirrors the DOMException `DataCloneError`)."""

    name = "DataCloneError"


def check(value: Any) -> None:
    """Raise `DataCloneError` unless `value` can be structured-cloned."""
    try:
        _walk(value, set(), "value")
    except RecursionError:
        raise DataCloneError(NESTED_TOO_DEEP) from None


def _walk(value: Any, path: set[int], where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise DataCloneError(f"{where}: a naive datetime cannot be cloned; give it a timezone (e.g. timezone.utc).")
        return
    if isinstance(value, (bytearray, memoryview)):
        return
    if isinstance(value, (dict, list)):
        if id(value) in path:
            raise DataCloneError(f"{where}: cyclic structures cannot be cloned.")
        path.add(id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise DataCloneError(f"{where}: dict keys must be str, got {type(k).__name__} {k!r}.")
                _walk(v, path, f"{where}[{k!r}]")
        else:
            for i, v in enumerate(value):
                _walk(v, path, f"{where}[{i}]")
        path.discard(id(value))
        return
    if isinstance(value, tuple):
        raise DataCloneError(f"{where}: tuples cannot be cloned (the Workers SDK rejects them); use a list.")
    if isinstance(value, (set, frozenset)):
        raise DataCloneError(f"{where}: sets cannot be cloned; use a list.")
    raise DataCloneError(f"{where}: {type(value).__name__} objects cannot be cloned.")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        delta = value - _EPOCH
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        return msgpack.ExtType(_EXT_DATETIME, micros.to_bytes(9, "big", signed=True))
    if isinstance(value, int):
        return msgpack.ExtType(_EXT_BIGINT, str(value).encode())
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise DataCloneError(f"{type(value).__name__} objects cannot be cloned.")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_DATETIME:
        return _EPOCH + timedelta(microseconds=int.from_bytes(data, "big", signed=True))
    if code == _EXT_BIGINT:
        return int(data.decode())
    return msgpack.ExtType(code, data)


def serialize(value: Any) -> bytes:
    """Check and encode a value (msgpack with extension types)."""
    check(value)
    try:
        return msgpack.packb(value, default=_default, use_bin_type=True, datetime=False, strict_types=False)
    except (RecursionError, ValueError) as e:  # msgpack's own nesting limit
        if isinstance(e, ValueError) and "recursion" not in str(e).lower() and "nest" not in str(e).lower():
            raise
        raise DataCloneError(NESTED_TOO_DEEP) from None


def deserialize(data: bytes) -> Any:
    """Decode what `serialize` produced."""
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False, timestamp=0)


def clone(value: Any) -> Any:
    """A deep copy by structured-clone rules: the receiver cannot mutate the sender's objects."""
    return deserialize(serialize(value))
