"""The `AnalyticsEngineDataset` binding: `writeDataPoint()` validated like production."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from .. import context
from ..errors import JsException, JsTypeError
from . import errors as E

__all__ = ["AnalyticsEngineDataset", "validate_point", "InvocationCounter", "current_invocation"]

_BLOB_TYPES = (str, bytes, bytearray, memoryview)
_FIELDS = frozenset(("blobs", "doubles", "indexes"))


def _as_list(point: dict, field: str) -> list:
    value = point.get(field)
    if value is None:
        return []
    if isinstance(value, tuple):
        value = list(value)  # the SDK would reject tuples on the way to JS; a local convenience
    if not isinstance(value, list):
        raise JsTypeError(E.NOT_A_LIST.format(field=field, type=type(value).__name__))
    return value


def _blob_bytes(value: Any, field: str, i: int) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, _BLOB_TYPES):
        return bytes(value)
    raise JsTypeError(E.BAD_BLOB.format(field=field, i=i, type=type(value).__name__))


def _utf8_size(text: str) -> int:
    """UTF-8 size of `text`, or -1 when it holds lone surrogates (which cannot be stored as they are)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return -1


def _blobs(values: list) -> list[str]:
    """Blob values as stored strings, checking types and the cumulative byte size."""
    total = 0
    converted: list[str] | None = None
    for i, value in enumerate(values):
        if type(value) is str:
            # len() is the UTF-8 size for ASCII text; only other text needs encoding to be measured
            size = len(value) if value.isascii() else _utf8_size(value)
            if size >= 0:
                total += size
                if converted is not None:
                    converted.append(value)
                continue
        if converted is None:
            converted = list(values[:i])
        raw = _blob_bytes(value, "blobs", i)
        if raw is None:
            converted.append("")  # the columns are not nullable: a missing blob reads as ''
            continue
        total += len(raw)
        # ClickHouse strings hold any bytes; DuckDB's VARCHAR needs UTF-8, so invalid bytes (and lone
        # surrogates) become U+FFFD.
        converted.append(raw.decode("utf-8", "replace"))
    if total > E.MAX_BLOB_BYTES:
        raise JsTypeError(E.BLOBS_TOO_BIG)
    return values if converted is None else converted


def _doubles(values: list) -> list[float]:
    for value in values:
        if type(value) is not float:
            break
    else:
        return values
    out = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise JsTypeError(E.BAD_DOUBLE.format(i=i, type=type(value).__name__))
        try:
            out.append(float(value))
        except OverflowError:  # an int beyond a double's range becomes ±Infinity, as Number(n) would
            out.append(math.copysign(math.inf, value))
    return out


def validate_point(point: Any) -> tuple[str, list[str], list[float]]:
    """Check a data point in workerd's order (indexes, blobs, doubles); return (index1, blobs, doubles).

    The returned lists may be the caller's own (when nothing needed converting): copy before keeping.
    """
    if point is None:
        return "", [], []
    if not isinstance(point, dict):
        raise JsTypeError(E.NOT_A_DICT)
    for key in point:
        if key not in _FIELDS:
            raise JsTypeError(E.UNKNOWN_FIELD.format(field=key))
    index1 = ""
    indexes = point.get("indexes")
    if indexes:
        indexes = _as_list(point, "indexes")
        if len(indexes) > E.MAX_INDEXES:
            raise JsTypeError(E.TOO_MANY_INDEXES)
        if indexes:
            raw = _blob_bytes(indexes[0], "indexes", 0)
            if raw is not None:
                if len(raw) > E.MAX_INDEX_BYTES:
                    raise JsTypeError(E.INDEX_TOO_BIG)
                index1 = raw.decode("utf-8", "replace")
    elif indexes is not None:
        _as_list(point, "indexes")
    blobs = point.get("blobs")
    if blobs is None or blobs == []:
        blobs = []
    else:
        blobs = _as_list(point, "blobs")
        if len(blobs) > E.MAX_BLOBS:
            raise JsTypeError(E.TOO_MANY_BLOBS)
        blobs = _blobs(blobs)
    doubles = point.get("doubles")
    if doubles is None or doubles == []:
        doubles = []
    else:
        doubles = _as_list(point, "doubles")
        if len(doubles) > E.MAX_DOUBLES:
            raise JsTypeError(E.TOO_MANY_DOUBLES)
        doubles = _doubles(doubles)
    return index1, blobs, doubles


# -- the per-invocation limit ------------------------------------------------------------------------

def current_invocation() -> Any:
    """The event being handled (fetch, scheduled, queue, a Durable Object event), or None outside
    any event; work started with `waitUntil` inherits it."""
    return context.current_invocation()


class InvocationCounter:
    """Points written per invocation; remembers the most recent invocations only."""

    _KEEP = 256

    def __init__(self) -> None:
        # Values keep the key object alive so that its id() is not reused while it is remembered.
        self._counts: OrderedDict[int, list[Any]] = OrderedDict()

    def add(self, key: Any) -> int:
        entry = self._counts.get(id(key))
        if entry is None or entry[0] is not key:
            entry = [key, 0]
            self._counts[id(key)] = entry
            if len(self._counts) > self._KEEP:
                self._counts.popitem(last=False)
        entry[1] += 1
        return entry[1]


class AnalyticsEngineDataset:
    """`env.<BINDING>` for `[[analytics_engine_datasets]]`; mirrors `AnalyticsEngineDataset.writeDataPoint`.

    Unlike production, calls made outside any event (e.g. straight from a test) are not limited.
    """

    def __init__(self, service: Any, dataset: str) -> None:
        self._service = service
        self._dataset = dataset

    def writeDataPoint(self, point: dict | None = None) -> None:
        """Validate and buffer one data point (returns nothing, as in JS)."""
        invocation = current_invocation()
        if invocation is not None and self._service.count_invocation(invocation) > E.MAX_POINTS_PER_INVOCATION:
            raise JsException(E.WRITE_LIMIT_EXCEEDED)
        index1, blobs, doubles = validate_point(point)
        self._service.append(self._dataset, index1, blobs, doubles)

    def __repr__(self) -> str:
        return f"AnalyticsEngineDataset({self._dataset!r})"
