"""What R2 hands to worker code: `R2Object`, `R2ObjectBody`, `R2Checksums`; and the option
parsing they share with the bucket (conditional requests, ranges, HTTP metadata)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from ..http import BODY_USED, Headers
from ..objects import JsBuffer, JsDate, JsObject
from .errors import (
    BAD_WEAK_ETAG,
    INVALID_RANGE,
    NO_HTTP_METADATA,
    QUOTED_ETAG,
    RANGE_LENGTH_FLOAT,
    RANGE_LENGTH_NEGATIVE,
    RANGE_OFFSET_FLOAT,
    RANGE_OFFSET_NEGATIVE,
    SUFFIX_FLOAT,
    SUFFIX_NEGATIVE,
    SUFFIX_WITH_LENGTH,
    SUFFIX_WITH_OFFSET,
    UNCLOSED_QUOTE,
    INVALID_DATE,
    js_string,
    JsRangeError,
    JsTypeError,
    R2Failure,
)
from ..errors import JsException
from .storage import ObjectRow

__all__ = ["R2Object", "R2ObjectBody", "R2Checksums", "KnownLengthStream", "Conditional", "parse_conditional", "resolve_range",
           "parse_http_metadata", "to_datetime"]

_HTTP_FIELDS = ("contentType", "contentLanguage", "contentDisposition", "contentEncoding", "cacheControl")
_HEADER_OF = {"contentType": "content-type", "contentLanguage": "content-language",
              "contentDisposition": "content-disposition", "contentEncoding": "content-encoding",
              "cacheControl": "cache-control"}
_HASH_FIELDS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


def to_datetime(value: Any, what: str = "date") -> datetime:
    """A JS `Date` as Python code passes it: an aware datetime, milliseconds since the epoch, or a
    date string (HTTP date or ISO 8601); `what` names the field in the error for a bad one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise JsTypeError(INVALID_DATE.format(header=what, value=value)) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise JsTypeError(f"Expected a Date (datetime), got {type(value).__name__}")


def _ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


# -- HTTP metadata ------------------------------------------------------------------------------

def parse_http_metadata(value: Any) -> dict[str, Any]:
    """`httpMetadata` as an object or as `Headers` -> the stored dict (cacheExpiry in ms)."""
    if value is None:
        return {}
    out: dict[str, Any] = {}
    if isinstance(value, Headers):
        for field, header in _HEADER_OF.items():
            v = value.get(header)
            if v is not None:
                out[field] = v
        expires = value.get("expires")
        if expires is not None:
            out["cacheExpiry"] = _ms(to_datetime(expires, "Expires"))
        return out
    if not isinstance(value, dict):
        raise JsTypeError("httpMetadata must be an object or a Headers instance.")
    for field in _HTTP_FIELDS:
        if value.get(field) is not None:
            out[field] = js_string(value[field])
    if value.get("cacheExpiry") is not None:
        out["cacheExpiry"] = _ms(to_datetime(value["cacheExpiry"], "cacheExpiry"))
    return out


def _http_metadata_object(stored: dict[str, Any]) -> JsObject:
    out = JsObject((k, v) for k, v in stored.items() if k != "cacheExpiry")
    if "cacheExpiry" in stored:
        out["cacheExpiry"] = datetime.fromtimestamp(stored["cacheExpiry"] / 1000, tz=timezone.utc)
    return out


# -- conditional requests ---------------------------------------------------------------------

class Conditional:
    """`onlyIf` unwrapped: etag lists of (kind, value) with kind strong|weak|wildcard, and dates."""

    __slots__ = ("etag_matches", "etag_does_not_match", "uploaded_before", "uploaded_after", "seconds")

    def __init__(self) -> None:
        self.etag_matches: list[tuple[str, str]] | None = None
        self.etag_does_not_match: list[tuple[str, str]] | None = None
        self.uploaded_before: int | None = None
        self.uploaded_after: int | None = None
        self.seconds = False

    def allows(self, row: ObjectRow | None) -> bool:
        """R2's evaluation of preconditions (RFC 7232 section 6 ordering)."""
        if row is None:
            return self.etag_matches is None and self.uploaded_after is None
        etag = row.etag
        if_match = self.etag_matches is None or _includes(self.etag_matches, etag, weak_ok=False)
        if_none_match = self.etag_does_not_match is None or not _includes(self.etag_does_not_match, etag, weak_ok=True)

        def trunc(ms: int) -> int:
            return (ms // 1000) * 1000 if self.seconds else ms

        modified = trunc(row.uploaded)
        if_modified_since = (self.uploaded_after is None or trunc(self.uploaded_after) < modified
                             or (self.etag_does_not_match is not None and if_none_match))
        if_unmodified_since = (self.uploaded_before is None or modified < trunc(self.uploaded_before)
                               or (self.etag_matches is not None and if_match))
        return if_match and if_none_match and if_modified_since and if_unmodified_since


def _includes(conditions: list[tuple[str, str]], etag: str, *, weak_ok: bool) -> bool:
    for kind, value in conditions:
        if kind == "wildcard":
            return True
        if value == etag and (kind == "strong" or weak_ok):
            return True
    return False


def _single_etag(value: Any) -> list[tuple[str, str]]:
    value = str(value)
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        raise JsTypeError(QUOTED_ETAG.format(etag=value))
    return [("wildcard", "")] if value == "*" else [("strong", value)]


def _parse_etag_header(header: str) -> list[tuple[str, str]]:
    """An If-Match / If-None-Match header -> etags, as workerd parses it."""
    out: list[tuple[str, str]] = []
    rest = header
    need_comma = False
    while True:
        positions = {c: rest.find(c) for c in '*"W,'}
        star, quote, weak, comma = (positions[c] if positions[c] >= 0 else math.inf for c in '*"W,')
        if quote == math.inf and star == math.inf:
            return out
        if comma < min(star, quote, weak):
            rest = rest[int(comma) + 1:]
            need_comma = False
            continue
        if need_comma:
            first = min(star, quote, weak)
            if first == star:
                reason = "Encountered a wildcard character '*' instead."
            elif first == quote:
                reason = ("Encountered a double quote character '\"' instead. "
                          "This would otherwise indicate the start of a new strong etag.")
            else:
                reason = ("Encountered a weak quotation character 'W' instead. "
                          "This would otherwise indicate the start of a new weak etag.")
            raise JsException(f"Comma was expected to separate etags. {reason}")
        if star < quote:
            return [("wildcard", "")]
        start = int(quote) + 1
        close = rest.find('"', start)
        if close < 0:
            raise JsException(UNCLOSED_QUOTE)
        value = rest[start:close]
        if weak < quote:
            w = int(weak)
            if not (len(rest) > w + 2 and rest[w + 1] == "/" and w + 2 == quote):
                raise JsException(BAD_WEAK_ETAG)
            out.append(("weak", value))
        else:
            out.append(("strong", value))
        rest = rest[close + 1:]
        need_comma = True


def parse_conditional(value: Any) -> Conditional | None:
    """`onlyIf` given as an R2Conditional object or as `Headers` (If-Match, If-None-Match, ...)."""
    if value is None:
        return None
    cond = Conditional()
    if isinstance(value, Headers):
        cond.seconds = True
        if (h := value.get("if-match")) is not None:
            cond.etag_matches = _parse_etag_header(h)
        if (h := value.get("if-none-match")) is not None:
            cond.etag_does_not_match = _parse_etag_header(h)
        if (h := value.get("if-modified-since")) is not None:
            cond.uploaded_after = _ms(to_datetime(h, "If-Modified-Since"))
        if (h := value.get("if-unmodified-since")) is not None:
            cond.uploaded_before = _ms(to_datetime(h, "If-Unmodified-Since"))
        return cond
    if not isinstance(value, dict):
        raise JsTypeError("onlyIf must be an object (R2Conditional) or a Headers instance.")
    cond.seconds = bool(value.get("secondsGranularity", False))
    if value.get("etagMatches") is not None:
        cond.etag_matches = _single_etag(value["etagMatches"])
    if value.get("etagDoesNotMatch") is not None:
        cond.etag_does_not_match = _single_etag(value["etagDoesNotMatch"])
    if value.get("uploadedAfter") is not None:
        cond.uploaded_after = _ms(to_datetime(value["uploadedAfter"]))
    if value.get("uploadedBefore") is not None:
        cond.uploaded_before = _ms(to_datetime(value["uploadedBefore"]))
    return cond


# -- ranges -------------------------------------------------------------------------------------

def _check_number(value: Any, negative: str, floating: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JsTypeError(f"Range values must be numbers, got {type(value).__name__}")
    if value < 0:
        raise JsRangeError(negative.format(v=_js_number(value)))
    if isinstance(value, float) and not value.is_integer():
        raise JsRangeError(floating.format(v=_js_number(value)))
    return int(value)


def _js_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def validate_range(value: Any) -> dict[str, int] | str | None:
    """Client-side checks of `range` (workerd's); returns the range or a Range header value."""
    if value is None:
        return None
    if isinstance(value, Headers):
        return value.get("range")
    if not isinstance(value, dict):
        raise JsTypeError("range must be an object ({offset, length} or {suffix}) or a Headers instance.")
    out: dict[str, int] = {}
    if value.get("offset") is not None:
        out["offset"] = _check_number(value["offset"], RANGE_OFFSET_NEGATIVE, RANGE_OFFSET_FLOAT)
    if value.get("length") is not None:
        out["length"] = _check_number(value["length"], RANGE_LENGTH_NEGATIVE, RANGE_LENGTH_FLOAT)
    if value.get("suffix") is not None:
        if "offset" in out:
            raise JsTypeError(SUFFIX_WITH_OFFSET)
        if "length" in out:
            raise JsTypeError(SUFFIX_WITH_LENGTH)
        out["suffix"] = _check_number(value["suffix"], SUFFIX_NEGATIVE, SUFFIX_FLOAT)
    return out


def _header_range(header: str, size: int) -> tuple[int, int] | None:
    """A single-range `bytes=` header -> (offset, length); anything else means the whole object."""
    if not header.strip().lower().startswith("bytes="):
        return None
    specs = header.split("=", 1)[1].split(",")
    if len(specs) != 1:
        return None
    start_s, sep, end_s = specs[0].strip().partition("-")
    if not sep:
        return None
    try:
        if start_s == "":
            suffix = int(end_s)
            if suffix <= 0:
                return None
            suffix = min(suffix, size)
            return size - suffix, suffix
        start = int(start_s)
        end = int(end_s) if end_s else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    end = min(end, size - 1)
    return start, end - start + 1


def resolve_range(spec: dict[str, int] | str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) to read, clamped the way R2 clamps; None for the whole object."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return _header_range(spec, size)
    offset, length, suffix = spec.get("offset"), spec.get("length"), spec.get("suffix")
    if offset is None and length is None and suffix is None:
        return None
    if suffix is not None:
        if suffix <= 0:
            raise R2Failure(INVALID_RANGE)
        suffix = min(suffix, size)
        offset, length = size - suffix, suffix
    offset = 0 if offset is None else offset
    length = size - offset if length is None else length
    if offset > size or length <= 0:
        raise R2Failure(INVALID_RANGE)
    length = min(length, size - offset)
    return offset, length


# -- the objects --------------------------------------------------------------------------------

class R2Checksums:
    """`R2Checksums`: the digests R2 knows for an object (bytes), `toJSON()` as hex."""

    def __init__(self, hexes: dict[str, str]) -> None:
        self.md5 = bytes.fromhex(hexes["md5"]) if "md5" in hexes else None
        self.sha1 = bytes.fromhex(hexes["sha1"]) if "sha1" in hexes else None
        self.sha256 = bytes.fromhex(hexes["sha256"]) if "sha256" in hexes else None
        self.sha384 = bytes.fromhex(hexes["sha384"]) if "sha384" in hexes else None
        self.sha512 = bytes.fromhex(hexes["sha512"]) if "sha512" in hexes else None

    def toJSON(self) -> JsObject:
        return JsObject((name, getattr(self, name).hex()) for name in _HASH_FIELDS if getattr(self, name) is not None)

    def __repr__(self) -> str:
        return f"R2Checksums({dict(self.toJSON())!r})"


class R2Object:
    """`R2Object`: an object's metadata (what `head`, `put`, `list` return)."""

    def __init__(self, row: ObjectRow, *, range: tuple[int, int] | None = None, http: bool = True,
                 custom: bool = True) -> None:
        self.key = row.key
        self.version = row.version
        self.size = row.size
        self.etag = row.etag
        self.httpEtag = f'"{row.etag}"'
        self.uploaded = JsDate.from_ms(row.uploaded)
        self.httpMetadata: JsObject | None = _http_metadata_object(row.http_metadata) if http else None
        self.customMetadata: JsObject | None = JsObject(row.custom_metadata) if custom else None
        self.range = JsObject(offset=range[0], length=range[1]) if range is not None else None
        self.checksums = R2Checksums(row.checksums)
        self.storageClass = row.storage_class
        self.ssecKeyMd5 = row.ssec["keyMd5"] if row.ssec else None

    def writeHttpMetadata(self, headers: Headers) -> None:
        """Mirrors `writeHttpMetadata(headers)`: sets Content-Type & co. from httpMetadata."""
        if self.httpMetadata is None:
            raise JsTypeError(NO_HTTP_METADATA.format(key=self.key))
        for field, header in _HEADER_OF.items():
            if self.httpMetadata.get(field) is not None:
                headers.set(header, self.httpMetadata[field])
        expiry = self.httpMetadata.get("cacheExpiry")
        if expiry is not None:
            headers.set("expires", format_datetime(expiry.astimezone(timezone.utc), usegmt=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, size={self.size}, etag={self.etag!r})"


class R2ObjectBody(R2Object):
    """`R2ObjectBody`: an `R2Object` with its (possibly ranged) body, readable once."""

    def __init__(self, row: ObjectRow, file: Any, offset: int, length: int, *, range: tuple[int, int] | None) -> None:
        super().__init__(row, range=range)
        self._file = file
        self._offset = offset
        self._length = length
        self._used = False
        self._stream: _BodyStream | None = None

    @property
    def bodyUsed(self) -> bool:
        return self._used

    @property
    def body(self) -> _BodyStream:
        """The body as a stream (async-iterable bytes, accepted by `Response`); reading it uses it up."""
        if self._stream is None:
            self._stream = _BodyStream(self)
        return self._stream

    async def _chunks(self) -> AsyncIterator[bytes]:
        file, remaining = self._file, self._length
        try:
            file.seek(self._offset)
            while remaining > 0:
                chunk = file.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            file.close()

    async def arrayBuffer(self) -> bytes:
        if self._used:
            raise JsTypeError(BODY_USED)
        self._used = True
        try:
            self._file.seek(self._offset)
            return JsBuffer(self._file.read(self._length))
        finally:
            self._file.close()

    bytes = arrayBuffer

    async def text(self) -> str:
        return (await self.arrayBuffer()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """Mirrors `json()`: `JSON.parse` of the text (a JS SyntaxError when it is not JSON)."""
        from ..kv.jsjson import parse

        return parse(await self.text())

    async def blob(self) -> Any:
        """Mirrors `blob()`: the body as a `Blob` typed with the object's stored contentType."""
        from ..sdk.forms import Blob

        data = await self.arrayBuffer()
        return Blob([bytes(data)], content_type=(self.httpMetadata or {}).get("contentType") or "")

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None and not file.closed:
            file.close()


class KnownLengthStream:
    """A ReadableStream stand-in whose length is known before it is read (what R2's put accepts)."""

    __slots__ = ()

    @property
    def length(self) -> int:
        raise NotImplementedError


class _BodyStream(KnownLengthStream):
    """An R2 body as a ReadableStream stand-in: iterating it (once) reads the object."""

    __slots__ = ("_owner",)

    def __init__(self, owner: R2ObjectBody) -> None:
        self._owner = owner

    def __aiter__(self) -> AsyncIterator[bytes]:
        owner = self._owner
        if owner._used:
            raise JsTypeError(BODY_USED)
        owner._used = True
        return owner._chunks()

    @property
    def locked(self) -> bool:
        return self._owner._used

    @property
    def length(self) -> int:
        return self._owner._length
