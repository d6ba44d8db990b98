"""`Blob`, `File` and `FormData` as the Python Workers SDK offers them (`from workers import FormData`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from enum import StrEnum
from typing import Any

__all__ = ["Blob", "BlobEnding", "File", "FormData", "encode_form", "parse_form"]


class BlobEnding(StrEnum):
    """The SDK's `BlobEnding` (accepted and ignored: cfemu keeps line endings as given)."""

    TRANSPARENT = "transparent"
    NATIVE = "native"


def _part_bytes(part: Any) -> bytes:
    if isinstance(part, str):
        return part.encode()
    if isinstance(part, Blob):
        return part._data
    try:
        return bytes(memoryview(part))
    except TypeError:
        raise TypeError(f"Don't know how to handle {type(part)} for Blob()") from None


def _single(parts: Any) -> bool:
    if isinstance(parts, (str, bytes, bytearray, memoryview, Blob)):
        return True
    try:
        iter(parts)
    except TypeError:
        return True
    return False


class Blob:
    """The SDK's `Blob(blob_parts, content_type=None, endings=None)`."""

    def __init__(self, blob_parts: Iterable[Any] | Any, content_type: str | None = None,
                 endings: BlobEnding | str | None = None) -> None:
        if _single(blob_parts):
            if not content_type and isinstance(blob_parts, Blob):
                content_type = blob_parts.content_type
            blob_parts = [blob_parts]
        self._data = b"".join(_part_bytes(p) for p in blob_parts)
        self._type = (content_type or "").lower()

    @classmethod
    def new(cls, parts: Any = (), options: dict[str, Any] | None = None, **kwargs: Any) -> Blob:
        """`js.Blob.new(parts, {"type": ...})`."""
        options = {**dict(options or {}), **kwargs}
        return Blob(list(parts), content_type=options.get("type"))

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def content_type(self) -> str:
        return self._type

    @property
    def js_object(self) -> Blob:
        return self

    @property
    def type(self) -> str:  # the JS property name, for code that reads `.js_object.type`
        return self._type

    async def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")

    async def bytes(self) -> bytes:
        return self._data

    def slice(self, start: int | None = None, end: int | None = None, content_type: str | None = None) -> Blob:
        return Blob([self._data[slice(start, end)]], content_type=content_type)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} size={self.size} type={self._type!r}>"


class File(Blob):
    """The SDK's `File(blob_parts, filename, content_type=None, endings=None, last_modified=None)`."""

    def __init__(self, blob_parts: Iterable[Any] | Any, filename: str, content_type: str | None = None,
                 endings: BlobEnding | str | None = None, last_modified: int | None = None) -> None:
        if _single(blob_parts) and not last_modified and isinstance(blob_parts, File):
            last_modified = blob_parts.last_modified
        super().__init__(blob_parts, content_type, endings)
        self._name = str(filename)
        if last_modified is None:
            from .js import Date

            last_modified = Date.now()
        self._last_modified = int(last_modified)

    @property
    def name(self) -> str:
        return self._name

    @property
    def last_modified(self) -> int:
        return self._last_modified


def _value(value: Any, filename: str | None = None) -> str | Blob:
    if isinstance(value, Blob):
        if filename is not None or not isinstance(value, File):
            return File([value], filename or "blob", content_type=value.content_type)
        return value
    if isinstance(value, list):
        raise TypeError("Expected single item in arguments to FormData.__setitem__")
    return str(value)


class FormData(MutableMapping[str, Any]):
    """The SDK's `FormData`: a multidict of str or `File` values (`get_all`, `append`, `delete`)."""

    def __init__(self, form_data: dict[str, Any] | FormData | None = None) -> None:
        self._items: list[tuple[str, str | Blob]] = []
        if not form_data:
            return
        if isinstance(form_data, FormData):
            self._items = list(form_data._items)
        elif isinstance(form_data, dict):
            for k, v in form_data.items():
                self._items.append((str(k), _value(v)))
        else:
            raise TypeError("Expected form_data to be a dict or an instance of FormData")

    @classmethod
    def new(cls, form_data: Any = None) -> FormData:
        """`js.FormData.new()`."""
        return cls(form_data)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self[key]
        return default if value is None else value

    def has(self, key: str) -> bool:
        return key in self

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def getAll(self, key: str) -> list[Any]:
        return self.get_all(key)

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        return None  # FormData.get() of a missing name is null, as in the SDK

    def __setitem__(self, key: str, value: Any) -> None:
        value = _value(value)
        out, placed = [], False
        for k, v in self._items:
            if k == key:
                if not placed:
                    out.append((k, value))
                    placed = True
            else:
                out.append((k, v))
        if not placed:
            out.append((key, value))
        self._items = out

    def append(self, key: str, value: Any, filename: str | None = None) -> None:
        self._items.append((str(key), _value(value, filename)))

    def delete(self, key: str) -> None:
        self._items = [(k, v) for k, v in self._items if k != key]

    def __delitem__(self, key: str) -> None:
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._items)

    def get_all(self, key: str) -> list[Any]:
        return [v for k, v in self._items if k == key]

    def keys(self) -> Iterator[str]:  # type: ignore[override]
        return (k for k, _ in self._items)

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return (v for _, v in self._items)

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter(list(self._items))

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def js_object(self) -> FormData:
        return self

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"


def encode_form(form: FormData) -> tuple[bytes, str]:
    """multipart/form-data bytes and their content-type, as `new Response(formData)` produces."""
    import uuid

    boundary = f"----cfemuFormBoundary{uuid.uuid4().hex}"
    out = bytearray()
    for name, value in form._items:
        quoted = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, Blob):
            filename = value.name if isinstance(value, File) else "blob"
            filename = filename.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
            out += f'Content-Disposition: form-data; name="{quoted}"; filename="{filename}"\r\n'.encode()
            out += f"Content-Type: {value.content_type or 'application/octet-stream'}\r\n\r\n".encode()
            out += value._data
        else:
            out += f'Content-Disposition: form-data; name="{quoted}"\r\n\r\n'.encode()
            out += value.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def parse_form(body: bytes, content_type: str | None) -> FormData:
    """Parse a urlencoded or multipart/form-data body; anything else is the Fetch API's TypeError."""
    from urllib.parse import parse_qsl

    from ..errors import JsTypeError

    mime = (content_type or "").split(";", 1)[0].strip().lower()
    form = FormData()
    if mime == "application/x-www-form-urlencoded":
        for k, v in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
            form.append(k, v)
        return form
    if mime != "multipart/form-data":
        raise JsTypeError("Unrecognized Content-Type header value. FormData can only parse the following MIME types: "
                          "multipart/form-data, application/x-www-form-urlencoded")
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise JsTypeError("Failed to parse body as FormData.")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form.append(name, File([payload], filename, content_type=part.get_content_type()))
        else:
            charset = part.get_content_charset() or "utf-8"
            form.append(name, payload.decode(charset, errors="replace"))
    return form
