"""`env.BUCKET`: the R2 bucket API worker code sees (`R2Bucket`, `R2MultipartUpload`)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterable
from typing import Any

from ..clock import Clock
from ..errors import JsException
from ..objects import JsObject
from .errors import (
    BAD_DIGEST,
    BAD_UPLOAD,
    BAD_VALUE,
    ENTITY_TOO_LARGE,
    ENTITY_TOO_SMALL,
    HASH_BYTES,
    HASH_HEX,
    HASH_NOT_HEX,
    INTERNAL_ERROR,
    INVALID_MAX_KEYS,
    INVALID_OBJECT_NAME,
    INVALID_PART,
    MAX_CUSTOM_METADATA,
    MAX_DELETE_KEYS,
    MAX_KEY_BYTES,
    MAX_LIST_KEYS,
    MAX_VALUE_SIZE,
    METADATA_TOO_LARGE,
    MIN_PART_SIZE,
    MULTIPLE_HASHES,
    NO_SUCH_UPLOAD,
    PART_NUMBER,
    PRECONDITION_FAILED,
    DELETE_KEY_COUNT,
    UNSUPPORTED_INCLUDE,
    UPLOADED_PART_FIELD,
    JsRangeError,
    JsTypeError,
    LIST_INCLUDE_TYPE,
    LIST_OPTION_FIELD,
    R2Failure,
    SSEC_NOT_ENCRYPTED,
    SSEC_REQUIRED,
    SSEC_UNSUPPORTED,
    SSEC_WRONG_KEY,
    STREAM_LENGTH_UNKNOWN,
    js_string,
    r2_error,
)
from ..objects import usv
from ..sdk.forms import Blob
from .objects import KnownLengthStream, R2Object, R2ObjectBody, parse_conditional, parse_http_metadata, resolve_range, validate_range
from .ssec import DecryptingFile, key_md5, new_encryption, parse_key
from .storage import UPLOAD_IN_PROGRESS, ObjectRow, R2Storage

__all__ = ["R2Bucket", "R2MultipartUpload"]

_HASHES = (("md5", "MD5", 16), ("sha1", "SHA-1", 20), ("sha256", "SHA-256", 32), ("sha384", "SHA-384", 48),
           ("sha512", "SHA-512", 64))
_EAGER_READ = 1 << 20  # bodies up to this size are read at get() time


def _check_key(action: str, key: Any) -> str:
    if not isinstance(key, str):
        raise JsTypeError(f"Failed to execute '{action}' on 'R2Bucket': parameter 1 is not of type 'string'.")
    key = usv(key)
    # The R2 service (not workerd) checks names: an empty one is refused like one over 1024 bytes.
    if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise r2_error(action, R2Failure(INVALID_OBJECT_NAME))
    return key


def _custom_metadata(action: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JsTypeError("customMetadata must be an object of string values.")
    out = {js_string(k): js_string(v) for k, v in value.items()}
    # R2 counts a string's serialized length: twice its length if any character is outside Latin-1.
    size = sum(_serialized_length(k) + _serialized_length(v) for k, v in out.items())
    if size > MAX_CUSTOM_METADATA:
        raise r2_error(action, R2Failure(METADATA_TOO_LARGE))
    return out


def _serialized_length(s: str) -> int:
    units = len(s.encode("utf-16-le")) // 2
    return units * 2 if any(ord(c) >= 256 for c in s) else units


def _expected_hash(options: dict[str, Any]) -> tuple[str, str, bytes] | None:
    """The one checksum a put asks R2 to verify: (hashlib name, R2 name, digest)."""
    found = None
    for field, name, size in _HASHES:
        value = options.get(field)
        if value is None:
            continue
        if found is not None:
            raise JsTypeError(MULTIPLE_HASHES)
        if isinstance(value, str):
            if len(value) != size * 2:
                raise JsTypeError(HASH_HEX.format(alg=name, size=size * 2, actual=len(value)))
            try:
                digest = bytes.fromhex(value)
            except ValueError:
                raise JsTypeError(HASH_NOT_HEX.format(alg=name)) from None
        elif isinstance(value, (bytes, bytearray, memoryview)):
            digest = bytes(value)
            if len(digest) != size:
                raise JsTypeError(HASH_BYTES.format(alg=name, size=size, actual=len(digest)))
        else:
            raise JsTypeError(f"{name} must be a hex string or bytes.")
        found = (field, name, digest)
    return found


async def _chunks(value: Any) -> AsyncIterable[bytes]:
    if value is None:
        return
    if isinstance(value, str):
        yield usv(value).encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        yield bytes(value)
    elif isinstance(value, Blob):
        yield value._data
    else:
        async for chunk in value:
            yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


def _check_value(action: str, value: Any) -> int:
    """workerd's R2PutValue: a string, bytes, a Blob, or a ReadableStream whose length is known;
    returns that length (R2 refuses an upload over the limit before taking its body)."""
    if value is None:
        size = 0
    elif isinstance(value, str):
        size = len(usv(value).encode("utf-8"))
    elif isinstance(value, (bytes, bytearray)):
        size = len(value)
    elif isinstance(value, memoryview):
        size = value.nbytes
    elif isinstance(value, Blob):
        size = value.size
    elif isinstance(value, KnownLengthStream):
        size = value.length
    elif isinstance(value, AsyncIterable):
        # workerd sends the body with its length up front; a stream of unknown length is refused.
        raise JsTypeError(STREAM_LENGTH_UNKNOWN)
    else:
        raise JsTypeError(BAD_VALUE.format(action=action, type=type(value).__name__))
    if size > MAX_VALUE_SIZE:
        raise r2_error(action, R2Failure(ENTITY_TOO_LARGE))
    return size


def _refuse_ssec_key(action: str, options: dict[str, Any]) -> None:
    """Multipart uploads take no `ssecKey` here: a valid one is refused rather than ignored."""
    if parse_key(options) is not None:
        raise JsException(SSEC_UNSUPPORTED.format(action=action))


def _options(positional: Any, keywords: dict[str, Any]) -> dict[str, Any]:
    # Python Workers pass JS options either as a dict or as keyword arguments.
    options = dict(positional) if isinstance(positional, dict) else {}
    options.update(keywords)
    return options


class R2Bucket:
    """`R2Bucket`: `head`, `get`, `put`, `delete`, `list`, `createMultipartUpload`, `resumeMultipartUpload`."""

    def __init__(self, storage: R2Storage, clock: Clock, *, name: str = "") -> None:
        self._storage = storage
        self._clock = clock
        self.name = name

    def _now_ms(self) -> int:
        return self._clock.now_ms()

    async def head(self, key: str) -> R2Object | None:
        """Mirrors `bucket.head(key)`: the object's metadata or None."""
        key = _check_key("head", key)
        row = self._storage.row(key)
        return None if row is None else R2Object(row)

    async def get(self, key: str, options: Any = None, **kw: Any) -> R2ObjectBody | R2Object | None:
        """Mirrors `bucket.get(key, {onlyIf, range})`: body, None if missing, R2Object if onlyIf failed."""
        options = _options(options, kw)
        key = _check_key("get", key)
        cond = parse_conditional(options.get("onlyIf"))
        range_spec = validate_range(options.get("range"))
        ssec_key = parse_key(options)
        row = self._storage.row(key)
        if row is None:
            return None
        if row.ssec is not None:
            if ssec_key is None:
                raise JsException(SSEC_REQUIRED.format(action="get"))
            if key_md5(ssec_key) != row.ssec["keyMd5"]:
                raise JsException(SSEC_WRONG_KEY.format(action="get"))
        elif ssec_key is not None:
            raise JsException(SSEC_NOT_ENCRYPTED.format(action="get"))
        if cond is not None and not cond.allows(row):
            return R2Object(row, range=(0, row.size))
        try:
            span = resolve_range(range_spec, row.size)
        except R2Failure as failure:
            raise r2_error("get", failure) from None
        offset, length = span if span is not None else (0, row.size)
        file = self._storage.open_blob(row.blob_id)
        if row.ssec is not None:
            file = DecryptingFile(file, ssec_key, row.ssec["iv"])
        if length <= _EAGER_READ:
            # Small bodies are read now so a later overwrite cannot change what this get saw.
            import io

            file.seek(offset)
            data = file.read(length)
            file.close()
            file, offset = io.BytesIO(data), 0
        return R2ObjectBody(row, file, offset, length, range=span if span is not None else (0, row.size))

    async def put(self, key: str, value: Any, options: Any = None, **kw: Any) -> R2Object | None:
        """Mirrors `bucket.put(key, value, options)`; None when `onlyIf` fails."""
        options = _options(options, kw)
        key = _check_key("put", key)
        # workerd reads the options first, then the body's type and length.
        cond = parse_conditional(options.get("onlyIf"))
        http = parse_http_metadata(options.get("httpMetadata"))
        expected = _expected_hash(options)
        storage_class = str(options.get("storageClass") or "Standard")
        ssec_key = parse_key(options)
        _check_value("put", value)
        custom = _custom_metadata("put", options.get("customMetadata"))
        if cond is not None and not cond.allows(self._storage.row(key)):
            return None  # checked again atomically at commit; this spares writing the body
        algorithms = (expected[0],) if expected else ()
        ssec, encrypt = new_encryption(ssec_key) if ssec_key is not None else (None, None)
        with self._storage.writing():  # no clean-up may take the body before its row commits
            blob = await self._storage.write_blob(_chunks(value), algorithms, encrypt)
            try:
                if blob.size > MAX_VALUE_SIZE:
                    raise R2Failure(ENTITY_TOO_LARGE)
                checksums = {"md5": blob.digests["md5"].hex()}
                if expected is not None:
                    field, name, digest = expected
                    actual = blob.digests[field]
                    if actual != digest:
                        raise R2Failure(BAD_DIGEST, alg=name, provided=digest.hex(), actual=actual.hex())
                    checksums[field] = actual.hex()
                row = ObjectRow(key, blob.blob_id, secrets.token_hex(16), blob.size, blob.digests["md5"].hex(),
                                self._now_ms(), checksums, http, custom, storage_class, ssec)
                self._storage.commit_put(row, cond.allows if cond is not None else None)
            except R2Failure as failure:
                self._storage.discard_blob(blob.blob_id)
                if failure.code == PRECONDITION_FAILED[1]:
                    return None
                raise r2_error("put", failure) from None
        return R2Object(row)

    async def delete(self, keys: str | list[str]) -> None:
        """Mirrors `bucket.delete(key | keys)` (up to 1000 keys)."""
        key_list = [keys] if isinstance(keys, str) else list(keys)
        if not 1 <= len(key_list) <= MAX_DELETE_KEYS:
            raise r2_error("delete", R2Failure(DELETE_KEY_COUNT))
        key_list = [_check_key("delete", key) for key in key_list]
        self._storage.delete(key_list)

    async def list(self, options: Any = None, **kw: Any) -> JsObject:
        """Mirrors `bucket.list({prefix, delimiter, cursor, startAfter, limit, include})`."""
        options = _options(options, kw)
        limit = options.get("limit")
        if limit is None:
            limit = MAX_LIST_KEYS
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 1 <= limit <= MAX_LIST_KEYS:
            raise r2_error("list", R2Failure(INVALID_MAX_KEYS))
        limit = int(limit)
        include = options.get("include") or []
        if not isinstance(include, (list, tuple)):
            # jsg wants an array here: a string ("httpMetadata") is not one.
            raise JsTypeError(LIST_INCLUDE_TYPE)
        for item in include:
            if item not in ("httpMetadata", "customMetadata"):
                raise JsRangeError(UNSUPPORTED_INCLUDE.format(value=item))
        strings = {}
        for field in ("prefix", "delimiter", "startAfter", "cursor"):
            value = options.get(field)
            if value is not None and not isinstance(value, str):
                raise JsTypeError(LIST_OPTION_FIELD.format(field=field))
            strings[field] = usv(value) if value is not None else None
        prefix = strings["prefix"] or ""
        delimiter = strings["delimiter"] or None
        start_after = strings["startAfter"]
        cursor = strings["cursor"]
        if cursor:
            try:
                after = base64.urlsafe_b64decode(cursor.encode()).decode("utf-8")
            except Exception:
                raise r2_error("list", R2Failure(("Invalid cursor", 10029))) from None
            if start_after is None or after > start_after:
                start_after = after
        items: list[list[Any]] = []  # ["object", row, last_key] or ["prefix", prefix, last_key]
        for row in self._storage.iter_rows(prefix, start_after):
            key = row.key
            if delimiter:
                index = key.find(delimiter, len(prefix))
                if index >= 0:
                    group = key[: index + len(delimiter)]
                    if items and items[-1][0] == "prefix" and items[-1][1] == group:
                        items[-1][2] = key
                        continue
                    items.append(["prefix", group, key])
                    if len(items) > limit:
                        break
                    continue
            items.append(["object", row, key])
            if len(items) > limit:
                break
        truncated = len(items) > limit
        items = items[:limit]
        http, custom = "httpMetadata" in include, "customMetadata" in include
        result = JsObject(
            objects=[R2Object(i[1], http=http, custom=custom) for i in items if i[0] == "object"],
            truncated=truncated,
            delimitedPrefixes=[i[1] for i in items if i[0] == "prefix"],
        )
        if truncated:
            result["cursor"] = base64.urlsafe_b64encode(items[-1][2].encode("utf-8")).decode()
        return result

    async def createMultipartUpload(self, key: str, options: Any = None, **kw: Any) -> R2MultipartUpload:
        """Mirrors `bucket.createMultipartUpload(key, {httpMetadata, customMetadata, storageClass})`."""
        options = _options(options, kw)
        key = _check_key("createMultipartUpload", key)
        http = parse_http_metadata(options.get("httpMetadata"))
        custom = _custom_metadata("createMultipartUpload", options.get("customMetadata"))
        _refuse_ssec_key("createMultipartUpload", options)
        upload_id = self._storage.create_upload(key, http, custom, str(options.get("storageClass") or "Standard"))
        return R2MultipartUpload(self, key, upload_id)

    def resumeMultipartUpload(self, key: str, uploadId: str) -> R2MultipartUpload:
        """Mirrors `bucket.resumeMultipartUpload(key, uploadId)` (no request is made)."""
        return R2MultipartUpload(self, key, uploadId)

    def __repr__(self) -> str:
        return f"R2Bucket({self.name!r})"


def _check_part_number(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
        raise JsTypeError(PART_NUMBER.format(n=n))
    return n


class R2MultipartUpload:
    """`R2MultipartUpload`: `uploadPart`, `complete`, `abort`, with `key` and `uploadId`."""

    def __init__(self, bucket: R2Bucket, key: str, upload_id: str) -> None:
        self._bucket = bucket
        self.key = usv(key) if isinstance(key, str) else key
        self.uploadId = usv(upload_id) if isinstance(upload_id, str) else upload_id

    async def uploadPart(self, partNumber: int, value: Any, options: Any = None, **kw: Any) -> JsObject:
        """Mirrors `upload.uploadPart(n, value, {ssecKey})` -> `{partNumber, etag}`."""
        _check_part_number(partNumber)
        _refuse_ssec_key("uploadPart", _options(options, kw))
        _check_key("uploadPart", self.key)
        _check_value("uploadPart", value)
        storage = self._bucket._storage
        if storage.upload_state(self.key, self.uploadId) != UPLOAD_IN_PROGRESS:
            raise r2_error("uploadPart", R2Failure(NO_SUCH_UPLOAD))
        with storage.writing():  # no clean-up may take the body before its row commits
            blob = await storage.write_blob(_chunks(value))
            try:
                etag = storage.commit_part(self.key, self.uploadId, partNumber, blob)
            except R2Failure as failure:
                storage.discard_blob(blob.blob_id)
                raise r2_error("uploadPart", failure) from None
        return JsObject(partNumber=partNumber, etag=etag)

    async def complete(self, uploadedParts: list[Any]) -> R2Object:
        """Mirrors `upload.complete(parts)`: the parts (in the given order) become one object."""
        action = "completeMultipartUpload"
        selected = []
        for part in uploadedParts:
            number = part.get("partNumber") if isinstance(part, dict) else getattr(part, "partNumber", None)
            etag = part.get("etag") if isinstance(part, dict) else getattr(part, "etag", None)
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise JsTypeError(UPLOADED_PART_FIELD.format(field="partNumber", type="number"))
            if not isinstance(etag, str):
                raise JsTypeError(UPLOADED_PART_FIELD.format(field="etag", type="string"))
            selected.append((_check_part_number(number), etag))
        _check_key(action, self.key)
        storage = self._bucket._storage
        try:
            upload = storage.upload(self.key, self.uploadId)
            if upload is None:
                raise R2Failure(INTERNAL_ERROR)
            state, http, custom, storage_class = upload
            if state != UPLOAD_IN_PROGRESS:
                raise R2Failure(NO_SUCH_UPLOAD)
            if len({n for n, _ in selected}) != len(selected):
                raise R2Failure(INTERNAL_ERROR)
            uploaded = storage.parts(self.uploadId)
            chosen = []
            for number, etag in selected:
                part = uploaded.get(number)
                if part is None or part[2] != etag:
                    raise R2Failure(INVALID_PART)
                chosen.append((number, *part))
            # Every part but the last must be at least 5 MiB (checked in the order given) ...
            for part in chosen[:-1]:
                if part[2] < MIN_PART_SIZE:
                    raise R2Failure(ENTITY_TOO_SMALL)
            # ... and, in part-number order, all but the last the same size, the last no larger.
            ordered = sorted(chosen)
            sizes = [p[2] for p in ordered]
            if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > sizes[0]):
                raise R2Failure(BAD_UPLOAD)
            with storage.writing():  # no clean-up may take the body before its row commits
                blob = await storage.concatenate([p[1] for p in ordered])
                md5_of_md5s = hashlib.md5(b"".join(bytes.fromhex(p[4]) for p in ordered)).hexdigest()
                row = ObjectRow(self.key, blob.blob_id, secrets.token_hex(16), blob.size, f"{md5_of_md5s}-{len(ordered)}",
                                self._bucket._now_ms(), {}, http, custom, storage_class)
                try:
                    storage.commit_complete(self.uploadId, row)
                except R2Failure:
                    storage.discard_blob(blob.blob_id)
                    raise
        except R2Failure as failure:
            raise r2_error(action, failure) from None
        return R2Object(row)

    async def abort(self) -> None:
        """Mirrors `upload.abort()` (allowed again after abort or complete)."""
        _check_key("abortMultipartUpload", self.key)
        try:
            self._bucket._storage.abort_upload(self.key, self.uploadId)
        except R2Failure as failure:
            raise r2_error("abortMultipartUpload", failure) from None

    def __repr__(self) -> str:
        return f"R2MultipartUpload(key={self.key!r}, uploadId={self.uploadId!r})"
